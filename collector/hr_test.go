package collector_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
	"golang.org/x/text/encoding/charmap"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

var update = flag.Bool("update", false, "rewrite the generated example files under examples/")

const (
	hrExample = "../examples/hr/carewatch.yml"
	hrData    = "../examples/hr/data"
)

// hrTeam is one row of the synthetic establishment export: no person
// appears in it, only teams.
type hrTeam struct {
	team                                     string
	establishment, inPost, vacant, agencyFTE float64
	agencyBlank                              bool // the export leaves the cell empty
	cases, holders                           float64
}

var hrTeams = []hrTeam{
	{team: "Assessment – North", establishment: 12, inPost: 9.5, vacant: 2.5, agencyFTE: 2, cases: 231, holders: 10.5},
	{team: "Assessment – South", establishment: 11, inPost: 8, vacant: 3, agencyFTE: 3, cases: 214, holders: 10},
	{team: "Children in Care, East", establishment: 14, inPost: 12.6, vacant: 1.4, agencyFTE: 0.8, cases: 196, holders: 12.4},
	{team: "Disabled Children’s Team", establishment: 8, inPost: 8, vacant: 0, agencyFTE: 0, cases: 102, holders: 7},
	{team: "Front Door (MASH)", establishment: 20, inPost: 15.5, vacant: 4.5, agencyFTE: 4, cases: 318, holders: 18.5},
	{team: "Care Leavers", establishment: 9, inPost: 7.4, vacant: 1.6, agencyBlank: true, cases: 142, holders: 8.4},
	{team: "Step Down (new team)"}, // no posts yet: every rate is 0 / 0, a missing value
}

const (
	hrService = "Children’s Social Care"
	hrTitle   = "Social work establishment – Children’s Services (synthetic example, no personal data)"
)

var hrHeader = []string{"Service", "Team", "Establishment FTE", "In post FTE", "Vacant FTE", "Agency FTE", "Vacancy rate", "Cases held", "Case-holding FTE", "Snapshot date"}

var hrSnapshot = time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC)

func rate(vacant, inPost float64) (float64, bool) {
	if vacant+inPost == 0 {
		return 0, false
	}
	return float64(int(1000*vacant/(vacant+inPost)+0.5)) / 1000, true
}

// hrXLSX builds the export as HR's system saves it: a notes sheet first,
// a title above the header, numbers as numbers, the rate as a percentage,
// the date as a date, a total row, blank rows at the end.
func hrXLSX(t *testing.T) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.SetSheetName("Sheet1", "Notes"))
	must(f.SetCellStr("Notes", "A1", "Figures at the snapshot date. Synthetic data for carewatch's examples and tests."))
	idx, err := f.NewSheet("Establishment")
	must(err)
	f.SetActiveSheet(idx)
	date, err := f.NewStyle(&excelize.Style{NumFmt: 14})
	must(err)
	percent, err := f.NewStyle(&excelize.Style{NumFmt: 10})
	must(err)
	thousands, err := f.NewStyle(&excelize.Style{CustomNumFmt: ptr("#,##0")})
	must(err)
	const sh = "Establishment"
	must(f.SetCellStr(sh, "A1", hrTitle))
	must(f.SetCellStr(sh, "A2", "Snapshot: 31/03/2025"))
	for i, h := range hrHeader {
		cell, _ := excelize.CoordinatesToCellName(i+1, 4)
		must(f.SetCellStr(sh, cell, h))
	}
	row := 5
	var total hrTeam
	put := func(tm hrTeam) {
		c := func(col int) string { s, _ := excelize.CoordinatesToCellName(col, row); return s }
		must(f.SetCellStr(sh, c(1), hrService))
		must(f.SetCellStr(sh, c(2), tm.team))
		must(f.SetCellFloat(sh, c(3), tm.establishment, -1, 64))
		must(f.SetCellFloat(sh, c(4), tm.inPost, -1, 64))
		must(f.SetCellFloat(sh, c(5), tm.vacant, -1, 64))
		if !tm.agencyBlank {
			must(f.SetCellFloat(sh, c(6), tm.agencyFTE, -1, 64))
		}
		if r, ok := rate(tm.vacant, tm.inPost); ok {
			must(f.SetCellFloat(sh, c(7), r, -1, 64))
		} else {
			must(f.SetCellStr(sh, c(7), "#DIV/0!"))
		}
		must(f.SetCellStyle(sh, c(7), c(7), percent))
		must(f.SetCellFloat(sh, c(8), tm.cases, -1, 64))
		must(f.SetCellStyle(sh, c(8), c(8), thousands))
		must(f.SetCellFloat(sh, c(9), tm.holders, -1, 64))
		serial := float64(hrSnapshot.Sub(time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC)) / (24 * time.Hour))
		must(f.SetCellFloat(sh, c(10), serial, -1, 64))
		must(f.SetCellStyle(sh, c(10), c(10), date))
		row++
	}
	for _, tm := range hrTeams {
		put(tm)
		total.establishment += tm.establishment
		total.inPost += tm.inPost
		total.vacant += tm.vacant
		total.agencyFTE += tm.agencyFTE
		total.cases += tm.cases
		total.holders += tm.holders
	}
	total.team = "Total"
	put(total)
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ptr[T any](v T) *T { return &v }

