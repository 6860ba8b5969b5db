package demo

import (
	"slices"
	"sort"
	"time"

	"github.com/carewatch/carewatch/kpi"
)

// The KPIs of the statutory returns, computed in Go from the returns' rows
// as an independent check on the SQL of examples/annex-a, examples/ssda903
// and examples/cld. Each follows the definition its doc comment gives; the
// choices where published definitions leave room are the same as the
// examples' and are documented there.

// ReReferralRatio is the share of Annex A List 3's referrals whose child
// had a previous referral in the 12 months before it (DfE's re-referral
// rate, from the list's "Number of Referrals in Last 12 Months").
func ReReferralRatio(refs []Referral) kpi.Value {
	n := 0
	for _, r := range refs {
		if r.Previous12Months >= 1 {
			n++
		}
	}
	return ratio(float64(n), float64(len(refs)))
}

// WorkingDays counts the England and Wales working days after from, up to
// and including to: an assessment authorised the day it starts took 0
// working days, one authorised the next working day 1 (DfE's duration
// buckets, which start at "same day").
func WorkingDays(from, to time.Time) int { return WorkingDaysBetween(from, to) }

// AssessmentsWithin45WDRatio is the share of Annex A List 4's authorised
// assessments authorised within 45 working days of their start.
func AssessmentsWithin45WDRatio(as []Assessment) kpi.Value {
	n, d := 0, 0
	cal := newCalendar()
	for _, a := range as {
		if a.Authorised.IsZero() || a.Authorised.Before(a.Start) {
			continue
		}
		d++
		if cal.between(dayOf(a.Start), dayOf(a.Authorised)) <= 45 {
			n++
		}
	}
	return ratio(float64(n), float64(d))
}

// ICPCWithin15WDRatio is the share of Annex A List 5's section 47
// enquiries with an initial child protection conference whose conference
// was held within 15 working days of the strategy discussion that started
// the enquiry. A conference dated before its enquiry has no valid
// duration and is left out, as DfE leaves it out of its duration buckets.
func ICPCWithin15WDRatio(ss []S47) kpi.Value {
	n, d := 0, 0
	cal := newCalendar()
	for _, s := range ss {
		if s.ICPC.IsZero() || s.ICPC.Before(s.Start) {
			continue
		}
		d++
		if cal.between(dayOf(s.Start), dayOf(s.ICPC)) <= 15 {
			n++
		}
	}
	return ratio(float64(n), float64(d))
}

func within(t, from, to time.Time) bool { return !t.IsZero() && !t.Before(from) && !t.After(to) }

// RepeatCPPlanRatio is the share of the child protection plans of Annex A
// List 7 that started between from and to (inclusive) that are a second or
// subsequent plan ("Number of Previous Child Protection Plans" at least 1:
// DfE's "ever" measure).
func RepeatCPPlanRatio(plans []CPPlan, from, to time.Time) kpi.Value {
	n, d := 0, 0
	for _, p := range plans {
		if !within(p.Start, from, to) {
			continue
		}
		d++
		if p.PreviousPlans >= 1 {
			n++
		}
	}
	return ratio(float64(n), float64(d))
}

// CPPlanLasted2YearsRatio is the share of the child protection plans of
// Annex A List 7 that ended between from and to (inclusive) that had lasted
// two years or more: ended on or after the second anniversary of their
// start (DfE's plans ending by duration, "2 years or more").
func CPPlanLasted2YearsRatio(plans []CPPlan, from, to time.Time) kpi.Value {
	n, d := 0, 0
	for _, p := range plans {
		if !within(p.End, from, to) {
			continue
		}
		d++
		if !p.End.Before(p.Start.AddDate(2, 0, 0)) {
			n++
		}
	}
	return ratio(float64(n), float64(d))
}

