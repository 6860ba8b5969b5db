package demo

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
)

// Returns are the statutory returns the demo council would produce on its
// reporting date, for the same synthetic children and adults as its
// case-management database: Ofsted's Annex A lists, DfE's SSDA903 return of
// children looked after, and the adults' Client Level Data (CLD) that
// councils submit each quarter.
//
// Each children's case in cms.child_case is one child: a child protection
// case is a child protection plan (and the section 47 enquiry that led to
// it), a looked-after case a period of care (its placements and legal
// statuses drawn as SSDA903 episodes), a children in need case an episode
// of need. Each single assessment in cms.child_assessment is a referral
// and its assessment; about a fifth of referrals are of a child referred
// before, which is what re-referral rates count. Each adults' assessment
// request in cms.adult_assessment_request is a person whose request and
// assessment CLD records, some of whom go on to receive services, beside a
// standing population of long-term clients. What the database does not
// hold (dates of birth, placements, categories of abuse, accommodation...)
// is drawn from the seed and the record's own id, so the returns on a
// later reporting date tell the same story about the same people.
//
// Identifiers are synthetic and say so: children are DEMO-C…, adults
// DEMO-A…, UPNs use the unissued LA number 999, postcodes the unused area
// QX. Nothing here is, or was drawn from, a real person.
type Returns struct {
	// AsAt is the reporting date the returns were made on (midnight UTC).
	AsAt time.Time

	// Children holds every child named in the children's returns, by ID.
	Children map[string]Child

	// Annex A's lists, in the order of the workbook.
	Contacts    []Contact
	EarlyHelp   []EarlyHelp
	Referrals   []Referral
	Assessments []Assessment
	S47s        []S47
	CINs        []CIN
	CPPlans     []CPPlan
	Looked      []LookedAfter
	CareLeavers []CareLeaver
	Adoptions   []Adoption
	Adopters    []Adopter

	// The SSDA903 return for the collection year containing AsAt, up to AsAt.
	SSDA903 SSDA903

	// CLD is every row of the council's CLD submissions kept on AsAt: each
	// quarter's year-to-date submission, and a resubmission of the latest.
	CLD []CLDEvent
}

// Child is a child's characteristics as the returns record them.
type Child struct {
	ID         string
	Sex        string // M or F
	DOB        time.Time
	Ethnicity  string // the four-letter code, e.g. WBRI
	Disability bool
	UPN        string
}

// Contact is a row of Annex A List 1.
type Contact struct {
	Child  string
	Date   time.Time
	Source string
}

// EarlyHelp is a row of Annex A List 2.
type EarlyHelp struct {
	Child      string
	Start, End time.Time // End is zero while open
}

// Referral is a row of Annex A List 3.
type Referral struct {
	Child string
	Date  time.Time
	// Previous12Months is the number of the child's earlier referrals in the
	// 12 months before this one (on or after the same date a year before).
	Previous12Months int
	Source           string
	Team             string
}

// Assessment is a row of Annex A List 4: a single assessment and its
// authorisation, zero while it is still open.
type Assessment struct {
	Child      string
	Start      time.Time
	Authorised time.Time
	Team       string
}

// S47 is a row of Annex A List 5: a section 47 enquiry and its initial child
// protection conference (ICPC), zero when none has been held.
type S47 struct {
	Child           string
	Start           time.Time
	ICPCUnnecessary bool
	ICPC            time.Time
	Plan            bool
	Team            string
}

// CIN is a row of Annex A List 6: an episode of need.
type CIN struct {
	Child      string
	Start, End time.Time
	Need       string
	Team       string
}

// CPPlan is a row of Annex A List 7: a child protection plan.
type CPPlan struct {
	Child           string
	Start, End      time.Time // End is zero while the plan is open
	InitialCategory string
	LatestCategory  string
	PreviousPlans   int
	LastVisit       time.Time
	LatestReview    time.Time // zero before the first review conference
	Team            string
}

// AnnexAListDate is the date of a List 7: the latest date it holds.
func AnnexAListDate(plans []CPPlan) time.Time {
	var d time.Time
	for _, p := range plans {
		for _, t := range []time.Time{p.Start, p.End, p.LastVisit, p.LatestReview} {
			if t.After(d) {
				d = t
			}
		}
	}
	return d
}

// LookedAfter is a row of Annex A List 8.
type LookedAfter struct {
	Child          string
	Started        time.Time // the start of the period of care
	LegalStatus    string
	Ceased         time.Time
	Reason         string // the reason ceased (an SSDA903 REC)
	PlacementStart time.Time
	Placement      string
	Placements12m  int
	Team           string
}

// CareLeaver is a row of Annex A List 9.
type CareLeaver struct {
	Child         string
	DOB           time.Time
	LatestContact time.Time
	Accommodation string
	Activity      string
}

