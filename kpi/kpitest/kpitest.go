// Package kpitest holds the KPI definitions the tests of several rooms
// share, so that a fixture is written once.
package kpitest

import (
	"time"

	"github.com/carewatch/carewatch/kpi"
)

// Caseload is the children's social worker caseload KPI as the demo
// council defines it: lower is better, by service and team, amber above 18
// and red above 22 cases for a team, 15 and 18 for a service as a whole
// (team "all"), stale after 36 hours.
func Caseload() *kpi.KPI {
	return &kpi.KPI{
		Name:       "children_sw_caseload_average",
		Help:       "Average caseload per case-holding FTE social worker.",
		Unit:       "cases",
		Direction:  kpi.LowerIsBetter,
		Labels:     []string{"service", "team"},
		Thresholds: kpi.Thresholds{Amber: kpi.At(18), Red: kpi.At(22)},
		Overrides: []kpi.Override{{
			Match:      map[string]string{"team": "all"},
			Thresholds: kpi.Thresholds{Amber: kpi.At(15), Red: kpi.At(18)},
		}},
		MaxAge: 36 * time.Hour,
	}
}