// SSDA903YearEnd is 31 March ending the collection year of an episodes
// file: the first 31 March on or after the latest date it holds. A file
// made during the year is read as the year to date.
func SSDA903YearEnd(eps []Episode) time.Time {
	var latest time.Time
	for _, e := range eps {
		for _, t := range []time.Time{e.Start, e.End} {
			if t.After(latest) {
				latest = t
			}
		}
	}
	return CollectionYearEnd(latest)
}

// childEpisodes groups episodes by child, each child's in date order.
func childEpisodes(eps []Episode) map[string][]Episode {
	by := map[string][]Episode{}
	for _, e := range eps {
		by[e.Child] = append(by[e.Child], e)
	}
	for _, es := range by {
		slices.SortStableFunc(es, func(a, b Episode) int { return a.Start.Compare(b.Start) })
	}
	return by
}

// cohort903 is a child looked after at the year end, not only under short
// breaks: its episodes, the index of the episode open at the year end, and
// each episode's carer spell (numbered from 1).
type cohort903 struct {
	eps     []Episode
	current int
	spell   []int
}

func lookedAfterAt(eps []Episode, yearEnd time.Time) map[string]cohort903 {
	out := map[string]cohort903{}
	for child, es := range childEpisodes(eps) {
		c := cohort903{eps: es, current: -1, spell: make([]int, len(es))}
		s := 0
		for i, e := range es {
			if newCarer(es, i) {
				s++
			}
			c.spell[i] = s
			if !e.Start.After(yearEnd) && (e.End.IsZero() || e.End.After(yearEnd)) {
				c.current = i
			}
		}
		if c.current < 0 || es[c.current].LS == "V3" || es[c.current].LS == "V4" {
			continue
		}
		out[child] = c
	}
	return out
}

// ThreeOrMorePlacementsRatio is DfE's short-term placement stability
// measure over an SSDA903 return: of the children looked after at the
// year end (SSDA903YearEnd), other than those looked after only under
// short breaks (legal status V3 or V4 at the year end), the share who had
// three or more placements during the year. A placement is a spell with
// the same carer: it starts with a period of care (RNE S) or a change of
// carer (RNE P or B), except that a temporary placement (T0 to T4) and the
// return from it do not start one. A spell counts if any of its episodes
// was open on a day of the year (started by the year end and ended on or
// after its first day).
func ThreeOrMorePlacementsRatio(eps []Episode) kpi.Value {
	e := SSDA903YearEnd(eps)
	s := e.AddDate(-1, 0, 1)
	n, d := 0, 0
	for _, c := range lookedAfterAt(eps, e) {
		d++
		spells := map[int]bool{}
		for i, ep := range c.eps {
			if !ep.Start.After(e) && (ep.End.IsZero() || !ep.End.Before(s)) {
				spells[c.spell[i]] = true
			}
		}
		if len(spells) >= 3 {
			n++
		}
	}
	return ratio(float64(n), float64(d))
}

// LongTermStabilityRatio is DfE's long-term placement stability measure
// (formerly NI 63) over an SSDA903 return: of the children looked after at
// the year end, not only under short breaks, aged under 16 then and looked
// after continuously for at least two and a half years (the current period
// of care started on or before 30 September two and a half years before
// the year end), the share who had lived with the same carer for at least
// two years (the current spell started on or before 31 March two years
// before). header gives the dates of birth.
func LongTermStabilityRatio(header []Header903, eps []Episode) kpi.Value {
	e := SSDA903YearEnd(eps)
	dob := map[string]time.Time{}
	for _, h := range header {
		dob[h.Child] = h.DOB
	}
	under16 := e.AddDate(-16, 0, 0)
	periodBy := e.AddDate(0, 0, 1).AddDate(0, -30, 0).AddDate(0, 0, -1)
	spellBy := e.AddDate(-2, 0, 0)
	n, d := 0, 0
	for child, c := range lookedAfterAt(eps, e) {
		b, ok := dob[child]
		if !ok || !b.After(under16) {
			continue
		}
		var periodStart, spellStart time.Time
		for i := c.current; i >= 0; i-- {
			if c.spell[i] == c.spell[c.current] {
				spellStart = c.eps[i].Start
			}
			if c.eps[i].RNE == "S" {
				periodStart = c.eps[i].Start
				break
			}
		}
		if periodStart.IsZero() || periodStart.After(periodBy) {
			continue
		}
		d++
		if !spellStart.After(spellBy) {
			n++
		}
	}
	return ratio(float64(n), float64(d))
}