// Adoption is a row of Annex A List 10.
type Adoption struct {
	Child        string
	EnteredCare  time.Time
	Decision     time.Time
	Placed       time.Time
	AdoptionDone time.Time
}

// Adopter is a row of Annex A List 11.
type Adopter struct {
	ID       string
	Enquiry  time.Time
	Approved time.Time
}

// SSDA903 is the looked-after children return's files, one row per line.
type SSDA903 struct {
	// YearStart and YearEnd bound the collection year (1 April to 31 March).
	YearStart, YearEnd time.Time
	Header             []Header903
	Episodes           []Episode
	UASC               [][]string
	OC2                [][]string
	OC3                [][]string
	AD1                [][]string
	PlacedForAdoption  [][]string
	PreviousPermanence [][]string
	Missing            [][]string
	Reviews            [][]string
}

// Header903 is a row of the SSDA903 header file.
type Header903 struct {
	Child, Sex string
	DOB        time.Time
	Ethnic     string
	UPN        string
	Mother     string
	MotherDOB  time.Time
}

// Episode is a row of the SSDA903 episodes file.
type Episode struct {
	Child                  string
	Start                  time.Time // DECOM
	RNE, LS, CIN, Place    string
	Provider               string
	End                    time.Time // DEC, zero while open
	REC                    string
	ReasonPlaceChange      string
	HomePostcode, Postcode string
	URN                    string
}

// CLDEvent is one row of a CLD submission.
type CLDEvent struct {
	PeriodStart, PeriodEnd time.Time
	Imported               time.Time
	Person                 string
	Gender                 string
	BirthYear, BirthMonth  int
	Died                   time.Time
	ClientType             string
	SupportReason          string
	Accommodation          string
	Employment             string
	EventType              string // Request, Assessment, Service, Review
	EventRef               string
	Start, End             time.Time // End zero: an open service
	Outcome                string
	ServiceType            string
	ServiceComponent       string
	DeliveryMechanism      string
	ReviewReason           string
}

// BuildReturns reads the demo council's database and builds its statutory
// returns as they stand on its reporting date.
func BuildReturns(ctx context.Context, db *sqlx.DB) (*Returns, error) {
	tx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return nil, fmt.Errorf("demo returns: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	in, err := readReturnsInput(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("demo returns: %w", err)
	}
	return in.build(), nil
}

type retCase struct {
	ID     int          `db:"case_id"`
	Team   string       `db:"team_name"`
	Kind   string       `db:"case_type"`
	Opened time.Time    `db:"opened"`
	Closed sql.NullTime `db:"closed"`
}

type retAssessment struct {
	ID        int          `db:"assessment_id"`
	Case      int          `db:"case_id"`
	Team      string       `db:"team_name"`
	Referral  time.Time    `db:"referral_date"`
	Completed sql.NullTime `db:"completed_date"`
}

type retRequest struct {
	ID        int          `db:"request_id"`
	Requested time.Time    `db:"requested"`
	Assessed  sql.NullTime `db:"assessed"`
}

type returnsInput struct {
	seed        uint64
	setUp       day
	today       day
	cal         *calendar
	cases       []retCase
	assessments []retAssessment
	requests    []retRequest
}

func readReturnsInput(ctx context.Context, tx *sqlx.Tx) (*returnsInput, error) {
	in := &returnsInput{cal: newCalendar()}
	var st struct {
		Seed  int64     `db:"seed"`
		SetUp time.Time `db:"set_up_for"`
		Today time.Time `db:"today"`
	}
	if err := tx.GetContext(ctx, &st, `SELECT s.seed, s.set_up_for, r.today FROM demo_sim.state s, cms.reporting_date r`); err != nil {
		return nil, fmt.Errorf("demo state (was the demo set up?): %w", err)
	}
	in.seed, in.setUp, in.today = uint64(st.Seed), dayOf(st.SetUp), dayOf(st.Today)
	for _, q := range []struct {
		dest any
		sql  string
	}{
		{&in.cases, `SELECT c.case_id, t.team_name, c.case_type, c.opened, c.closed
			FROM cms.child_case c JOIN cms.team t USING (team_id) WHERE c.case_type <> 'assessment' ORDER BY c.case_id`},
		{&in.assessments, `SELECT a.assessment_id, a.case_id, t.team_name, a.referral_date, a.completed_date
			FROM cms.child_assessment a JOIN cms.team t USING (team_id) ORDER BY a.referral_date, a.assessment_id`},
		{&in.requests, `SELECT request_id, requested, assessed FROM cms.adult_assessment_request ORDER BY request_id`},
	} {
		if err := tx.SelectContext(ctx, q.dest, q.sql); err != nil {
			return nil, fmt.Errorf("%s: %w", q.sql, err)
		}
	}
	return in, nil
}

