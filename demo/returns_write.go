package demo

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/xuri/excelize/v2"
)

// Where WriteReturns puts each return, under its folder.
const (
	AnnexADir   = "annex-a"
	AnnexAFile  = "Annex_A.xlsx"
	SSDA903Dir  = "ssda903"
	CLDDir      = "cld"
	CLDFile     = "cld_submissions.csv"
	ukDate      = "02/01/2006"
	excelEpochY = 1899
)

// SSDA903Files are the return's CSV files by name, each with its columns
// in the order DfE's specification gives them.
var SSDA903Files = []struct{ Name, Columns string }{
	{"header.csv", "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB"},
	{"episodes.csv", "CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,HOME_POST,PL_POST,URN"},
	{"uasc.csv", "CHILD,SEX,DOB,DUC"},
	{"oc2.csv", "CHILD,DOB,SDQ_SCORE,SDQ_REASON,CONVICTED,HEALTH_CHECK,IMMUNISATIONS,TEETH_CHECK,HEALTH_ASSESSMENT,SUBSTANCE_MISUSE,INTERVENTION_RECEIVED,INTERVENTION_OFFERED"},
	{"oc3.csv", "CHILD,DOB,IN_TOUCH,ACTIV,ACCOM"},
	{"ad1.csv", "CHILD,DOB,DATE_INT,DATE_MATCH,FOSTER_CARE,NB_ADOPTR,SEX_ADOPTR,LS_ADOPTR"},
	{"placed_for_adoption.csv", "CHILD,DOB,DATE_PLACED,DATE_PLACED_CEASED,REASON_PLACED_CEASED"},
	{"previous_permanence.csv", "CHILD,DOB,PREV_PERM,LA_PERM,DATE_PERM"},
	{"missing.csv", "CHILD,DOB,MISSING,MIS_START,MIS_END"},
	{"reviews.csv", "CHILD,DOB,REVIEW,REVIEW_CODE"},
}

// CLDColumns are the columns of the CLD submissions file, named as in NHS
// England's processing of the central store.
var CLDColumns = []string{"LA_Code", "LA_Name", "Reporting_Period_Start_Date", "Reporting_Period_End_Date", "ImportDate",
	"LA_Person_Unique_Identifier", "Gender", "Der_Birth_Year", "Der_Birth_Month", "Date_of_Death", "Client_Type",
	"Primary_Support_Reason", "Accommodation_Status", "Employment_Status", "Event_Type", "Event_Reference",
	"Event_Start_Date", "Event_End_Date", "Event_Outcome", "Service_Type", "Service_Component", "Delivery_Mechanism",
	"Review_Reason"}

// WriteReturns writes the returns under dir: annex-a/Annex_A.xlsx,
// ssda903/*.csv and cld/cld_submissions.csv, each file replaced whole (a
// temporary file renamed over it), so a collector never reads half of one.
func WriteReturns(r *Returns, dir string) error {
	for _, sub := range []string{AnnexADir, SSDA903Dir, CLDDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("demo returns: %w", err)
		}
	}
	xlsx, err := r.AnnexAWorkbook()
	if err != nil {
		return fmt.Errorf("demo returns: Annex A: %w", err)
	}
	if err := writeFile(filepath.Join(dir, AnnexADir, AnnexAFile), xlsx); err != nil {
		return err
	}
	for name, rows := range r.SSDA903CSV() {
		if err := writeFile(filepath.Join(dir, SSDA903Dir, name), csvBytes(rows)); err != nil {
			return err
		}
	}
	return writeFile(filepath.Join(dir, CLDDir, CLDFile), csvBytes(r.CLDRows()))
}

func writeFile(name string, data []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("demo returns: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("demo returns: %w", err)
	}
	return nil
}

func csvBytes(rows [][]string) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.UseCRLF = true // as Excel and most case-management exports write them
	_ = w.WriteAll(rows)
	return b.Bytes()
}

func uk(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(ukDate)
}

func iso(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}