// LatestCLDSubmission returns the rows of the latest submission in rows:
// those of the latest reporting period, and of its latest import. Every
// resubmission appends rows and none is deleted, so the rows of earlier
// imports would count events twice.
func LatestCLDSubmission(rows []CLDEvent) []CLDEvent {
	var pe, imp time.Time
	for _, r := range rows {
		if r.PeriodEnd.After(pe) {
			pe, imp = r.PeriodEnd, r.Imported
		} else if r.PeriodEnd.Equal(pe) && r.Imported.After(imp) {
			imp = r.Imported
		}
	}
	var out []CLDEvent
	for _, r := range rows {
		if r.PeriodEnd.Equal(pe) && r.Imported.Equal(imp) {
			out = append(out, r)
		}
	}
	return out
}

func longTerm(serviceType string) bool {
	return serviceType == LongTermNursing || serviceType == LongTermResidential || serviceType == LongTermCommunity
}

// ASCOF2ERatio is ASCOF 2E over the latest CLD submission, as NHS
// England's replication of it reads CLD: of the service users with a
// long-term service (nursing, residential or community) active at any time
// in the period and alive at its start, the share living in settled
// accommodation. A person's status is the one on their long-term service
// with the latest start; among several starting that day a known status
// wins over Unknown, and known statuses that disagree make it Unknown.
func ASCOF2ERatio(rows []CLDEvent) kpi.Value {
	type latest struct {
		start time.Time
		known map[string]bool
	}
	people := map[string]*latest{}
	for _, r := range LatestCLDSubmission(rows) {
		if r.ClientType != cldServiceUser || r.EventType != "Service" || !longTerm(r.ServiceType) ||
			r.Start.After(r.PeriodEnd) || (!r.End.IsZero() && r.End.Before(r.PeriodStart)) ||
			(!r.Died.IsZero() && r.Died.Before(r.PeriodStart)) {
			continue
		}
		l, ok := people[r.Person]
		if !ok || r.Start.After(l.start) {
			l = &latest{start: r.Start, known: map[string]bool{}}
			people[r.Person] = l
		}
		if r.Start.Equal(l.start) && r.Accommodation != "" && r.Accommodation != "Unknown" {
			l.known[r.Accommodation] = true
		}
	}
	n := 0
	for _, l := range people {
		if len(l.known) == 1 {
			for status := range l.known {
				if IsSettled(status) {
					n++
				}
			}
		}
	}
	return ratio(float64(n), float64(len(people)))
}

// ASCOF3DRatios is ASCOF 3D over the latest CLD submission, part 1a (self-
// directed support) and part 2a (direct payments): of the service users
// whose long-term support at the period end is in the community (the
// setting of their services open at the end, nursing before residential
// before community, as SALT ranked them), the share with self-directed
// support (a direct payment or a council-managed personal budget on a
// community service open at the end) and the share with a direct payment
// (in the delivery mechanism or the service component).
func ASCOF3DRatios(rows []CLDEvent) (selfDirected, directPayments kpi.Value) {
	sub := LatestCLDSubmission(rows)
	rank := map[string]int{LongTermCommunity: 1, LongTermResidential: 2, LongTermNursing: 3}
	setting := map[string]int{}
	sds, dp := map[string]bool{}, map[string]bool{}
	for _, r := range sub {
		if r.ClientType != cldServiceUser || r.EventType != "Service" || !longTerm(r.ServiceType) {
			continue
		}
		if r.Start.After(r.PeriodEnd) || (!r.End.IsZero() && r.End.Before(r.PeriodEnd)) {
			continue
		}
		setting[r.Person] = max(setting[r.Person], rank[r.ServiceType])
		if r.ServiceType != LongTermCommunity {
			continue
		}
		direct := r.DeliveryMechanism == DirectPayment || r.ServiceComponent == DirectPayment
		if direct {
			dp[r.Person] = true
		}
		if direct || r.DeliveryMechanism == ManagedBudget {
			sds[r.Person] = true
		}
	}
	n1, n2, d := 0, 0, 0
	for p, s := range setting {
		if s != 1 {
			continue
		}
		d++
		if sds[p] {
			n1++
		}
		if dp[p] {
			n2++
		}
	}
	return ratio(float64(n1), float64(d)), ratio(float64(n2), float64(d))
}