// Streams of the returns' own draws, one per kind of record, each seeded
// with the record's id.
const (
	streamReferral uint64 = iota + 1
	streamChild
	streamContact
	streamS47
	streamCP
	streamCIN
	streamCLA
	streamAdult
	streamClient
	streamAdopter
)

func recordRNG(seed, stream uint64, id int) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x2e7a_2a5d_0000_0000, stream<<40|uint64(uint32(id))))
}

func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

var ethnicities = []string{"WBRI", "WBRI", "WBRI", "WOTH", "WIRI", "MWBC", "MWBA", "MWAS", "MOTH", "AIND", "APKN", "ABAN",
	"AOTH", "BCRB", "BAFR", "BAFR", "BOTH", "CHNE", "OOTH", "REFU", "NOBT"}

// annexAMonths is how far back Annex A's event lists reach.
const annexAMonths = 6

// AnnexAFrom is the first day Annex A's event lists cover for a workbook
// made on asAt: six calendar months before it.
func AnnexAFrom(asAt time.Time) time.Time { return asAt.AddDate(0, -annexAMonths, 0) }

// CollectionYearEnd is 31 March ending the DfE collection year that
// contains d.
func CollectionYearEnd(d time.Time) time.Time {
	y := d.Year()
	if d.Month() > time.March {
		y++
	}
	return time.Date(y, time.March, 31, 0, 0, 0, 0, time.UTC)
}

func (in *returnsInput) build() *Returns {
	asAt := in.today.time()
	r := &Returns{AsAt: asAt, Children: map[string]Child{}}
	in.children(r)
	in.looked(r)
	in.adults(r)
	return r
}

// newChild draws the characteristics of the child with the given id, aged
// between minAge and maxAge years on d.
func (in *returnsInput) newChild(r *Returns, id string, key int, d day, minAge, maxAge int) Child {
	rng := recordRNG(in.seed, streamChild, key)
	age := minAge + rng.IntN(maxAge-minAge+1)
	dob := d - day(age*365+rng.IntN(365))
	c := Child{
		ID:         id,
		Sex:        pick(rng, "M", "F"),
		DOB:        dob.time(),
		Ethnicity:  pick(rng, ethnicities...),
		Disability: rng.Float64() < 0.08,
		UPN:        fmt.Sprintf("X999%08d%c", key%100_000_000, 'A'+rune(key%26)),
	}
	r.Children[id] = c
	return c
}

func inWindow(d, from, to day) bool { return d >= from && d <= to }

func dateOrZero(t sql.NullTime) day {
	if !t.Valid {
		return none
	}
	return dayOf(t.Time)
}

func (d day) timeOrZero() time.Time {
	if d == none {
		return time.Time{}
	}
	return d.time()
}

