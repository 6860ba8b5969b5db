package report_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/report"
	"github.com/carewatch/carewatch/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// readWhole is what Read did before it narrowed the store's read to the
// series a pack uses: every series of the spec's KPIs, the pack's month the
// latest month any of them has a value for.
func readWhole(ctx context.Context, st *store.Store, cat kpi.Catalogue, spec report.Spec, o report.Options) (*report.Fetch, error) {
	loc := o.Location
	monthOf := func(t time.Time) time.Time {
		t = t.In(loc)
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, loc)
	}
	until := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	if !o.Month.IsZero() {
		until = monthOf(o.Month).AddDate(0, 1, 0).Add(-time.Nanosecond)
	}
	hist, err := st.MonthlyHistory(ctx, cat, kpi.HistoryQuery{KPIs: spec.KPINames(), Until: until, Months: report.Months, Location: loc})
	if err != nil {
		return nil, err
	}
	f := &report.Fetch{History: hist}
	if !o.Month.IsZero() {
		f.Month = monthOf(o.Month)
	} else {
		for _, h := range hist {
			if n := len(h.Points); n > 0 {
				if m := monthOf(h.Points[n-1].Period); m.After(f.Month) {
					f.Month = m
				}
			}
		}
		if f.Month.IsZero() {
			f.Month = monthOf(o.Now)
		}
	}
	f.Comments, err = st.Comments(ctx, kpi.CommentMonth(f.Month))
	return f, err
}