// AgeAtCLD is a person's age in whole years on d, from their birth year
// and month (the first of the month standing for the date of birth).
func AgeAtCLD(year, month int, d time.Time) int {
	age := d.Year() - year
	if int(d.Month()) < month {
		age--
	}
	return age
}

// ASCOF2B2C is ASCOF 2B (aged 18 to 64) and 2C (65 and over) over CLD:
// people whose first residential or nursing care service in all the rows
// (every submission kept, for the history) started in the latest
// submission's period, by age at its end, per 100,000 of the population of
// that age (the council's own ONS mid-year estimates).
func ASCOF2B2C(rows []CLDEvent, population1864, population65 float64) (younger, older kpi.Value) {
	sub := LatestCLDSubmission(rows)
	if len(sub) == 0 {
		return kpi.Missing, kpi.Missing
	}
	ps, pe := sub[0].PeriodStart, sub[0].PeriodEnd
	type first struct {
		start       time.Time
		year, month int
	}
	firsts := map[string]first{}
	for _, r := range rows {
		if r.ClientType != cldServiceUser || r.EventType != "Service" ||
			(r.ServiceType != LongTermResidential && r.ServiceType != LongTermNursing) {
			continue
		}
		if f, ok := firsts[r.Person]; !ok || r.Start.Before(f.start) {
			firsts[r.Person] = first{r.Start, r.BirthYear, r.BirthMonth}
		}
	}
	n1864, n65 := 0, 0
	for _, f := range firsts {
		if !within(f.start, ps, pe) {
			continue
		}
		switch age := AgeAtCLD(f.year, f.month, pe); {
		case age >= 65:
			n65++
		case age >= 18:
			n1864++
		}
	}
	return ratio(float64(n1864)*100000, population1864), ratio(float64(n65)*100000, population65)
}

// RequestToAssessment is the time from request to assessment over CLD
// (DHSC's planned CLD waiting-time statistic, a local measure): for every
// assessment completed in the latest submission's period, the days from
// the person's latest request on or before the assessment's start (looked
// for in every submission kept, since a request may have been completed in
// an earlier period) to that start; the median, in seconds, and the share
// of waits over 28 days. Assessments with no request before them are left
// out.
func RequestToAssessment(rows []CLDEvent) (median, over28 kpi.Value) {
	sub := LatestCLDSubmission(rows)
	requests := map[string][]time.Time{}
	for _, r := range rows {
		if r.EventType == "Request" {
			requests[r.Person] = append(requests[r.Person], r.Start)
		}
	}
	var waits []int
	for _, r := range sub {
		if r.EventType != "Assessment" || r.End.IsZero() || !within(r.End, r.PeriodStart, r.PeriodEnd) {
			continue
		}
		var req time.Time
		for _, q := range requests[r.Person] {
			if !q.After(r.Start) && q.After(req) {
				req = q
			}
		}
		if req.IsZero() {
			continue
		}
		waits = append(waits, int(r.Start.Sub(req).Hours()/24))
	}
	if len(waits) == 0 {
		return kpi.Missing, kpi.Missing
	}
	sort.Ints(waits)
	n := 0
	for _, w := range waits {
		if w > 28 {
			n++
		}
	}
	return kpi.Known(percentileCont(waits, 0.5) * 86400), ratio(float64(n), float64(len(waits)))
}

