package report_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/kpi/kpitest"
	"github.com/carewatch/carewatch/report"
)

var london, _ = time.LoadLocation("Europe/London")

func caseload() *kpi.KPI { return kpitest.Caseload() }

func within45() *kpi.KPI {
	return &kpi.KPI{
		Name: "children_assessment_within_45wd_ratio", Help: "Share of assessments completed within 45 working days.",
		Unit: "ratio", Direction: kpi.HigherIsBetter, Labels: []string{"service", "team"},
		Thresholds: kpi.Thresholds{Amber: kpi.At(0.9), Red: kpi.At(0.8)},
	}
}

func dfeVacancy() *kpi.KPI {
	return &kpi.KPI{
		Name: "children_sw_dfe_vacancy_ratio", Help: "Children's social worker vacancy rate at 30 September (DfE).",
		Unit: "ratio", Direction: kpi.LowerIsBetter, Labels: []string{"la_code", "la_name", "scope"},
		Thresholds: kpi.Thresholds{Amber: kpi.At(0.12), Red: kpi.At(0.2)},
	}
}

// monthly returns one point per month ending with the month of end, values
// in order.
func monthly(end time.Time, values ...float64) []kpi.Point {
	pts := make([]kpi.Point, len(values))
	for i, v := range values {
		p := time.Date(end.Year(), end.Month()-time.Month(len(values)-1-i), 28, 0, 0, 0, 0, london)
		pts[i] = kpi.Point{Period: p, Value: kpi.Known(v), CollectedAt: p.Add(7 * time.Hour)}
	}
	return pts
}

func yearly(values ...float64) []kpi.Point {
	pts := make([]kpi.Point, len(values))
	for i, v := range values {
		p := time.Date(2025-len(values)+1+i, 9, 30, 0, 0, 0, 0, london)
		pts[i] = kpi.Point{Period: p, Value: kpi.Known(v)}
	}
	return pts
}

func build(t *testing.T) (*report.Pack, string) {
	t.Helper()
	cl, w45, dfe := caseload(), within45(), dfeVacancy()
	cat := kpi.Catalogue{cl.Name: cl, w45.Name: w45, dfe.Name: dfe}
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, london)
	spec := report.Spec{
		Title: "Children's services performance", Council: "Demo Borough",
		Sections: []report.Section{
			{Title: "Workforce", Items: []report.Item{
				{KPI: cl.Name},
				{KPI: dfe.Name, Title: "Vacancy rate, DfE census", Match: map[string]string{"scope": "council"},
					Benchmark: &report.Benchmark{NameLabel: "la_name"}},
			}},
			{Title: "Assessments", Items: []report.Item{{KPI: w45.Name, Match: map[string]string{"team": "all"}}}},
		},
	}
	f := &report.Fetch{
		Month: nov,
		History: []kpi.SeriesHistory{
			// The service: 13 months, red now, amber the month before.
			{KPI: cl, Labels: []string{"children", "all"}, Points: monthly(nov, 14, 14, 14.5, 14, 14, 14, 14, 14, 14, 14.2, 14.8, 16, 18.5)},
			// North: red, improving on last month, worse than a year ago, commented.
			{KPI: cl, Labels: []string{"children", "north"}, Points: monthly(nov, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 24, 23)},
			// South: green, a last value three months old (stale).
			{KPI: cl, Labels: []string{"children", "south"}, Points: monthly(nov.AddDate(0, -3, 0), 12, 12.5)},
			{KPI: w45, Labels: []string{"children", "all"}, Points: monthly(nov, 0.85, 0.85)},
			{KPI: w45, Labels: []string{"children", "north"}, Points: monthly(nov, 0.5)},
			{KPI: dfe, Labels: []string{"E09000008", "Croydon", "council"}, Points: yearly(0.2, 0.192)},
			{KPI: dfe, Labels: []string{"E09000002", "Barking and Dagenham", "stat_neighbour"}, Points: yearly(0.15, 0.188)},
			{KPI: dfe, Labels: []string{"E09000006", "Bromley", "stat_neighbour"}, Points: yearly(0.1, 0.111)},
			{KPI: dfe, Labels: []string{"E09000010", "Enfield", "stat_neighbour"}, Points: yearly(0.1, 0.071)},
			{KPI: dfe, Labels: []string{"E13000002", "Outer London", "region"}, Points: yearly(0.2, 0.205)},
			{KPI: dfe, Labels: []string{"E92000001", "England", "england"}, Points: yearly(0.173, 0.142)},
		},
		Comments: []kpi.Comment{
			{KPI: cl.Name, Labels: map[string]string{"team": "north"}, Month: nov, Text: "Two agency workers left; the recruitment drive closes 15 December."},
		},
	}
	p := report.Assemble(cat, spec, f, report.Options{Location: london, Now: time.Date(2026, 11, 29, 9, 0, 0, 0, london)})
	var buf bytes.Buffer
	if err := p.Render(&buf); err != nil {
		t.Fatal(err)
	}
	return p, buf.String()
}

