package demo_test

import (
	"testing"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/kpi"
)

func wantValue(t *testing.T, what string, got kpi.Value, want float64) {
	t.Helper()
	if !got.Valid || got.V != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func wantMissing(t *testing.T, what string, got kpi.Value) {
	t.Helper()
	if got.Valid {
		t.Errorf("%s = %v, want missing", what, got)
	}
}

func TestAssessmentOnWorkingDay45IsWithinAndOn46IsNot(t *testing.T) {
	cases := []struct {
		name              string
		start, day45, d46 string
	}{
		// Nine whole weeks with no bank holiday.
		{"no bank holiday", "2026-01-05", "2026-03-09", "2026-03-10"},
		// Good Friday, Easter Monday, the early May and spring bank holidays
		// are not working days.
		{"over Easter and May", "2026-04-02", "2026-06-10", "2026-06-11"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := date(c.start)
			if n := demo.WorkingDays(start, date(c.day45)); n != 45 {
				t.Fatalf("WorkingDays(%s, %s) = %d, want 45", c.start, c.day45, n)
			}
			on45 := demo.Assessment{Start: start, Authorised: date(c.day45)}
			on46 := demo.Assessment{Start: start, Authorised: date(c.d46)}
			open := demo.Assessment{Start: start}
			wantValue(t, "day 45", demo.AssessmentsWithin45WDRatio([]demo.Assessment{on45, open}), 1)
			wantValue(t, "day 46", demo.AssessmentsWithin45WDRatio([]demo.Assessment{on46, open}), 0)
			wantValue(t, "both", demo.AssessmentsWithin45WDRatio([]demo.Assessment{on45, on46}), 0.5)
			wantMissing(t, "only open ones", demo.AssessmentsWithin45WDRatio([]demo.Assessment{open}))
		})
	}
	t.Run("same day is 0 working days", func(t *testing.T) {
		if n := demo.WorkingDays(date("2026-01-05"), date("2026-01-05")); n != 0 {
			t.Errorf("same day = %d working days, want 0", n)
		}
	})
}

func TestICPCOnWorkingDay15IsWithinAndOn16IsNot(t *testing.T) {
	// Christmas 2026 falls on a Friday: Boxing Day's substitute is Monday 28
	// December, and New Year's Day a Friday.
	start := date("2026-12-11")
	s := func(icpc string) demo.S47 { return demo.S47{Start: start, ICPC: date(icpc)} }
	wantValue(t, "day 15", demo.ICPCWithin15WDRatio([]demo.S47{s("2027-01-06")}), 1)
	wantValue(t, "day 16", demo.ICPCWithin15WDRatio([]demo.S47{s("2027-01-07")}), 0)
	// A conference dated before its enquiry has no valid duration, and an
	// enquiry with no conference none at all.
	before := demo.S47{Start: start, ICPC: date("2026-12-10")}
	none := demo.S47{Start: start, ICPCUnnecessary: true}
	wantValue(t, "with invalid and none", demo.ICPCWithin15WDRatio([]demo.S47{s("2027-01-06"), before, none}), 1)
}

func TestCPPlanEndingExactlyTwoYearsAfterItStartedHasLastedTwoYears(t *testing.T) {
	from, to := date("2026-06-01"), date("2026-11-30")
	plan := func(start, end string) demo.CPPlan { return demo.CPPlan{Start: date(start), End: date(end)} }
	cases := []struct {
		name string
		plan demo.CPPlan
		want float64
	}{
		{"exactly two years", plan("2024-06-15", "2026-06-15"), 1},
		{"a day short", plan("2024-06-15", "2026-06-14"), 0},
		// 29 February plus two years is 1 March, in Go as in SQLite.
		{"from 29 February, on 28 February", plan("2024-02-29", "2026-02-28"), 0},
		{"from 29 February, on 1 March", plan("2024-02-29", "2026-03-01"), 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			from := from
			if c.plan.End.Before(from) {
				from = c.plan.End
			}
			wantValue(t, "ratio", demo.CPPlanLasted2YearsRatio([]demo.CPPlan{c.plan}, from, to), c.want)
		})
	}
	t.Run("only plans ending in the period count", func(t *testing.T) {
		plans := []demo.CPPlan{plan("2024-06-15", "2026-06-15"), plan("2023-01-01", "2026-05-31"), {Start: date("2020-01-01")}}
		wantValue(t, "ratio", demo.CPPlanLasted2YearsRatio(plans, from, to), 1)
	})
}