// hrCSV is the same export as Excel saves it with "CSV (Comma delimited)"
// on Windows: Windows-1252 text, the displayed values (a percentage with %,
// thousands with commas, a UK date), quotes around text holding commas,
// and the title rows and blank rows kept as rows of empty fields.
func hrCSV(t *testing.T) []byte {
	t.Helper()
	var b strings.Builder
	width := len(hrHeader)
	line := func(fields ...string) {
		for len(fields) < width {
			fields = append(fields, "")
		}
		for i, f := range fields {
			if strings.ContainsAny(f, ",\"") {
				fields[i] = `"` + strings.ReplaceAll(f, `"`, `""`) + `"`
			}
		}
		b.WriteString(strings.Join(fields, ",") + "\r\n")
	}
	num := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	line(hrTitle)
	line("Snapshot: 31/03/2025")
	line()
	line(hrHeader...)
	var total hrTeam
	put := func(tm hrTeam) {
		agency := num(tm.agencyFTE)
		if tm.agencyBlank {
			agency = ""
		}
		vr := "#DIV/0!"
		if r, ok := rate(tm.vacant, tm.inPost); ok {
			vr = strconv.FormatFloat(100*r, 'f', 1, 64) + "%"
		}
		cases := num(tm.cases)
		if tm.cases >= 1000 {
			cases = fmt.Sprintf("%d,%03d", int(tm.cases)/1000, int(tm.cases)%1000)
		}
		// Excel pads nothing, but hand-edited exports do: a few spaces
		// around numbers must not matter.
		line(hrService, tm.team, num(tm.establishment), " "+num(tm.inPost)+" ", num(tm.vacant), agency, vr, cases, num(tm.holders), "31/03/2025")
	}
	for _, tm := range hrTeams {
		put(tm)
		total.establishment += tm.establishment
		total.inPost += tm.inPost
		total.vacant += tm.vacant
		total.agencyFTE += tm.agencyFTE
		total.cases += tm.cases
		total.holders += tm.holders
	}
	total.team = "Total"
	put(total)
	line()
	line()
	enc, err := charmap.Windows1252.NewEncoder().String(b.String())
	if err != nil {
		t.Fatal(err)
	}
	return []byte(enc)
}

// The example's HR exports are generated by this test; run it with
// -update to write them again after changing the generator.
func TestHRExportFixturesAreCurrent(t *testing.T) {
	files := map[string][]byte{
		"establishment_2025-03-31.xlsx": hrXLSX(t),
		"establishment_2025-03-31.csv":  hrCSV(t),
	}
	for name, want := range files {
		path := filepath.Join(hrData, name)
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./collector -run HRExportFixtures -update)", err)
		}
		if strings.HasSuffix(name, ".csv") && !bytes.Equal(got, want) {
			t.Errorf("%s is not what the generator makes: run go test ./collector -run HRExportFixtures -update", path)
		}
		if strings.HasSuffix(name, ".xlsx") && sheetText(t, got) != sheetText(t, want) {
			t.Errorf("%s is not what the generator makes: run go test ./collector -run HRExportFixtures -update", path)
		}
	}
}

// sheetText is a workbook's cells and number formats as text, to compare
// two workbooks whatever their zip's bytes.
func sheetText(t *testing.T, data []byte) string {
	t.Helper()
	f, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for _, sh := range f.GetSheetList() {
		rows, err := f.GetRows(sh, excelize.Options{RawCellValue: true})
		if err != nil {
			t.Fatal(err)
		}
		for r, row := range rows {
			for c, v := range row {
				cell, _ := excelize.CoordinatesToCellName(c+1, r+1)
				id, _ := f.GetCellStyle(sh, cell)
				st, _ := f.GetStyle(id)
				custom := ""
				if st != nil && st.CustomNumFmt != nil {
					custom = *st.CustomNumFmt
				}
				fmt.Fprintf(&b, "%s!%s=%q fmt=%d%s\n", sh, cell, v, st.NumFmt, custom)
			}
		}
	}
	return b.String()
}

// hrSources builds the example's XLSX collector and, beside it, the same
// collector reading the Windows-1252 CSV export.
func hrSources(t *testing.T) (xlsx, csv kpi.Source, cfg *config.Config) {
	t.Helper()
	cfg, err := config.Load(hrExample)
	if err != nil {
		t.Fatalf("the HR example does not load: %v", err)
	}
	cc := &cfg.Collectors[0]
	if cc.File.Format != config.FormatXLSX || cc.File.Sheet != "Establishment" || cc.File.HeaderRow != 4 {
		t.Fatalf("the example's first collector is not the XLSX establishment export: %+v", cc.File)
	}
	x, err := newSourceFor(cfg, cc)
	if err != nil {
		t.Fatal(err)
	}
	cc2 := *cc
	f := *cc.File
	f.Glob, f.Format, f.Sheet, f.Encoding, f.Delimiter = "establishment_*.csv", config.FormatCSV, "", config.EncodingWindows1252, ","
	cc2.File = &f
	c, err := newSourceFor(cfg, &cc2)
	if err != nil {
		t.Fatal(err)
	}
	return x, c, cfg
}

