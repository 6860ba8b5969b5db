package kpi_test

import (
	"testing"
	"time"

	"github.com/carewatch/carewatch/kpi"
)

func caseload() *kpi.KPI {
	return &kpi.KPI{
		Name: "children_sw_caseload_average", Direction: kpi.LowerIsBetter, Labels: []string{"service", "team"},
		Thresholds: kpi.Thresholds{Amber: kpi.At(18), Red: kpi.At(22)},
		Overrides: []kpi.Override{
			{Match: map[string]string{"team": "all"}, Thresholds: kpi.Thresholds{Amber: kpi.At(15), Red: kpi.At(18)}},
			{Match: map[string]string{"service": "children", "team": "Court"}, Thresholds: kpi.Thresholds{Red: kpi.At(20)}},
			{Match: map[string]string{"service": "children"}, Thresholds: kpi.Thresholds{Amber: kpi.At(17)}},
		},
	}
}

func TestEvaluateIsDirectionAwareAndStrictAtTheBoundary(t *testing.T) {
	within45 := &kpi.KPI{Name: "within_45wd_ratio", Direction: kpi.HigherIsBetter, Thresholds: kpi.Thresholds{Amber: kpi.At(0.9), Red: kpi.At(0.8)}}
	k := caseload()
	for _, tc := range []struct {
		name   string
		k      *kpi.KPI
		labels []string
		v      kpi.Value
		want   kpi.Status
	}{
		{"lower is better: below amber is green", k, []string{"adults", "A"}, kpi.Known(17.9), kpi.StatusGreen},
		{"lower is better: at amber is still green", k, []string{"adults", "A"}, kpi.Known(18), kpi.StatusGreen},
		{"lower is better: above amber is amber", k, []string{"adults", "A"}, kpi.Known(18.1), kpi.StatusAmber},
		{"lower is better: at red is amber", k, []string{"adults", "A"}, kpi.Known(22), kpi.StatusAmber},
		{"lower is better: above red is red", k, []string{"adults", "A"}, kpi.Known(22.5), kpi.StatusRed},
		{"higher is better: above amber is green", within45, nil, kpi.Known(0.95), kpi.StatusGreen},
		{"higher is better: below amber is amber", within45, nil, kpi.Known(0.85), kpi.StatusAmber},
		{"higher is better: below red is red", within45, nil, kpi.Known(0.79), kpi.StatusRed},
		{"a missing value with thresholds is unknown, not green", k, []string{"adults", "A"}, kpi.Missing, kpi.StatusUnknown},
		{"zero is a value, not missing", within45, nil, kpi.Known(0), kpi.StatusRed},
		{"a KPI without thresholds has no status", &kpi.KPI{Name: "open_cases", Direction: kpi.LowerIsBetter}, nil, kpi.Known(1e9), kpi.StatusNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := tc.k.Evaluate(tc.labels, time.Time{}, tc.v); got != tc.want {
				t.Errorf("Evaluate(%v) = %v, want %v", tc.v, got, tc.want)
			}
		})
	}
}

func TestOverridesTheMostSpecificMatchWinsAndInheritsWhatItLeavesOut(t *testing.T) {
	k := caseload()
	for _, tc := range []struct {
		name       string
		labels     []string
		amber, red float64
	}{
		{"no match: the KPI's own", []string{"adults", "Long Term"}, 18, 22},
		{"one label matched", []string{"adults", "all"}, 15, 18},
		{"service override, red inherited", []string{"children", "North"}, 17, 22},
		{"two labels beat one; amber inherited from the KPI", []string{"children", "Court"}, 18, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := k.ThresholdsFor(tc.labels)
			if got.Amber.Value != tc.amber || got.Red.Value != tc.red || !got.Amber.Set || !got.Red.Set {
				t.Errorf("ThresholdsFor(%v) = %+v, want amber %v red %v", tc.labels, got, tc.amber, tc.red)
			}
		})
	}
	if st, th := k.Evaluate([]string{"children", "all"}, time.Time{}, kpi.Known(16)); st != kpi.StatusAmber || th.Red.Value != 18 {
		t.Errorf("service-level 16 = %v against %+v, want amber against red 18", st, th)
	}
}

func TestStatusNumbersAreTheOnesRulesAndDashboardsUse(t *testing.T) {
	for st, want := range map[kpi.Status]float64{kpi.StatusGreen: 0, kpi.StatusAmber: 1, kpi.StatusRed: 2, kpi.StatusUnknown: -1} {
		if st.Number() != want {
			t.Errorf("%v.Number() = %v, want %v", st, st.Number(), want)
		}
		if back, err := kpi.ParseStatus(st.String()); err != nil || back != st {
			t.Errorf("ParseStatus(%q) = %v, %v", st.String(), back, err)
		}
	}
}