func TestPackPutsExceptionsFirst(t *testing.T) {
	p, page := build(t)
	s := p.Summary
	// Caseload: all red, north red, south green; 45 WD all amber; DfE council amber.
	if s.Red != 2 || s.Amber != 2 || s.Green != 1 || s.Unknown != 0 {
		t.Errorf("counts red %d amber %d green %d unknown %d, want 2, 2, 1, 0", s.Red, s.Amber, s.Green, s.Unknown)
	}
	if len(s.Changed) != 1 || s.Changed[0].Series != "all" || s.Changed[0].From.Word != "Amber" || s.Changed[0].To.Word != "Red" {
		t.Errorf("changed: %+v, want the service's caseload amber to red", s.Changed)
	}
	if len(s.Stale) != 1 || s.Stale[0].Series != "south" {
		t.Errorf("stale: %+v, want south's caseload", s.Stale)
	}
	var uncommented []string
	for _, r := range s.Uncommented {
		uncommented = append(uncommented, r.Title+": "+r.Note)
	}
	want := []string{
		"Average caseload per case-holding FTE social worker: all (Red)",
		"Vacancy rate, DfE census: E09000008, Croydon (Amber)",
		"Share of assessments completed within 45 working days: children (Amber)",
	}
	if strings.Join(uncommented, "\n") != strings.Join(want, "\n") {
		t.Errorf("uncommented:\n%s\nwant:\n%s", strings.Join(uncommented, "\n"), strings.Join(want, "\n"))
	}
	if strings.Index(page, `id="exceptions-heading"`) > strings.Index(page, `id="section-1-heading"`) {
		t.Error("the exceptions do not come before the first section")
	}
}

func TestPackWordsTravelByDirection(t *testing.T) {
	p, page := build(t)
	rows := p.Sections[0].KPIs[0].Rows
	north := rows[1]
	if north.Series != "north" || north.Value != "23.0 cases" || north.Status.Word != "Red" {
		t.Fatalf("north: %+v", north)
	}
	if north.Previous.Class != "better" || north.Previous.Text != "↓ Better: down from 24.0 cases in Oct 2026" {
		t.Errorf("north against last month: %+v", north.Previous)
	}
	if north.LastYear.Class != "worse" || north.LastYear.Text != "↑ Worse: up from 20.0 cases in Nov 2025" {
		t.Errorf("north against a year before: %+v", north.LastYear)
	}
	if north.Threshold != "Amber above 18.0 cases, red above 22.0 cases" || rows[0].Threshold != "Amber above 15.0 cases, red above 18.0 cases" {
		t.Errorf("thresholds in force: north %q, all %q", north.Threshold, rows[0].Threshold)
	}
	w45 := p.Sections[1].KPIs[0]
	if len(w45.Rows) != 1 || w45.Rows[0].Value != "85.0%" || w45.Rows[0].Previous.Text != "No change from 85.0% in Oct 2026" {
		t.Errorf("45 working days, the service only: %+v", w45.Rows)
	}
	if !strings.Contains(page, "Two agency workers left; the recruitment drive closes 15 December.") {
		t.Error("the team's commentary is not on the page")
	}
}

func TestPackComparesWithNeighboursAndEngland(t *testing.T) {
	p, page := build(t)
	b := p.Sections[0].KPIs[1].Benchmark
	if b == nil {
		t.Fatal("no benchmark")
	}
	// Neighbours 18.8, 11.1, 7.1: average 12.3; Croydon 19.2 is the highest.
	if b.Period != "30 Sep 2025" || b.Neighbours != "12.3%" || b.NeighbourN != 3 || b.England != "14.2%" ||
		b.Region != "20.5%" || b.RegionName != "Outer London" || b.Council != "19.2%" || b.Rank != "4th of 4 (1st is the lowest)" {
		t.Errorf("benchmark: %+v", b)
	}
	if !strings.Contains(page, "Statistical neighbours' average") {
		t.Error("the neighbours' average is not labelled on the page")
	}
}

