package demo

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// CLD values the demo uses and the measures read.
const (
	cldServiceUser = "Service User"

	LongTermNursing     = "Long Term Support: Nursing Care"
	LongTermResidential = "Long Term Support: Residential Care"
	LongTermCommunity   = "Long Term Support: Community"
	ShortTermSTMax      = "Short Term Support: ST-Max"

	DirectPayment       = "Direct Payment"
	ManagedBudget       = "CASSR Managed Personal Budget"
	CommissionedSupport = "CASSR Commissioned Support"
)

// SettledAccommodation is the Accommodation_Status values ASCOF 2E counts
// as living in one's own home or with family.
var SettledAccommodation = []string{
	"Owner occupier or shared ownership scheme",
	"Tenant",
	"Tenant - private landlord",
	"Settled mainstream housing with family / friends",
	"Supported accommodation / supported lodgings / supported group home",
	"Shared Lives scheme",
	"Approved premises for offenders released from prison or under probation supervision",
	"Sheltered housing / extra care housing / other sheltered housing",
	"Mobile accommodation for Gypsy / Roma and Traveller communities",
}

var unsettledAccommodation = []string{
	"Rough sleeper / squatting",
	"Night shelter / emergency hostel / direct access hostel",
	"Placed in temporary accommodation by the council (inc. homelessness resettlement)",
	"Staying with family / friends as a short-term guest",
	"Acute / long-term healthcare residential facility or hospital",
	"Other temporary accommodation",
}

// IsSettled reports whether an Accommodation_Status is in the settled group.
func IsSettled(status string) bool { return slices.Contains(SettledAccommodation, status) }

// Standing population of long-term clients who came to the council before
// the demo's history begins.
const standingClients = 1400

// cldPerson is an adult as CLD describes them, with the events of their
// story in date order, before any submission cuts them.
type cldPerson struct {
	id                    string
	gender                string
	birthYear, birthMonth int
	died                  day
	supportReason         string
	accommodation         string
	employment            string
	events                []cldEv
}

type cldEv struct {
	kind, ref                    string
	start, end                   day // end none: still open
	outcome                      string
	service, component, delivery string
	review                       string
	unknownAccommodation         bool
}

func (in *returnsInput) adultPerson(rng *rand.Rand, id string, on day) *cldPerson {
	p := &cldPerson{id: id, died: none}
	age := 18 + rng.IntN(47)
	if rng.Float64() < 0.68 {
		age = 65 + rng.IntN(35)
	}
	born := on.time().AddDate(-age, 0, -rng.IntN(365))
	p.birthYear, p.birthMonth = born.Year(), int(born.Month())
	p.gender = pick(rng, "Male", "Female", "Female")
	p.supportReason = pick(rng, "Physical Support: Personal care support", "Physical Support: Personal care support",
		"Physical Support: Access & mobility only", "Support with Memory & Cognition", "Learning Disability Support",
		"Mental Health Support", "Sensory Support: Support for visual impairment", "Social Support: Support for Social Isolation/Other")
	if rng.Float64() < 0.86 {
		p.accommodation = pick(rng, SettledAccommodation[:6]...)
	} else {
		p.accommodation = pick(rng, unsettledAccommodation...)
	}
	p.employment = "Not in Paid Employment (not actively seeking work / retired)"
	if age < 65 && rng.Float64() < 0.1 {
		p.employment = pick(rng, "Paid: Less than 16 hours a week", "Paid: 16 or more hours a week")
	}
	return p
}

