package store_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/carewatch/carewatch/kpi"
)

func TestMonthlyHistoryKeepsEachMonthsLatestPeriod(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	k := caseload()
	cat := kpi.Catalogue{k.Name: k}
	london, _ := time.LoadLocation("Europe/London")
	date := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, london) }
	var o []kpi.Observation
	// Daily values from 1 October 2025 to 15 March 2026 for one team; the
	// service as a whole only at the end of each month, one of them missing.
	for d := date(2025, 10, 1); !d.After(date(2026, 3, 15)); d = d.AddDate(0, 0, 1) {
		o = append(o, obs(k, d, kpi.Known(float64(d.Month())+float64(d.Day())/100), "children", "north"))
		if d.AddDate(0, 0, 1).Day() == 1 {
			v := kpi.Known(14)
			if d.Month() == time.December {
				v = kpi.Missing
			}
			o = append(o, obs(k, d, v, "children", "all"))
		}
	}
	save(t, s, run("caseload", t0), o...)

	hist, err := s.MonthlyHistory(ctx, cat, kpi.HistoryQuery{
		KPIs: []string{k.Name, "not_in_the_catalogue"}, Until: date(2026, 2, 20), Months: 4, Location: london,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Fatalf("got %d series, want 2: %+v", len(hist), hist)
	}
	all, north := hist[0], hist[1]
	if all.Labels[1] != "all" || north.Labels[1] != "north" {
		t.Fatalf("series out of order: %v then %v", all.Labels, north.Labels)
	}
	wantNorth := []time.Time{date(2025, 11, 30), date(2025, 12, 31), date(2026, 1, 31), date(2026, 2, 20)}
	if len(north.Points) != len(wantNorth) {
		t.Fatalf("north: got %d points, want %d: %+v", len(north.Points), len(wantNorth), north.Points)
	}
	for i, p := range north.Points {
		if !p.Period.Equal(wantNorth[i]) {
			t.Errorf("north point %d: period %s, want %s", i, p.Period.In(london), wantNorth[i])
		}
		if !p.Value.Valid || p.CollectedAt.IsZero() {
			t.Errorf("north point %d: value %v collected %v, want a value and its collection time", i, p.Value, p.CollectedAt)
		}
	}
	// February has no month end yet for "all": its latest month with a value
	// is January, and December's missing value stays missing.
	wantAll := []time.Time{date(2025, 10, 31), date(2025, 11, 30), date(2025, 12, 31), date(2026, 1, 31)}
	if len(all.Points) != len(wantAll) {
		t.Fatalf("all: got %d points, want %d: %+v", len(all.Points), len(wantAll), all.Points)
	}
	for i, p := range all.Points {
		if !p.Period.Equal(wantAll[i]) {
			t.Errorf("all point %d: period %s, want %s", i, p.Period.In(london), wantAll[i])
		}
	}
	if all.Points[2].Value.Valid {
		t.Errorf("December's missing value came back as %v", all.Points[2].Value)
	}
}

func TestMonthlyHistoryReadsOnlyTheSeriesAsked(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	k, h := caseload(), headcount()
	cat := kpi.Catalogue{k.Name: k, h.Name: h}
	var o []kpi.Observation
	for _, service := range []string{"adults", "children"} {
		for _, team := range []string{"all", "north", "south", ""} {
			o = append(o, obs(k, day(2), kpi.Known(3), service, team))
		}
		o = append(o, obs(h, day(2), kpi.Known(40), service))
	}
	save(t, s, run("caseload", t0), o...)
	every, err := s.MonthlyHistory(ctx, cat, kpi.HistoryQuery{KPIs: []string{k.Name, h.Name}, Until: day(30), Months: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(every) != 10 {
		t.Fatalf("got %d series, want 10", len(every))
	}
	for name, sets := range map[string][]map[string]string{
		"one label":                     {{"team": "north"}},
		"two labels":                    {{"service": "children", "team": "all"}},
		"several sets, overlapping":     {{"team": "north"}, {"service": "adults"}, {"service": "adults", "team": "all"}},
		"an empty value":                {{"team": ""}},
		"a label the KPI does not have": {{"region": "north"}},
		"an empty set: every series":    {{}, {"team": "south"}},
		"no set: none":                  {},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := s.MonthlyHistory(ctx, cat, kpi.HistoryQuery{
				KPIs: []string{k.Name, h.Name}, Series: map[string][]map[string]string{k.Name: sets}, Until: day(30), Months: 2,
			})
			if err != nil {
				t.Fatal(err)
			}
			var want []kpi.SeriesHistory
			for _, sh := range every {
				if sh.KPI == h || slices.ContainsFunc(sets, func(m map[string]string) bool { return k.Matches(m, sh.Labels) }) {
					want = append(want, sh)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", seriesLabels(got), seriesLabels(want))
			}
		})
	}
}

func seriesLabels(hs []kpi.SeriesHistory) [][]string {
	out := make([][]string, len(hs))
	for i, h := range hs {
		out[i] = append([]string{h.KPI.Name}, h.Labels...)
	}
	return out
}

func TestCommentsKeepEveryVersionAndServeTheLatest(t *testing.T) {
	s, _, c := newStore(t)
	ctx := context.Background()
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	write := func(k string, labels map[string]string, month time.Time, text string) {
		t.Helper()
		c.Set(c.Now().Add(time.Minute))
		if err := s.SaveComment(ctx, kpi.Comment{KPI: k, Labels: labels, Month: month, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	write("children_sw_caseload_average", nil, nov, "first draft")
	write("children_sw_caseload_average", nil, nov, "  Caseloads rose as two agency workers left.  ")
	write("children_sw_caseload_average", map[string]string{"team": "north"}, nov, "North is recruiting.")
	write("children_sw_caseload_average", nil, nov.AddDate(0, 1, 0), "December's comment")

	got, err := s.Comments(ctx, nov)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d comments, want 2: %+v", len(got), got)
	}
	if got[0].Text != "Caseloads rose as two agency workers left." || len(got[0].Labels) != 0 {
		t.Errorf("KPI comment: %+v", got[0])
	}
	if got[1].Text != "North is recruiting." || got[1].Labels["team"] != "north" {
		t.Errorf("team comment: %+v", got[1])
	}
	if n := count(t, s, "comments"); n != 4 {
		t.Errorf("%d comments stored, want all 4 kept", n)
	}
	for _, bad := range []kpi.Comment{
		{KPI: "children_sw_caseload_average", Month: nov, Text: "   "},
		{KPI: "children_sw_caseload_average", Month: nov.AddDate(0, 0, 3), Text: "mid-month"},
	} {
		if err := s.SaveComment(ctx, bad); err == nil {
			t.Errorf("SaveComment(%+v) succeeded, want an error", bad)
		}
	}
}