func TestPackIsOneSelfContainedPage(t *testing.T) {
	_, page := build(t)
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<script`), regexp.MustCompile(`(?i)<link`), regexp.MustCompile(`(?i)<img`),
		regexp.MustCompile(`(?i)\bsrc=`), regexp.MustCompile(`(?i)url\(`), regexp.MustCompile(`(?i)@import`),
		regexp.MustCompile(`(?i)https?://`),
	} {
		if loc := bad.FindStringIndex(page); loc != nil {
			t.Errorf("the page refers outside itself (%s): %q", bad, page[max(0, loc[0]-40):min(len(page), loc[1]+40)])
		}
	}
	// Every sparkline is an image with a text alternative.
	sparks := regexp.MustCompile(`<svg class="spark"[^>]*>`).FindAllString(page, -1)
	if len(sparks) == 0 {
		t.Fatal("no sparklines")
	}
	for _, s := range sparks {
		if !strings.Contains(s, `role="img"`) || !strings.Contains(s, `aria-label="`) {
			t.Errorf("sparkline without a text alternative: %s", s)
		}
	}
	if !strings.Contains(page, `aria-label="Average caseload per case-holding FTE social worker, north: 13 values from Nov 2025 to Nov 2026; first 20.0 cases, lowest 20.0 cases, highest 24.0 cases, latest 23.0 cases; amber threshold 18.0 cases; red threshold 22.0 cases."`) {
		t.Error("north's sparkline does not describe itself in words")
	}
}

func TestPackJudgesEachPeriodByTheTargetInForceThen(t *testing.T) {
	k := caseload()
	k.Overrides = nil
	// The improvement plan: amber 20 and red 24 until the end of August,
	// then 18 and 22.
	k.Thresholds = kpi.Thresholds{Amber: kpi.At(20), Red: kpi.At(24)}
	k.Trajectory = []kpi.Step{{From: time.Date(2026, 9, 1, 0, 0, 0, 0, london), Thresholds: kpi.Thresholds{Amber: kpi.At(18), Red: kpi.At(22)}}}
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, london)
	f := &report.Fetch{Month: nov, History: []kpi.SeriesHistory{
		{KPI: k, Labels: []string{"children", "north"}, Points: monthly(nov, 19, 19, 19, 19, 19, 19)},
	}}
	spec := report.Spec{Sections: []report.Section{{Title: "Workforce", Items: []report.Item{{KPI: k.Name}}}}}
	p := report.Assemble(kpi.Catalogue{k.Name: k}, spec, f, report.Options{Location: london, Now: time.Date(2026, 11, 29, 9, 0, 0, 0, london)})
	row := p.Sections[0].KPIs[0].Rows[0]
	if row.Status.Word != "Amber" || row.Threshold != "Amber above 18.0 cases, red above 22.0 cases" {
		t.Errorf("November: %s against %q, want amber against the tightened target", row.Status.Word, row.Threshold)
	}
	// 19 was green in August and is amber in September: the target moved.
	if len(p.Summary.Changed) != 0 {
		t.Errorf("changed since October: %+v, want none (amber both months)", p.Summary.Changed)
	}
	if !strings.Contains(string(row.Sparkline), " V") {
		t.Errorf("the sparkline's thresholds do not step where the target moved: %s", row.Sparkline)
	}
}

func TestPackOfAnEmptyStoreSaysSo(t *testing.T) {
	cl := caseload()
	spec := report.Spec{Sections: []report.Section{{Title: "Workforce", Items: []report.Item{{KPI: cl.Name}, {KPI: cl.Name, Match: map[string]string{"team": "all"}}}}}}
	p := report.Assemble(kpi.Catalogue{cl.Name: cl}, spec, &report.Fetch{Month: time.Date(2026, 11, 1, 0, 0, 0, 0, london)}, report.Options{Location: london})
	var buf bytes.Buffer
	if err := p.Render(&buf); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "No values stored yet."); n != 2 {
		t.Errorf("%d KPIs say they have no values yet, want 2", n)
	}
}