// longTermService adds a long-term service starting on start to p, with its
// annual reviews, the older the more likely in a care home.
func (in *returnsInput) longTermService(rng *rand.Rand, p *cldPerson, ref string, start day) {
	age := start.time().Year() - p.birthYear
	e := cldEv{kind: "Service", ref: ref, start: start, end: none, service: LongTermCommunity}
	u := rng.Float64()
	switch {
	case age >= 65 && u < 0.10, age < 65 && u < 0.01:
		e.service = LongTermNursing
	case age >= 65 && u < 0.24, age < 65 && u < 0.07:
		e.service = LongTermResidential
	}
	mean := 1400.0
	if e.service == LongTermCommunity {
		switch v := rng.Float64(); {
		case v < 0.21:
			e.delivery, e.component = DirectPayment, DirectPayment
		case v < 0.26:
			// Some councils record a direct payment as the service
			// component only.
			e.component = DirectPayment
		case v < 0.70:
			e.delivery, e.component = ManagedBudget, "Home Support"
		default:
			e.delivery, e.component = CommissionedSupport, "Home Support"
		}
	} else {
		e.delivery, e.component = CommissionedSupport, "Care Home Placement"
		mean = 700
		p.accommodation = "Registered care home"
		if e.service == LongTermNursing {
			p.accommodation = "Registered nursing home"
		}
	}
	length := 30 + day(rng.ExpFloat64()*mean)
	e.end = start + length
	e.outcome = pick(rng, "Service ended as planned", "NFA - Deceased", "NFA - Deceased", "NFA - Moved to another LA")
	if e.outcome == "NFA - Deceased" {
		p.died = e.end
	}
	p.events = append(p.events, e)
	for rv, i := start+365, 1; rv < e.end; rv, i = rv+365, i+1 {
		if rng.Float64() < 0.22 {
			continue // a review missed
		}
		p.events = append(p.events, cldEv{kind: "Review", ref: fmt.Sprintf("%s-R%d", ref, i), start: rv, end: rv + day(rng.IntN(8)),
			outcome: pick(rng, "No change in package", "No change in package", "Progress to Support Planning / Services"), review: "Planned"})
	}
}

// adults builds the council's CLD submissions.
func (in *returnsInput) adults(r *Returns) {
	var people []*cldPerson
	for _, q := range in.requests {
		rng := recordRNG(in.seed, streamAdult, q.ID)
		requested := dayOf(q.Requested)
		p := in.adultPerson(rng, fmt.Sprintf("DEMO-A%07d", q.ID), requested)
		p.events = append(p.events, cldEv{kind: "Request", ref: fmt.Sprintf("RQ%07d", q.ID), start: requested, end: requested,
			outcome: "Progress to Assessment", unknownAccommodation: rng.Float64() < 0.3})
		if assessed := dateOrZero(q.Assessed); assessed != none {
			done := assessed + day(rng.IntN(15))
			a := cldEv{kind: "Assessment", ref: fmt.Sprintf("AS%07d", q.ID), start: assessed, end: done}
			switch u := rng.Float64(); {
			case u < 0.50:
				a.outcome = "Progress to Support Planning / Services"
				in.longTermService(rng, p, fmt.Sprintf("SV%07d", q.ID), done+1+day(rng.IntN(20)))
			case u < 0.62:
				a.outcome = "Progress to Reablement/ST-Max"
				st := done + 1 + day(rng.IntN(5))
				p.events = append(p.events, cldEv{kind: "Service", ref: fmt.Sprintf("ST%07d", q.ID), start: st, end: st + 7 + day(rng.IntN(36)),
					service: ShortTermSTMax, delivery: CommissionedSupport, component: "Reablement",
					outcome: pick(rng, "NFA - Information & Advice / Signposting only", "NFA- Other", "Progress to Support Planning / Services")})
			case u < 0.77:
				a.outcome = "NFA - Information & Advice / Signposting only"
			case u < 0.88:
				a.outcome = "NFA - Self-funded client (inc. 12wk disregard)"
			default:
				a.outcome = "NFA - Support declined"
			}
			p.events = append(p.events, a)
		}
		people = append(people, p)
	}
	for n := range standingClients {
		rng := recordRNG(in.seed, streamClient, n)
		start := in.setUp - 1 - day(rng.ExpFloat64()*1100)
		p := in.adultPerson(rng, fmt.Sprintf("DEMO-A9%06d", n), start)
		in.longTermService(rng, p, fmt.Sprintf("SL%07d", n), start)
		people = append(people, p)
	}
	r.CLD = in.submissions(people)
}