func TestRepeatCPPlans(t *testing.T) {
	from, to := date("2026-06-01"), date("2026-11-30")
	plans := []demo.CPPlan{
		{Start: date("2026-06-01"), PreviousPlans: 1}, // first day of the period
		{Start: date("2026-11-30"), PreviousPlans: 0}, // last day
		{Start: date("2026-09-01"), PreviousPlans: 2},
		{Start: date("2026-05-31"), PreviousPlans: 1}, // before it
	}
	wantValue(t, "ratio", demo.RepeatCPPlanRatio(plans, from, to), 2.0/3)
}

func TestReReferrals(t *testing.T) {
	refs := []demo.Referral{{Previous12Months: 0}, {Previous12Months: 1}, {Previous12Months: 3}, {Previous12Months: 0}}
	wantValue(t, "ratio", demo.ReReferralRatio(refs), 0.5)
	wantMissing(t, "empty list", demo.ReReferralRatio(nil))
}

// ep is an SSDA903 episode of child: start, RNE, legal status, placement,
// and end ("" while open).
func ep(child, start, rne, ls, place, end string) demo.Episode {
	e := demo.Episode{Child: child, Start: date(start), RNE: rne, LS: ls, Place: place}
	if end != "" {
		e.End, e.REC = date(end), "X1"
	}
	return e
}

func TestThirdPlacementStartingOn31MarchCountsInTheYear(t *testing.T) {
	eps := []demo.Episode{
		// A: third placement on the year's last day.
		ep("A", "2026-04-01", "S", "C2", "U4", "2026-09-01"),
		ep("A", "2026-09-01", "P", "C2", "U5", "2027-03-31"),
		ep("A", "2027-03-31", "P", "C2", "K2", ""),
		// B: the first placement ended before the year began.
		ep("B", "2025-01-10", "S", "C2", "U4", "2025-03-31"),
		ep("B", "2025-03-31", "P", "C2", "U5", "2026-06-01"),
		ep("B", "2026-06-01", "P", "C2", "U6", ""),
		// C: a temporary placement and the return from it are not placements.
		ep("C", "2026-04-01", "S", "C2", "U4", "2026-08-01"),
		ep("C", "2026-08-01", "P", "C2", "T2", "2026-08-10"),
		ep("C", "2026-08-10", "P", "C2", "U4", "2026-12-01"),
		ep("C", "2026-12-01", "P", "C2", "U5", ""),
		// D: a placement that ended on 1 April was still a placement of the year.
		ep("D", "2025-06-01", "S", "V2", "U4", "2026-04-01"),
		ep("D", "2026-04-01", "P", "V2", "U5", "2026-12-01"),
		ep("D", "2026-12-01", "P", "V2", "U6", ""),
		// E: looked after under short breaks only: outside the measure.
		ep("E", "2026-05-01", "S", "V3", "U4", "2026-06-01"),
		ep("E", "2026-06-01", "P", "V3", "U5", "2026-07-01"),
		ep("E", "2026-07-01", "P", "V3", "U6", ""),
		// F: left care before the year end.
		ep("F", "2026-05-01", "S", "C1", "U4", "2026-06-01"),
		ep("F", "2026-06-01", "P", "C1", "U5", "2026-07-01"),
		ep("F", "2026-07-01", "P", "C1", "U6", "2026-12-01"),
		// G: a new legal status or registration with the same carer (RNE L, T) is not a new placement.
		ep("G", "2026-04-10", "S", "C1", "U4", "2026-06-01"),
		ep("G", "2026-06-01", "L", "C2", "U4", "2026-07-01"),
		ep("G", "2026-07-01", "T", "C2", "U4", ""),
	}
	if got := demo.SSDA903YearEnd(eps); !got.Equal(date("2027-03-31")) {
		t.Fatalf("year end = %v, want 2027-03-31", got)
	}
	// A and D of A, B, C, D, G.
	wantValue(t, "ratio", demo.ThreeOrMorePlacementsRatio(eps), 2.0/5)

	t.Run("a file made during the year is the year to date", func(t *testing.T) {
		inYear := eps[:3]
		inYear[2].Start = date("2026-12-01")
		inYear[1].End = date("2026-12-01")
		if got := demo.SSDA903YearEnd(inYear); !got.Equal(date("2027-03-31")) {
			t.Fatalf("year end = %v, want 2027-03-31", got)
		}
		wantValue(t, "ratio", demo.ThreeOrMorePlacementsRatio(inYear), 1)
	})
}