func TestSeriesIDIsStableAndTellsLabelNamesApart(t *testing.T) {
	k := caseload()
	a := kpi.SeriesID(k, []string{"children", "North"})
	// A stored ID must never change between releases: it keys the store.
	if a != kpi.SeriesID(k, []string{"children", "North"}) || a < 0 {
		t.Fatalf("SeriesID not stable or negative: %d", a)
	}
	swapped := &kpi.KPI{Name: k.Name, Labels: []string{"team", "service"}}
	for name, other := range map[string]int64{
		"other values":        kpi.SeriesID(k, []string{"children", "South"}),
		"values shifted":      kpi.SeriesID(k, []string{"childre", "nNorth"}),
		"label names swapped": kpi.SeriesID(swapped, []string{"children", "North"}),
		"other KPI":           kpi.SeriesID(&kpi.KPI{Name: "x", Labels: k.Labels}, []string{"children", "North"}),
	} {
		if other == a {
			t.Errorf("%s: same series ID %d", name, a)
		}
	}
	if got := kpi.LabelString(k, []string{"children", `N"orth`}); got != `{service="children",team="N\"orth"}` {
		t.Errorf("LabelString = %s", got)
	}
}

func TestOnlySeriesOutsideOwnSeriesAreBenchmarks(t *testing.T) {
	dfe := &kpi.KPI{Name: "children_sw_dfe_agency_ratio", Direction: kpi.LowerIsBetter, Labels: []string{"la_code", "la_name", "scope"},
		Thresholds: kpi.Thresholds{Amber: kpi.At(0.12), Red: kpi.At(0.2)}, OwnSeries: map[string]string{"scope": "council"}}
	for _, tc := range []struct {
		name   string
		k      *kpi.KPI
		labels []string
		want   bool
	}{
		{"the council's own row is not a benchmark", dfe, []string{"E09000008", "Croydon", "council"}, false},
		{"a statistical neighbour is a benchmark", dfe, []string{"E09000006", "Bromley", "stat_neighbour"}, true},
		{"England is a benchmark", dfe, []string{"E92000001", "England", "england"}, true},
		{"a KPI without own_series has no benchmarks", caseload(), []string{"children", "North"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.k.IsBenchmark(tc.labels); got != tc.want {
				t.Errorf("IsBenchmark(%v) = %v, want %v", tc.labels, got, tc.want)
			}
			// A benchmark keeps its status: only alerting treats it apart.
			if st, _ := tc.k.Evaluate(tc.labels, time.Time{}, kpi.Known(0.3)); tc.k == dfe && st != kpi.StatusRed {
				t.Errorf("Evaluate = %v, want red for a benchmark too", st)
			}
		})
	}
}

func TestATrajectoryJudgesEachPeriodByTheThresholdsInForceThen(t *testing.T) {
	april := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	k := caseload()
	// The improvement plan: amber 18 and red 22 until 31 March 2026, then
	// amber 16 and red 20; the service-wide override tightens its red only.
	k.Trajectory = []kpi.Step{{From: april, Thresholds: kpi.Thresholds{Amber: kpi.At(16), Red: kpi.At(20)}}}
	k.Overrides[0].Trajectory = []kpi.Step{{From: april, Thresholds: kpi.Thresholds{Red: kpi.At(17)}}}
	for _, tc := range []struct {
		name   string
		labels []string
		period time.Time
		v      float64
		want   kpi.Status
		amber  float64
		red    float64
	}{
		{"31 March is judged by the old target", []string{"adults", "A"}, april.AddDate(0, 0, -1), 17, kpi.StatusGreen, 18, 22},
		{"1 April is judged by the new target", []string{"adults", "A"}, april, 17, kpi.StatusAmber, 16, 20},
		{"an override's step moves only what it sets", []string{"children", "all"}, april, 16, kpi.StatusAmber, 15, 17},
		{"an override before its step", []string{"children", "all"}, april.AddDate(0, 0, -1), 17.5, kpi.StatusAmber, 15, 18},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, th := k.Evaluate(tc.labels, tc.period, kpi.Known(tc.v))
			if st != tc.want || th.Amber.Value != tc.amber || th.Red.Value != tc.red {
				t.Errorf("Evaluate = %v with %+v, want %v with amber %v red %v", st, th, tc.want, tc.amber, tc.red)
			}
		})
	}
	if got := k.Changes(); len(got) != 2 || !got[0].Equal(april) {
		t.Errorf("Changes() = %v", got)
	}
}

func TestSeriesIDIsTheSameWhateverTheOrderOfTheLabels(t *testing.T) {
	k := caseload()
	reordered := &kpi.KPI{Name: k.Name, Labels: []string{"team", "service"}}
	if a, b := kpi.SeriesID(k, []string{"children", "North"}), kpi.SeriesID(reordered, []string{"North", "children"}); a != b {
		t.Errorf("service=children, team=North: %d with labels [service team], %d with [team service]", a, b)
	}
}