// cldSubmission is one CLD submission: the year to date at a quarter's end,
// made some weeks after it.
type cldSubmission struct {
	periodStart, periodEnd, imported day
	// complete is false for a first submission that missed some of the
	// quarter's events, later resubmitted in full.
	complete bool
}

// cldSubmissions lists the submissions the council keeps on today. Each
// quarter's year-to-date figures are submitted three weeks after its end,
// missing a few events, and resubmitted in full five weeks after it, the
// rows appended as the central store appends them. The file keeps the
// latest quarter's submissions (the first and, once made, the
// resubmission) and, for the history the measures look back on, the final
// submission of the collection year before the latest quarter's.
func (in *returnsInput) cldSubmissions() []cldSubmission {
	today := in.today
	var latest *cldSubmission
	for y := -1; y <= 0; y++ {
		yearEnd := CollectionYearEnd(today.time()).AddDate(y, 0, 0)
		ys := dayOf(yearEnd.AddDate(-1, 0, 1))
		for q := range 4 {
			qe := dayOf(time.Date(yearEnd.Year()-1, time.Month(7+3*q), 0, 0, 0, 0, 0, time.UTC))
			if first := qe + 21; first <= today {
				latest = &cldSubmission{periodStart: ys, periodEnd: qe, imported: first}
			}
		}
	}
	if latest == nil {
		return nil
	}
	prevEnd := dayOf(latest.periodStart.time().AddDate(0, 0, -1))
	subs := []cldSubmission{
		{periodStart: dayOf(prevEnd.time().AddDate(-1, 0, 1)), periodEnd: prevEnd, imported: prevEnd + 35, complete: true},
		*latest,
	}
	if re := latest.periodEnd + 35; re <= today {
		subs = append(subs, cldSubmission{periodStart: latest.periodStart, periodEnd: latest.periodEnd, imported: re, complete: true})
	}
	return subs
}

// submissions renders every person's events into each submission: the
// requests, assessments and reviews completed in its period, and the
// services active at any time in it (open when they end after it).
func (in *returnsInput) submissions(people []*cldPerson) []CLDEvent {
	var rows []CLDEvent
	for _, s := range in.cldSubmissions() {
		quarterStart := dayOf(s.periodEnd.time().AddDate(0, -3, 1))
		for _, p := range people {
			for _, e := range p.events {
				if e.start > s.periodEnd {
					continue
				}
				end := e.end
				if e.kind == "Service" {
					if end != none && end < s.periodStart {
						continue
					}
					if end != none && end > s.periodEnd {
						end = none
					}
				} else if end == none || end < s.periodStart || end > s.periodEnd {
					continue
				}
				if !s.complete && end != none && end >= quarterStart && missedFirstTime(e.ref) {
					continue
				}
				row := CLDEvent{PeriodStart: s.periodStart.time(), PeriodEnd: s.periodEnd.time(), Imported: s.imported.time(),
					Person: p.id, Gender: p.gender, BirthYear: p.birthYear, BirthMonth: p.birthMonth, ClientType: cldServiceUser,
					SupportReason: p.supportReason, Accommodation: p.accommodation, Employment: p.employment,
					EventType: e.kind, EventRef: e.ref, Start: e.start.time(), End: end.timeOrZero(),
					ServiceType: e.service, ServiceComponent: e.component, DeliveryMechanism: e.delivery, ReviewReason: e.review}
				if end != none {
					row.Outcome = e.outcome
				}
				if p.died != none && p.died <= s.periodEnd {
					row.Died = p.died.time()
				}
				if e.unknownAccommodation {
					row.Accommodation = "Unknown"
				}
				rows = append(rows, row)
			}
		}
	}
	return rows
}

// missedFirstTime picks, by its reference, about one event in twenty-five
// that a first submission left out.
func missedFirstTime(ref string) bool {
	h := uint32(2166136261)
	for i := range len(ref) {
		h = (h ^ uint32(ref[i])) * 16777619
	}
	return h%25 == 0 && !strings.HasPrefix(ref, "SL")
}