func TestLongTermPlacementStability(t *testing.T) {
	header := []demo.Header903{
		{Child: "G", DOB: date("2015-01-01")}, {Child: "H", DOB: date("2015-01-01")}, {Child: "I", DOB: date("2012-01-01")},
		{Child: "J", DOB: date("2012-01-01")}, {Child: "K", DOB: date("2011-03-31")}, {Child: "L", DOB: date("2011-04-01")},
	}
	eps := []demo.Episode{
		// G: in care since exactly 30 September two and a half years
		// before the year end, same carer throughout: in, and stable.
		ep("G", "2024-09-30", "S", "C1", "U4", "2025-01-01"),
		ep("G", "2025-01-01", "L", "C2", "U4", ""),
		// H: in care a day less: outside the measure.
		ep("H", "2024-10-01", "S", "C2", "U4", ""),
		// I: a new carer less than two years before the year end.
		ep("I", "2020-01-01", "S", "C2", "U4", "2025-04-01"),
		ep("I", "2025-04-01", "P", "C2", "U5", ""),
		// J: a new carer exactly two years before it: stable.
		ep("J", "2020-01-01", "S", "C2", "U4", "2025-03-31"),
		ep("J", "2025-03-31", "P", "C2", "U5", ""),
		// K: 16 on the year end: outside; L, a day younger: in, and stable.
		ep("K", "2020-01-01", "S", "C2", "U4", ""),
		ep("L", "2020-01-01", "S", "C2", "U4", ""),
		// Someone's third placement on 31 March sets the year.
		ep("M", "2026-04-01", "S", "C2", "U4", "2027-03-31"),
		ep("M", "2027-03-31", "P", "C2", "U5", ""),
	}
	// G, J, L of G, I, J, L.
	wantValue(t, "ratio", demo.LongTermStabilityRatio(header, eps), 3.0/4)
}

func cld(person, kind string, start, end string, mod func(*demo.CLDEvent)) demo.CLDEvent {
	e := demo.CLDEvent{PeriodStart: date("2026-04-01"), PeriodEnd: date("2026-09-30"), Imported: date("2026-11-04"),
		Person: person, ClientType: "Service User", EventType: kind, Start: date(start), Accommodation: "Tenant",
		BirthYear: 1950, BirthMonth: 6}
	if end != "" {
		e.End = date(end)
	}
	if mod != nil {
		mod(&e)
	}
	return e
}

