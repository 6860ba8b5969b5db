package exporter_test

import (
	"time"

	"github.com/carewatch/carewatch/exporter"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/kpi/kpitest"
)

// The fixtures are synthetic: made-up teams and round numbers.

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func caseloadKPI() *kpi.KPI { return kpitest.Caseload() }

func contactsKPI() *kpi.KPI {
	return &kpi.KPI{
		Name:      "adults_contacts",
		Help:      "Contacts received by adult social care in the month",
		Unit:      "contacts",
		Direction: kpi.LowerIsBetter,
		Labels:    []string{"authority"},
	}
}

func timelinessKPI() *kpi.KPI {
	return &kpi.KPI{
		Name:       "children_assessment_within_45wd_ratio",
		Help:       "Assessments completed within 45 working days, as a ratio of all completed.",
		Unit:       "ratio",
		Direction:  kpi.HigherIsBetter,
		Thresholds: kpi.Thresholds{Amber: kpi.At(0.85)},
		MaxAge:     45 * 24 * time.Hour,
	}
}

func catalogue(ks ...*kpi.KPI) kpi.Catalogue {
	c := kpi.Catalogue{}
	for _, k := range ks {
		c[k.Name] = k
	}
	return c
}

// state is a series state whose status and thresholds are evaluated the way
// the store evaluates them.
func state(k *kpi.KPI, period time.Time, v kpi.Value, labels ...string) kpi.SeriesState {
	st, t := k.Evaluate(labels, period, v)
	return kpi.SeriesState{
		KPI: k, Labels: labels, Period: period, Value: v, Status: st, Thresholds: t,
		CollectedAt: period.Add(30 * time.Hour), RunID: 1,
	}
}

// fixture is a small snapshot with every kind of family and series.
type fixture struct {
	cat    kpi.Catalogue
	series []kpi.SeriesState
	health []kpi.CollectorHealth
}

func newFixture() fixture {
	caseload, contacts, timeliness := caseloadKPI(), contactsKPI(), timelinessKPI()
	return fixture{
		cat: catalogue(caseload, contacts, timeliness),
		series: []kpi.SeriesState{
			state(caseload, day("2025-03-31"), kpi.Known(23), "children", "Team B"),
			state(caseload, day("2025-03-31"), kpi.Known(17.5), "children", "Team A"),
			state(caseload, day("2025-03-31"), kpi.Missing, "children", "all"),
			state(contacts, day("2025-03-01"), kpi.Known(120), "E09000001"),
			state(timeliness, day("2025-03-01"), kpi.Known(0.8)),
		},
		health: []kpi.CollectorHealth{
			{
				Collector: "hr_export", Runs: 3, Failures: 3, LastRunOK: false,
				LastRunAt: time.Date(2025, 4, 1, 2, 0, 1, 0, time.UTC), LastRunDuration: time.Second,
				LastError: "open hr.csv: no such file",
			},
			{
				Collector: "caseload", Runs: 10, Failures: 2, LastRunOK: true,
				LastRunAt:       time.Date(2025, 4, 1, 6, 0, 5, 0, time.UTC),
				LastRunDuration: 5250 * time.Millisecond,
				LastSuccessAt:   time.Date(2025, 4, 1, 6, 0, 5, 0, time.UTC), LastObservations: 42,
			},
		},
	}
}

func (f fixture) snapshot() *exporter.Snapshot {
	return exporter.NewSnapshot(f.cat, f.series, f.health)
}