// The establishment export saved as XLSX and as Windows-1252 CSV gives the
// same vacancy and agency ratios (and caseloads) for every team, with the
// team names intact, a team without posts missing rather than 0, and an
// empty agency cell missing rather than 0.
func TestHRExportAsXLSXAndAsWindows1252CSVGiveTheSameRatios(t *testing.T) {
	x, c, cfg := hrSources(t)
	run := kpi.RunInfo{Collector: "hr_establishment", At: time.Now(), Location: cfg.Location}
	ox, err := x.Collect(t.Context(), run)
	if err != nil {
		t.Fatalf("XLSX: %v", err)
	}
	oc, err := c.Collect(t.Context(), run)
	if err != nil {
		t.Fatalf("CSV: %v", err)
	}
	key := func(o kpi.Observation) string {
		return o.KPI.Name + kpi.LabelString(o.KPI, o.Labels) + "@" + o.Period.Format(time.RFC3339)
	}
	mx, mc := map[string]kpi.Value{}, map[string]kpi.Value{}
	for _, o := range ox {
		mx[key(o)] = o.Value
	}
	for _, o := range oc {
		mc[key(o)] = o.Value
	}
	if len(mx) != len(hrTeams)*4 {
		t.Errorf("XLSX gave %d observations, want %d (4 KPIs for %d teams, the total row filtered out)", len(mx), len(hrTeams)*4, len(hrTeams))
	}
	for k, v := range mx {
		w, ok := mc[k]
		switch {
		case !ok:
			t.Errorf("%s: from the XLSX only", k)
		case v.Valid != w.Valid || (v.Valid && abs(v.V-w.V) > 1e-12):
			t.Errorf("%s: XLSX %v, CSV %v", k, v, w)
		}
	}
	for k := range mc {
		if _, ok := mx[k]; !ok {
			t.Errorf("%s: from the CSV only", k)
		}
	}

	period := time.Date(2025, 3, 31, 0, 0, 0, 0, cfg.Location).Format(time.RFC3339)
	for _, tc := range []struct {
		kpi, team string
		want      kpi.Value
	}{
		{"children_sw_vacancy_ratio", "Assessment – North", kpi.Known(2.5 / 12)},
		{"children_sw_agency_ratio", "Assessment – North", kpi.Known(2.0 / 11.5)},
		{"children_sw_vacancy_ratio", "Children in Care, East", kpi.Known(1.4 / 14)},
		{"children_sw_vacancy_reported_ratio", "Assessment – North", kpi.Known(0.208)},
		{"children_sw_caseload_average", "Front Door (MASH)", kpi.Known(318 / 18.5)},
		{"children_sw_vacancy_ratio", "Disabled Children’s Team", kpi.Known(0)},
		{"children_sw_agency_ratio", "Care Leavers", kpi.Missing},
		{"children_sw_vacancy_ratio", "Step Down (new team)", kpi.Missing},
		{"children_sw_vacancy_reported_ratio", "Step Down (new team)", kpi.Missing},
	} {
		k := tc.kpi + `{service="Children’s Social Care",team="` + tc.team + `"}@` + period
		for name, m := range map[string]map[string]kpi.Value{"XLSX": mx, "CSV": mc} {
			got, ok := m[k]
			if !ok || got.Valid != tc.want.Valid || abs(got.V-tc.want.V) > 1e-12 {
				t.Errorf("%s: %s = %v (present %t), want %v", name, k, got, ok, tc.want)
			}
		}
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// The supplier's monthly files, every one in the folder, take their period
// from their names.
func TestEveryFileInTheFolderTakesItsPeriodFromItsName(t *testing.T) {
	cfg, err := config.Load(hrExample)
	if err != nil {
		t.Fatal(err)
	}
	src, err := newSourceFor(cfg, &cfg.Collectors[1])
	if err != nil {
		t.Fatal(err)
	}
	obs, err := src.Collect(t.Context(), kpi.RunInfo{Collector: "agency_timesheets", At: time.Now(), Location: cfg.Location})
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	months := map[string]int{}
	for _, o := range obs {
		months[o.Period.In(cfg.Location).Format("2006-01-02")]++
	}
	want := map[string]int{"2025-01-31": 5, "2025-02-28": 5, "2025-03-31": 5}
	if fmt.Sprint(months) != fmt.Sprint(want) {
		t.Errorf("periods %v, want %v (the last day of each file's month, five teams each)", months, want)
	}
}