// SSDA903CSV renders the return's files as rows, header first, by file name.
func (r *Returns) SSDA903CSV() map[string][][]string {
	f := r.SSDA903
	out := map[string][][]string{}
	for _, file := range SSDA903Files {
		out[file.Name] = [][]string{splitComma(file.Columns)}
	}
	for _, h := range f.Header {
		out["header.csv"] = append(out["header.csv"], []string{h.Child, h.Sex, uk(h.DOB), h.Ethnic, h.UPN, h.Mother, uk(h.MotherDOB)})
	}
	for _, e := range f.Episodes {
		out["episodes.csv"] = append(out["episodes.csv"], []string{e.Child, uk(e.Start), e.RNE, e.LS, e.CIN, e.Place, e.Provider,
			uk(e.End), e.REC, e.ReasonPlaceChange, e.HomePostcode, e.Postcode, e.URN})
	}
	for name, rows := range map[string][][]string{"uasc.csv": f.UASC, "oc2.csv": f.OC2, "oc3.csv": f.OC3, "ad1.csv": f.AD1,
		"placed_for_adoption.csv": f.PlacedForAdoption, "previous_permanence.csv": f.PreviousPermanence,
		"missing.csv": f.Missing, "reviews.csv": f.Reviews} {
		out[name] = append(out[name], rows...)
	}
	return out
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// CLDRows renders the CLD submissions as rows, header first.
func (r *Returns) CLDRows() [][]string {
	rows := [][]string{CLDColumns}
	for _, e := range r.CLD {
		rows = append(rows, []string{"E09000999", "Demo Borough", iso(e.PeriodStart), iso(e.PeriodEnd), iso(e.Imported),
			e.Person, e.Gender, strconv.Itoa(e.BirthYear), strconv.Itoa(e.BirthMonth), iso(e.Died), e.ClientType,
			e.SupportReason, e.Accommodation, e.Employment, e.EventType, e.EventRef, iso(e.Start), iso(e.End), e.Outcome,
			e.ServiceType, e.ServiceComponent, e.DeliveryMechanism, e.ReviewReason})
	}
	return rows
}

// AnnexAList is one sheet of the workbook: its headings, and its rows as
// cells (time.Time for a date, "" for an empty cell).
type AnnexAList struct {
	Name string
	// TextDates writes the list's dates as dd/mm/yyyy text rather than
	// Excel date cells, as some councils' workbooks do.
	TextDates bool
	Headings  []string
	Rows      [][]any
}

// Common leading columns of lists 1 to 9.
var annexACommon = []string{"Child Unique ID", "Gender", "Ethnicity", "Date of Birth", "Age"}

func yesNo(b bool) string {
	if b {
		return "a) Yes"
	}
	return "b) No"
}

func (r *Returns) common(id string) []any {
	c := r.Children[id]
	gender := "a) Male"
	if c.Sex == "F" {
		gender = "b) Female"
	}
	eth := c.Ethnicity
	for i, e := range annexAEthnicities {
		if e == c.Ethnicity {
			eth = fmt.Sprintf("%c) %s", 'a'+rune(i), e)
		}
	}
	age := int(r.AsAt.Sub(c.DOB).Hours() / 24 / 365.25)
	return []any{id, gender, eth, c.DOB, age}
}

var annexAEthnicities = []string{"WBRI", "WIRI", "WIRT", "WOTH", "WROM", "MWBC", "MWBA", "MWAS", "MOTH", "AIND", "APKN",
	"ABAN", "AOTH", "BCRB", "BAFR", "BOTH", "CHNE", "OOTH", "REFU", "NOBT"}

var abuseLabels = map[string]string{"NEG": "a) Neglect", "PHY": "b) Physical abuse", "SAB": "c) Sexual abuse",
	"EMO": "d) Emotional abuse", "MUL": "e) Multiple/not recommended"}

func orBlank(t time.Time) any {
	if t.IsZero() {
		return ""
	}
	return t
}

// AnnexALists returns the workbook's lists, in order.
func (r *Returns) AnnexALists() []AnnexAList {
	ls := []AnnexAList{
		{Name: "List 1", Headings: append(annexACommon[:5:5], "Date of Contact", "Contact Source")},
		{Name: "List 2", Headings: append(annexACommon[:5:5], "Assessment start date", "Assessment completion date", "Organisation completing assessment")},
		{Name: "List 3", Headings: append(annexACommon[:5:5], "Date of Referral", "Referral Source", "Referral NFA?",
			"Number of Referrals in Last 12 Months", "Allocated Team", "Allocated Worker")},
		{Name: "List 4", Headings: append(annexACommon[:5:5], "Does the Child have a Disability", "Continuous Assessment Start Date",
			"Child Seen During Continuous Assessment", "Continuous Assessment Date of Authorisation",
			"Was the child assessed as requiring LA children's social care support?", "Allocated Team", "Allocated Worker")},
		{Name: "List 5", TextDates: true, Headings: append(annexACommon[:5:5], "Does the Child have a Disability",
			"Strategy discussion initiating Section 47 Enquiry Start Date", "Was an Initial Child Protection Conference deemed unnecessary?",
			"Date of Initial Child Protection Conference", "Did the Initial Child Protection Conference Result in a Child Protection Plan",
			"Number of Section 47 Enquiries in the last 12 months", "Number of ICPCs in the last 12 months", "Allocated Team", "Allocated Worker")},
		{Name: "List 6", Headings: append(annexACommon[:5:5], "Does the Child have a Disability", "CIN Start Date", "Primary Need Code",
			"Date Child Was Last Seen", "CIN Closure Date", "Reason for Closure", "Case Status", "Allocated Team", "Allocated Worker")},
		{Name: "List 7", TextDates: true, Headings: append(annexACommon[:5:5], "Does the Child have a Disability", "Child Protection Plan Start Date",
			"Initial Category of Abuse", "Latest Category of Abuse", "Date of the Last Statutory Visit", "Was the Child Seen Alone?",
			"Date of latest review conference", "Child Protection Plan End Date",
			"Subject to Emergency Protection Order or Protected Under Police Powers in Last Six Months (Y/N)",
			"Number of Previous Child Protection Plans", "Allocated Team", "Allocated Worker")},
		{Name: "List 8", Headings: append(annexACommon[:5:5], "Does the Child have a Disability", "Date Started to be Looked After",
			"Child's Legal Status", "Number of Placements in the Last 12 months", "Date Ceased to be Looked After",
			"Reason Ceased to be Looked After", "Start Date of Most Recent Placement", "Placement Type", "Allocated Team", "Allocated Worker")},
		{Name: "List 9", TextDates: true, Headings: append(annexACommon[:5:5], "Does the Child have a Disability", "Eligibility Category",
			"Latest Date of Contact", "Type of Accommodation", "Suitability of Accommodation", "Activity Status")},
		{Name: "List 10", Headings: []string{"Child Unique ID", "Family identifier", "Gender", "Ethnicity", "Date of Birth", "Age of Child (Years)",
			"Does the Child have a Disability", "Date the Child Entered Care", "Date of Decision that Child Should be Placed for Adoption",
			"Date Placed for Adoption", "Date of Adoption Order"}},
		{Name: "List 11", Headings: []string{"Individual adopter identifier", "Family identifier", "Gender", "Ethnicity", "Disability",
			"Is the (prospective) adopter fostering for adoption?", "Date enquiry received", "Date application approved"}},
	}
	add := func(i int, row ...any) { ls[i].Rows = append(ls[i].Rows, row) }
	disabled := func(id string) string { return yesNo(r.Children[id].Disability) }
	for _, c := range r.Contacts {
		add(0, append(r.common(c.Child), c.Date, c.Source)...)
	}
	for _, e := range r.EarlyHelp {
		add(1, append(r.common(e.Child), e.Start, orBlank(e.End), "Early help team")...)
	}
	for _, f := range r.Referrals {
		add(2, append(r.common(f.Child), f.Date, f.Source, "b) No", f.Previous12Months, f.Team, "")...)
	}
	for _, a := range r.Assessments {
		support := ""
		if !a.Authorised.IsZero() {
			support = yesNo(len(a.Child)%3 != 0)
		}
		add(3, append(r.common(a.Child), disabled(a.Child), a.Start, "a) Yes", orBlank(a.Authorised), support, a.Team, "")...)
	}
	count := func(id string, since time.Time, pred func(S47) bool) int {
		n := 0
		for _, s := range r.S47s {
			if s.Child == id && !s.Start.Before(since) && pred(s) {
				n++
			}
		}
		return n
	}
	yearAgo := r.AsAt.AddDate(-1, 0, 0)
	for _, s := range r.S47s {
		add(4, append(r.common(s.Child), disabled(s.Child), s.Start, yesNo(s.ICPCUnnecessary), orBlank(s.ICPC),
			func() string {
				if s.ICPC.IsZero() {
					return ""
				}
				return yesNo(s.Plan)
			}(),
			count(s.Child, yearAgo, func(S47) bool { return true }),
			count(s.Child, yearAgo, func(x S47) bool { return !x.ICPC.IsZero() }), s.Team, "")...)
	}
	for _, c := range r.CINs {
		status, reason := "c) Child in need plan", ""
		if !c.End.IsZero() {
			status, reason = "e) Closed episode", "RC8 - Case closed after assessment, no further action"
		}
		add(5, append(r.common(c.Child), disabled(c.Child), c.Start, c.Need, r.AsAt.AddDate(0, 0, -7), orBlank(c.End), reason, status, c.Team, "")...)
	}
	for _, p := range r.CPPlans {
		add(6, append(r.common(p.Child), disabled(p.Child), p.Start, abuseLabels[p.InitialCategory], abuseLabels[p.LatestCategory],
			p.LastVisit, "a) Yes", orBlank(p.LatestReview), orBlank(p.End), "b) No", p.PreviousPlans, p.Team, "")...)
	}
	for _, l := range r.Looked {
		add(7, append(r.common(l.Child), disabled(l.Child), l.Started, l.LegalStatus, l.Placements12m, orBlank(l.Ceased), l.Reason,
			orBlank(l.PlacementStart), l.Placement, l.Team, "")...)
	}
	for _, c := range r.CareLeavers {
		add(8, append(r.common(c.Child), disabled(c.Child), "b) Former relevant child", c.LatestContact, c.Accommodation, "a) Suitable", c.Activity)...)
	}
	for i, a := range r.Adoptions {
		cm := r.common(a.Child)
		add(9, a.Child, fmt.Sprintf("DEMO-F%04d", i+1), cm[1], cm[2], cm[3], cm[4], disabled(a.Child), a.EnteredCare, a.Decision,
			a.Placed, orBlank(a.AdoptionDone))
	}
	for i, a := range r.Adopters {
		add(10, a.ID, fmt.Sprintf("DEMO-F%04d", i+1), "b) Female", "a) WBRI", "b) No", "b) No", a.Enquiry, a.Approved)
	}
	return ls
}

// AnnexAWorkbook renders the lists as an XLSX workbook, one sheet per list.
func (r *Returns) AnnexAWorkbook() ([]byte, error) {
	return WriteAnnexA(r.AnnexALists())
}

// WriteAnnexA renders lists as an XLSX workbook.
func WriteAnnexA(lists []AnnexAList) ([]byte, error) {
	f := excelize.NewFile()
	defer f.Close()
	dateStyle, err := f.NewStyle(&excelize.Style{NumFmt: 14}) // the locale's short date: dd/mm/yyyy in the UK
	if err != nil {
		return nil, err
	}
	for i, l := range lists {
		if i == 0 {
			if err := f.SetSheetName("Sheet1", l.Name); err != nil {
				return nil, err
			}
		} else if _, err := f.NewSheet(l.Name); err != nil {
			return nil, err
		}
		sw, err := f.NewStreamWriter(l.Name)
		if err != nil {
			return nil, err
		}
		head := make([]any, len(l.Headings))
		for j, h := range l.Headings {
			head[j] = h
		}
		if err := sw.SetRow("A1", head); err != nil {
			return nil, err
		}
		for j, row := range l.Rows {
			out := make([]any, len(row))
			for k, v := range row {
				switch v := v.(type) {
				case time.Time:
					if l.TextDates {
						out[k] = v.Format(ukDate)
					} else {
						out[k] = excelize.Cell{StyleID: dateStyle, Value: excelSerial(v)}
					}
				default:
					out[k] = v
				}
			}
			cell, _ := excelize.CoordinatesToCellName(1, j+2)
			if err := sw.SetRow(cell, out); err != nil {
				return nil, err
			}
		}
		if err := sw.Flush(); err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	if err := f.Write(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// excelSerial is the Excel serial number of a date (1900 date system):
// days since 30 December 1899.
func excelSerial(t time.Time) int {
	epoch := time.Date(excelEpochY, time.December, 30, 0, 0, 0, 0, time.UTC)
	return int(t.Sub(epoch).Hours() / 24)
}