// Population the demo council's CLD example divides admissions by: a
// London borough's ONS mid-year estimates, rounded.
const (
	DemoPopulation1864 = 245000
	DemoPopulation65   = 38000
)

// byTeam calls fn with the rows of each team named in rows, and with all
// of them as team "all".
func byTeam[T any](rows []T, team func(T) string, fn func(team string, rows []T)) {
	teams := map[string][]T{}
	for _, r := range rows {
		teams[team(r)] = append(teams[team(r)], r)
	}
	for t, rs := range teams {
		fn(t, rs)
	}
	fn("all", rows)
}

// Figures computes every KPI of the returns as examples/annex-a,
// examples/ssda903 and examples/cld report them, by series: Annex A's over
// its lists, for each allocated team and for all (source "annex_a"; plans
// starting or ending in the six months to List 7's date, AnnexAListDate),
// SSDA903's over the return (source "ssda903"), CLD's over its
// submissions (source "cld").
func (r *Returns) Figures() Figures {
	f := Figures{}
	listDate := AnnexAListDate(r.CPPlans)
	from := AnnexAFrom(listDate)
	annexA := func(name string) func(team string, v kpi.Value) {
		return func(team string, v kpi.Value) {
			f[SeriesKey(name, map[string]string{"team": team, "source": "annex_a"})] = v
		}
	}
	set := func(name, source string, v kpi.Value) { f[SeriesKey(name, map[string]string{"source": source})] = v }

	put := annexA("children_rereferral_12m_ratio")
	byTeam(r.Referrals, func(x Referral) string { return x.Team }, func(t string, rs []Referral) { put(t, ReReferralRatio(rs)) })
	put45 := annexA("children_annex_a_assessment_within_45wd_ratio")
	byTeam(r.Assessments, func(x Assessment) string { return x.Team }, func(t string, rs []Assessment) { put45(t, AssessmentsWithin45WDRatio(rs)) })
	put15 := annexA("children_icpc_within_15wd_ratio")
	byTeam(r.S47s, func(x S47) string { return x.Team }, func(t string, rs []S47) { put15(t, ICPCWithin15WDRatio(rs)) })
	putRepeat, put2y := annexA("children_cp_plan_repeat_ratio"), annexA("children_cp_plan_ended_2y_plus_ratio")
	byTeam(r.CPPlans, func(x CPPlan) string { return x.Team }, func(t string, rs []CPPlan) {
		putRepeat(t, RepeatCPPlanRatio(rs, from, listDate))
		put2y(t, CPPlanLasted2YearsRatio(rs, from, listDate))
	})

	set("children_cla_3plus_placements_ratio", "ssda903", ThreeOrMorePlacementsRatio(r.SSDA903.Episodes))
	set("children_cla_long_term_stability_ratio", "ssda903", LongTermStabilityRatio(r.SSDA903.Header, r.SSDA903.Episodes))

	set("adults_ascof_2e_home_or_family_ratio", "cld", ASCOF2ERatio(r.CLD))
	sds, dp := ASCOF3DRatios(r.CLD)
	set("adults_ascof_3d_self_directed_ratio", "cld", sds)
	set("adults_ascof_3d_direct_payments_ratio", "cld", dp)
	y, o := ASCOF2B2C(r.CLD, DemoPopulation1864, DemoPopulation65)
	set("adults_ascof_2b_admissions_per_100k", "cld", y)
	set("adults_ascof_2c_admissions_per_100k", "cld", o)
	med, over := RequestToAssessment(r.CLD)
	set("adults_request_to_assessment_median_seconds", "cld", med)
	set("adults_request_to_assessment_over_28d_ratio", "cld", over)
	return f
}