func TestPackReadsOnlyItsSeriesAndIsTheSameAsFromEverySeries(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, pgtest.NewDatabase(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cl, w45, dfe := caseload(), within45(), dfeVacancy()
	cat := kpi.Catalogue{cl.Name: cl, w45.Name: w45, dfe.Name: dfe}
	utc := time.UTC

	// Twenty months of values, on the 10th and the 28th, for teams shown
	// and not shown, a team whose values stopped in May, one with a value
	// every third month only, and DfE rows of every scope (and one the
	// pack does not read), two councils among them.
	type series struct {
		k      *kpi.KPI
		labels []string
		every  int
		last   time.Time
	}
	var all []series
	oct := time.Date(2026, 10, 1, 0, 0, 0, 0, london)
	for _, k := range []*kpi.KPI{cl, w45} {
		for _, team := range []string{"all", "north", "south", "east", "gappy"} {
			s := series{k: k, labels: []string{"children", team}, every: 1, last: oct}
			switch team {
			case "south":
				s.last = time.Date(2026, 5, 1, 0, 0, 0, 0, london)
			case "gappy":
				s.every = 3
			}
			all = append(all, s)
		}
	}
	for i, scope := range []string{"council", "council", "stat_neighbour", "stat_neighbour", "stat_neighbour", "region", "england", "london_boroughs"} {
		all = append(all, series{k: dfe, labels: []string{fmt.Sprintf("E09%06d", i+1), fmt.Sprintf("Authority %d", i+1), scope}, every: 1, last: oct})
	}
	var obs []kpi.Observation
	for i, s := range all {
		for m := 0; m < 20; m++ {
			month := time.Date(2025, 3+time.Month(m), 1, 0, 0, 0, 0, london)
			if month.After(s.last) || m%s.every != 0 {
				continue
			}
			for _, d := range []int{10, 28} {
				v := kpi.Known(float64((i*7+m*3+d)%23) + 5)
				if s.k == w45 || s.k == dfe {
					v.V /= 25
				}
				if (i+m+d)%11 == 0 {
					v = kpi.Missing
				}
				obs = append(obs, kpi.Observation{KPI: s.k, Labels: s.labels, Period: month.AddDate(0, 0, d-1), Value: v})
			}
		}
	}
	finished := time.Date(2026, 10, 29, 7, 0, 0, 0, time.UTC)
	saveRun := func(obs []kpi.Observation) {
		t.Helper()
		if _, err := st.SaveRun(ctx, kpi.Run{Collector: "pack", Source: "test", Query: "q", StartedAt: finished, FinishedAt: finished}, obs); err != nil {
			t.Fatal(err)
		}
		finished = finished.Add(time.Hour)
	}
	saveRun(obs)
	for _, c := range []kpi.Comment{
		{KPI: cl.Name, Month: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Text: "Caseloads rose with two leavers."},
		{KPI: cl.Name, Labels: map[string]string{"team": "north"}, Month: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Text: "North recruits in November."},
		{KPI: w45.Name, Month: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Text: "November's assessments."},
	} {
		if err := st.SaveComment(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	bench := &report.Benchmark{NameLabel: "la_name"}
	specs := map[string]report.Spec{
		"the demo's shape": {Title: "Pack", Council: "Authority 1", Sections: []report.Section{
			{Title: "Workforce", Items: []report.Item{
				{KPI: cl.Name},
				{KPI: dfe.Name, Match: map[string]string{"la_code": "E09000001"}, Benchmark: bench},
			}},
			{Title: "Assessments", Items: []report.Item{{KPI: w45.Name, Match: map[string]string{"team": "all"}}}},
		}},
		"a benchmark of another KPI, a KPI shown twice, matches of nothing": {Sections: []report.Section{
			{Title: "One", Items: []report.Item{
				{KPI: w45.Name, Match: map[string]string{"team": "north"}, Benchmark: &report.Benchmark{KPI: dfe.Name}},
				{KPI: w45.Name, Match: map[string]string{"service": "children", "team": "gappy"}},
				{KPI: cl.Name, Match: map[string]string{"team": "nowhere"}},
				{KPI: cl.Name, Match: map[string]string{"region": "north"}},
				{KPI: "not_in_the_catalogue"},
			}},
		}},
		"series that stopped, or have gaps": {Sections: []report.Section{
			{Title: "One", Items: []report.Item{
				{KPI: cl.Name, Match: map[string]string{"team": "south"}},
				{KPI: cl.Name, Match: map[string]string{"team": "gappy"}},
				{KPI: dfe.Name, Match: map[string]string{"scope": "council"}, Benchmark: bench},
			}},
		}},
	}
	now := time.Date(2027, 1, 10, 9, 0, 0, 0, time.UTC)
	compare := func(t *testing.T, state string) {
		for name, spec := range specs {
			for _, loc := range []*time.Location{london, utc} {
				for _, month := range []time.Time{{}, time.Date(2026, 10, 1, 0, 0, 0, 0, loc), time.Date(2026, 2, 1, 0, 0, 0, 0, loc), time.Date(2024, 1, 1, 0, 0, 0, 0, loc)} {
					o := report.Options{Month: month, Location: loc, Now: now}
					t.Run(fmt.Sprintf("%s/%s/%s/%s", state, name, loc, month.Format("2006-01")), func(t *testing.T) {
						narrow, err := report.Read(ctx, st, cat, spec, o)
						if err != nil {
							t.Fatal(err)
						}
						whole, err := readWhole(ctx, st, cat, spec, o)
						if err != nil {
							t.Fatal(err)
						}
						if !narrow.Month.Equal(whole.Month) {
							t.Fatalf("month %s, from every series %s", narrow.Month, whole.Month)
						}
						if len(whole.History) > 0 && len(narrow.History) >= len(whole.History) {
							t.Errorf("read %d series, as many as there are (%d)", len(narrow.History), len(whole.History))
						}
						var got, want bytes.Buffer
						if err := report.Assemble(cat, spec, narrow, o).Render(&got); err != nil {
							t.Fatal(err)
						}
						if err := report.Assemble(cat, spec, whole, o).Render(&want); err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(got.Bytes(), want.Bytes()) {
							g, w := strings.Split(got.String(), "\n"), strings.Split(want.String(), "\n")
							for i := range min(len(g), len(w)) {
								if g[i] != w[i] {
									t.Fatalf("pack differs from the one built from every series at line %d:\n got %s\nwant %s", i+1, g[i], w[i])
								}
							}
							t.Fatalf("pack has %d lines, from every series %d", len(g), len(w))
						}
					})
				}
			}
		}
	}
	compare(t, "latest month shown")

	// A team no pack shows reaches November, and a series stored under an
	// older definition of the caseload KPI (its labels no longer the
	// KPI's) December: the pack of the latest month is November's.
	saveRun([]kpi.Observation{{KPI: w45, Labels: []string{"children", "east"}, Period: time.Date(2026, 11, 5, 0, 0, 0, 0, london), Value: kpi.Known(0.5)}})
	legacy := &kpi.KPI{Name: cl.Name, Help: cl.Help, Unit: cl.Unit, Direction: cl.Direction, Labels: []string{"team"}}
	saveRun([]kpi.Observation{{KPI: legacy, Labels: []string{"north"}, Period: time.Date(2026, 12, 3, 0, 0, 0, 0, london), Value: kpi.Known(3)}})
	compare(t, "a later month not shown")
	f, err := report.Read(ctx, st, cat, specs["the demo's shape"], report.Options{Location: london, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 1, 0, 0, 0, 0, london); !f.Month.Equal(want) {
		t.Errorf("the latest month is %s, want %s", f.Month, want)
	}
}