func TestCLDMeasuresReadOnlyTheLatestSubmission(t *testing.T) {
	firstTry := func(e *demo.CLDEvent) { e.Imported = date("2026-10-21") }
	earlier := func(e *demo.CLDEvent) {
		e.PeriodEnd, e.Imported = date("2026-06-30"), date("2026-08-04")
	}
	community := func(mech, comp string) func(*demo.CLDEvent) {
		return func(e *demo.CLDEvent) {
			e.ServiceType, e.DeliveryMechanism, e.ServiceComponent = demo.LongTermCommunity, mech, comp
		}
	}
	rows := []demo.CLDEvent{
		// The first submission of the period, superseded by its resubmission.
		cld("P1", "Service", "2025-01-01", "", func(e *demo.CLDEvent) { firstTry(e); community(demo.DirectPayment, "")(e) }),
		cld("P9", "Service", "2025-01-01", "", func(e *demo.CLDEvent) { firstTry(e); community("", "")(e) }),
		// An earlier quarter's submission.
		cld("P9", "Service", "2025-01-01", "", func(e *demo.CLDEvent) { earlier(e); community("", "")(e) }),
		// The resubmission.
		cld("P1", "Service", "2025-01-01", "", community(demo.DirectPayment, "")),
		cld("P2", "Service", "2025-01-01", "", community("", demo.DirectPayment)),
		cld("P3", "Service", "2025-01-01", "", community(demo.ManagedBudget, "Home Support")),
		cld("P4", "Service", "2025-01-01", "", community(demo.CommissionedSupport, "Home Support")),
		// P5 moved from the community into a nursing home: not in 3D.
		cld("P5", "Service", "2025-01-01", "2026-05-01", community(demo.DirectPayment, "")),
		cld("P5", "Service", "2026-05-02", "", func(e *demo.CLDEvent) {
			e.ServiceType, e.Accommodation = demo.LongTermNursing, "Registered nursing home"
		}),
	}
	if got := len(demo.LatestCLDSubmission(rows)); got != 6 {
		t.Fatalf("latest submission has %d rows, want 6", got)
	}
	sds, dp := demo.ASCOF3DRatios(rows)
	wantValue(t, "3D 1a", sds, 3.0/4)
	wantValue(t, "3D 2a", dp, 2.0/4)
	// P5's latest known status is the nursing home.
	wantValue(t, "2E", demo.ASCOF2ERatio(rows), 4.0/5)

	t.Run("2E takes the status on the latest long-term service", func(t *testing.T) {
		ltc := func(status string) func(*demo.CLDEvent) {
			return func(e *demo.CLDEvent) { e.ServiceType, e.Accommodation = demo.LongTermCommunity, status }
		}
		rows := []demo.CLDEvent{
			// Other events do not count: Q1 is a tenant.
			cld("Q1", "Service", "2025-01-01", "", ltc("Tenant")),
			cld("Q1", "Review", "2026-05-01", "2026-05-01", func(e *demo.CLDEvent) { e.Accommodation = "Unknown" }),
			cld("Q2", "Service", "2025-01-01", "", ltc("Unknown")),
			cld("Q3", "Request", "2026-05-01", "2026-05-01", nil), // not in long-term support
			// Known beats Unknown on the same day; known statuses that
			// disagree are Unknown.
			cld("Q4", "Service", "2026-02-01", "", ltc("Unknown")),
			cld("Q4", "Service", "2026-02-01", "", ltc("Shared Lives scheme")),
			cld("Q5", "Service", "2026-02-01", "", ltc("Tenant")),
			cld("Q5", "Service", "2026-02-01", "", ltc("Rough sleeper / squatting")),
		}
		wantValue(t, "2E", demo.ASCOF2ERatio(rows), 2.0/4)
	})

	t.Run("2B and 2C count first admissions by age", func(t *testing.T) {
		care := func(year int) func(*demo.CLDEvent) {
			return func(e *demo.CLDEvent) { e.ServiceType, e.BirthYear, e.BirthMonth = demo.LongTermResidential, year, 10 }
		}
		rows := []demo.CLDEvent{
			cld("R1", "Service", "2026-05-01", "", care(1950)),
			cld("R2", "Service", "2026-05-01", "", care(1961)), // 64 on 30 September 2026, 65 in October
			cld("R3", "Service", "2026-06-01", "", care(1990)),
			// R4 was in a care home before the period: not a new admission.
			cld("R4", "Service", "2026-05-01", "", care(1940)),
			cld("R4", "Service", "2025-01-01", "2025-02-01", func(e *demo.CLDEvent) { earlier(e); care(1940)(e) }),
		}
		younger, older := demo.ASCOF2B2C(rows, 200000, 50000)
		wantValue(t, "2B", younger, 2*100000.0/200000)
		wantValue(t, "2C", older, 1*100000.0/50000)
	})

	t.Run("request to assessment", func(t *testing.T) {
		rows := []demo.CLDEvent{
			// A request completed in an earlier period still starts the wait.
			cld("S1", "Request", "2026-03-20", "2026-03-20", earlier),
			cld("S1", "Assessment", "2026-04-30", "2026-05-05", nil),
			cld("S2", "Request", "2026-06-01", "2026-06-01", nil),
			cld("S2", "Assessment", "2026-06-11", "2026-06-12", nil),
			cld("S3", "Request", "2026-06-01", "2026-06-01", nil),
			cld("S3", "Assessment", "2026-06-29", "2026-07-01", nil),
			// No request before it: left out.
			cld("S4", "Assessment", "2026-07-01", "2026-07-02", nil),
		}
		median, over := demo.RequestToAssessment(rows)
		wantValue(t, "median", median, 28*86400)
		wantValue(t, "over 28 days", over, 1.0/3)
	})
}

func TestCollectionYearEnd(t *testing.T) {
	for in, want := range map[string]string{"2026-03-31": "2026-03-31", "2026-04-01": "2027-03-31", "2027-01-15": "2027-03-31"} {
		if got := demo.CollectionYearEnd(date(in)); !got.Equal(date(want)) {
			t.Errorf("CollectionYearEnd(%s) = %v, want %s", in, got, want)
		}
	}
}