// children builds Annex A's lists 1 to 7.
func (in *returnsInput) children(r *Returns) {
	today := in.today
	from := dayOf(AnnexAFrom(today.time()))
	contactSources := []string{"1A", "1B", "1C", "2A", "2B", "3A", "3B", "3E", "4", "5A", "5D", "6", "6", "6", "8", "9"}

	// Referrals, in date order: a fifth are of a child referred before.
	type ref struct {
		child string
		d     day
	}
	var refs []ref
	lo := 0
	history := map[string][]day{}
	for _, a := range in.assessments {
		d := dayOf(a.Referral)
		rng := recordRNG(in.seed, streamReferral, a.ID)
		for lo < len(refs) && refs[lo].d < d-540 {
			lo++
		}
		var child string
		if rng.Float64() < 0.22 && lo < len(refs) {
			child = refs[lo+rng.IntN(len(refs)-lo)].child
		} else {
			child = fmt.Sprintf("DEMO-C%07d", a.Case)
			in.newChild(r, child, a.Case, d, 0, 15)
		}
		refs = append(refs, ref{child, d})
		earlier := history[child]
		history[child] = append(earlier, d)
		if !inWindow(d, from, today) {
			continue
		}
		yearAgo := dayOf(d.time().AddDate(0, -12, 0))
		n := 0
		for _, e := range earlier {
			if e >= yearAgo && e < d {
				n++
			}
		}
		source := pick(rng, contactSources...)
		r.Contacts = append(r.Contacts, Contact{Child: child, Date: d.time(), Source: source})
		r.Referrals = append(r.Referrals, Referral{Child: child, Date: d.time(), Previous12Months: n, Source: source, Team: a.Team})
		r.Assessments = append(r.Assessments, Assessment{Child: child, Start: d.time(),
			Authorised: func() time.Time {
				if c := dateOrZero(a.Completed); c != none && c <= today {
					return c.time()
				}
				return time.Time{}
			}(), Team: a.Team})
		// Some referrals lead to a section 47 enquiry that does not end in a
		// plan; those that do are the child protection cases below.
		srng := recordRNG(in.seed, streamS47, a.ID)
		if srng.Float64() < 0.10 {
			start := in.cal.addWorking(d, srng.IntN(4))
			if start > today {
				continue
			}
			s := S47{Child: child, Start: start.time(), Team: a.Team}
			if srng.Float64() < 0.7 {
				s.ICPCUnnecessary = true
			} else if icpc := in.cal.addWorking(start, 6+srng.IntN(16)); icpc <= today {
				s.ICPC = icpc.time()
			}
			r.S47s = append(r.S47s, s)
		}
		// Contacts about other children that went no further, a few of
		// them to early help.
		crng := recordRNG(in.seed, streamContact, a.ID)
		for i := range poisson(crng, 1.6) {
			id := fmt.Sprintf("DEMO-K%07d%d", a.ID, i)
			cd := in.cal.onOrAfter(d + day(crng.IntN(3)))
			if cd > today {
				continue
			}
			in.newChild(r, id, a.ID*10+i+1_000_000_000, cd, 0, 17)
			r.Contacts = append(r.Contacts, Contact{Child: id, Date: cd.time(), Source: pick(crng, contactSources...)})
			if crng.Float64() < 0.15 {
				eh := EarlyHelp{Child: id, Start: in.cal.addWorking(cd, 2+crng.IntN(5)).time()}
				if end := in.cal.addWorking(dayOf(eh.Start), 20+crng.IntN(60)); end <= today {
					eh.End = end.time()
				}
				if dayOf(eh.Start) <= today {
					r.EarlyHelp = append(r.EarlyHelp, eh)
				}
			}
		}
	}

	categories := []string{"NEG", "NEG", "NEG", "EMO", "EMO", "PHY", "SAB", "MUL"}
	needs := []string{"N1", "N1", "N1", "N2", "N3", "N4", "N4", "N5", "N5", "N6", "N7", "N8"}
	for _, c := range in.cases {
		opened, closed := dayOf(c.Opened), dateOrZero(c.Closed)
		listed := opened <= today && (closed == none || closed > today || closed >= from)
		switch c.Kind {
		case caseCP:
			rng := recordRNG(in.seed, streamCP, c.ID)
			id := fmt.Sprintf("DEMO-C%07d", c.ID)
			in.newChild(r, id, c.ID, opened, 0, 14)
			prev := 0
			if u := rng.Float64(); u < 0.05 {
				prev = 2
			} else if u < 0.24 {
				prev = 1
			}
			initial := pick(rng, categories...)
			latest := initial
			if rng.Float64() < 0.1 {
				latest = pick(rng, categories...)
			}
			// The section 47 enquiry that led to the plan's ICPC: most
			// within 15 working days.
			wd := 4 + rng.IntN(12)
			if rng.Float64() < 0.2 {
				wd = 16 + rng.IntN(20)
			}
			if start := in.cal.subWorking(opened, wd); start >= from && opened <= today {
				r.S47s = append(r.S47s, S47{Child: id, Start: start.time(), ICPC: opened.time(), Plan: true, Team: c.Team})
			}
			if !listed {
				continue
			}
			p := CPPlan{Child: id, Start: opened.time(), InitialCategory: initial, LatestCategory: latest, PreviousPlans: prev, Team: c.Team}
			last := today
			if closed != none && closed <= today {
				p.End = closed.time()
				last = closed
			}
			// Statutory visits at least every ten working days; review
			// conferences three months after the start, then six-monthly.
			p.LastVisit = max(opened, in.cal.subWorking(last, rng.IntN(10))).time()
			for rv := opened.time().AddDate(0, 3, 0); !rv.After(last.time()); rv = rv.AddDate(0, 6, 0) {
				p.LatestReview = rv
			}
			r.CPPlans = append(r.CPPlans, p)
		case caseCIN:
			if !listed {
				continue
			}
			rng := recordRNG(in.seed, streamCIN, c.ID)
			id := fmt.Sprintf("DEMO-C%07d", c.ID)
			in.newChild(r, id, c.ID, opened, 0, 16)
			e := CIN{Child: id, Start: opened.time(), Need: pick(rng, needs...), Team: c.Team}
			if closed != none && closed <= today {
				e.End = closed.time()
			}
			r.CINs = append(r.CINs, e)
		}
	}
	slices.SortStableFunc(r.Contacts, func(a, b Contact) int { return a.Date.Compare(b.Date) })
	slices.SortStableFunc(r.S47s, func(a, b S47) int { return a.Start.Compare(b.Start) })
}

// subWorking returns the n-th working day before d.
func (c *calendar) subWorking(d day, n int) day {
	for n > 0 {
		d--
		if c.working(d) {
			n--
		}
	}
	return d
}
