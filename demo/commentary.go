package demo

import (
	"time"

	"github.com/carewatch/carewatch/kpi"
)

// Commentary is what the demo council's performance officers write in the
// month starting at month: a comment on the overloaded family support
// team's caseload (red on purpose, see teamPlan) and one on the service's
// caseload as a whole. Every other red or amber KPI is left without, so the
// pack shows what commentary is still owed.
func Commentary(month time.Time) []kpi.Comment {
	month = kpi.CommentMonth(month)
	next := month.AddDate(0, 1, 0)
	return []kpi.Comment{
		{
			KPI:    "children_sw_caseload_average",
			Labels: map[string]string{"team": "Family Support East"},
			Month:  month,
			Text: "Caseloads rose as two agency social workers left the team. Twelve cases move to Family Support West this month, " +
				"and the recruitment drive for three permanent posts closes on 15 " + next.Format("January") + ".",
		},
		{
			KPI:    "children_sw_caseload_average",
			Labels: map[string]string{"team": "all"},
			Month:  month,
			Text:   "The service average stays within the London range; the pressure is in one family support team (see below).",
		},
	}
}
