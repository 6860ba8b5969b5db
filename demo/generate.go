package demo

import (
	"math"
	"math/rand/v2"
)

// teamPlan is the demo council's structure: functional team names only.
// Caseload targets are per case-holding FTE (0: drawn at random in the usual
// 12-17 band); "Family Support East" is overloaded (red) and "Children in
// Care 2" stretched (amber) on purpose, so the demo opens with something to
// look at.
var teamPlan = []struct {
	name, service, kind string
	target              float64
}{
	{"Children's Front Door", children, typeFrontDoor, 0},
	{"Assessment 1", children, typeAssessment, 0},
	{"Assessment 2", children, typeAssessment, 0},
	{"Assessment 3", children, typeAssessment, 0},
	{"Assessment 4", children, typeAssessment, 0},
	{"Assessment 5", children, typeAssessment, 0},
	{"Family Support North", children, typeFamilySupport, 0},
	{"Family Support South", children, typeFamilySupport, 0},
	{"Family Support East", children, typeFamilySupport, 24.5},
	{"Family Support West", children, typeFamilySupport, 0},
	{"Family Support Central", children, typeFamilySupport, 0},
	{"Child Protection and Court 1", children, typeFamilySupport, 0},
	{"Child Protection and Court 2", children, typeFamilySupport, 0},
	{"Adolescent Support", children, typeFamilySupport, 0},
	{"Edge of Care", children, typeFamilySupport, 0},
	{"Children in Care 1", children, typeChildrenInCare, 0},
	{"Children in Care 2", children, typeChildrenInCare, 20},
	{"Children in Care 3", children, typeChildrenInCare, 0},
	{"Children in Care 4", children, typeChildrenInCare, 0},
	{"Disabled Children", children, typeDisabilities, 0},
	{"Disabled Children Transitions", children, typeDisabilities, 0},
	{"Adults Front Door", adults, typeFrontDoor, 0},
	{"Adults Hospital Discharge", adults, typeFrontDoor, 0},
	{"Adults Long Term North", adults, typeLongTerm, 0},
	{"Adults Long Term East", adults, typeLongTerm, 0},
	{"Adults Long Term South", adults, typeLongTerm, 0},
	{"Adults Long Term West", adults, typeLongTerm, 0},
}

// Assessment teams' shares of assessments going beyond 45 working days:
// one team good, one poor, the borough in between.
var assessmentLateShare = []float64{0.07, 0.10, 0.12, 0.15, 0.25}

// adultQueue is each adults' team's demand and waits: the front doors are
// quick, the long-term teams carry the long waits, East the longest.
var adultQueue = map[string]struct{ perDay, fast, slowShare, slow float64 }{
	"Adults Front Door":         {8, 10, 0.08, 60},
	"Adults Hospital Discharge": {3, 4, 0.03, 30},
	"Adults Long Term North":    {1.4, 20, 0.30, 110},
	"Adults Long Term East":     {1.5, 25, 0.45, 150},
	"Adults Long Term South":    {1.2, 18, 0.25, 90},
	"Adults Long Term West":     {1.4, 20, 0.35, 120},
}

// How far back the generated history goes: enough for a full 12 months of
// completed assessments, and for the adults' queues to reach their steady state.
const (
	childrenHistoryDays = 440
	adultsHistoryDays   = 730
)

// generate builds the demo council as it stands on today, from seed alone.
func generate(seed uint64, today day) *world {
	rng := rand.New(rand.NewPCG(seed, 0x5e7_0b))
	w := &world{seed: seed, today: today, cal: newCalendar(), teamByID: map[int]*team{}}

	targets := map[int]float64{}
	for i, tp := range teamPlan {
		t := &team{id: i + 1, name: tp.name, service: tp.service, kind: tp.kind}
		w.teams = append(w.teams, t)
		w.teamByID[t.id] = t
		target := tp.target
		if target == 0 {
			target = 12.5 + rng.Float64()*4.5
			if t.kind == typeDisabilities {
				target = 11 + rng.Float64()*3
			}
		}
		targets[t.id] = target
		w.staff(t, rng)
	}
	w.historicLeavers(rng)

	lateShares := append([]float64(nil), assessmentLateShare...)
	rng.Shuffle(len(lateShares), func(i, j int) { lateShares[i], lateShares[j] = lateShares[j], lateShares[i] })
	for _, t := range w.teams {
		w.setHazards(t)
		switch {
		case t.kind == typeAssessment:
			t.prof.lateShare = lateShares[0]
			lateShares = lateShares[1:]
			t.prof.referralWeight = targets[t.id] * float64(w.holderFTE(t, today)) / 100
		case t.holdsChildrenCases():
			w.openCases(t, targets[t.id], rng)
		case t.service == adults:
			q := adultQueue[t.name]
			t.prof.adultPerDay, t.prof.adultFastDays, t.prof.adultSlowShare, t.prof.adultSlowDays = q.perDay, q.fast, q.slowShare, q.slow
		}
	}
	w.assessmentHistory(rng)
	w.adultHistory(rng)
	w.closedCaseHistory()
	return w
}

// staff creates t's establishment and the workers in and around it.
func (w *world) staff(t *team, rng *rand.Rand) {
	var sw, practitioners int
	vacancy := 0.10 + rng.Float64()*0.22
	cover := 0.78
	switch t.kind {
	case typeFrontDoor:
		sw = 6
		if t.service == adults {
			sw, practitioners = 8, 2
		}
	case typeAssessment:
		sw = 7 + rng.IntN(3)
	case typeFamilySupport, typeChildrenInCare:
		sw, practitioners = 6+rng.IntN(3), 1+rng.IntN(2)
	case typeDisabilities:
		sw, practitioners = 5+rng.IntN(2), 1
	case typeLongTerm:
		sw, practitioners = 6+rng.IntN(3), 1+rng.IntN(2)
	}
	if t.service == adults {
		vacancy, cover = 0.04+rng.Float64()*0.10, 0.6
	}
	roles := []string{roleManager, roleSenior}
	if rng.Float64() < 0.5 {
		roles = append(roles, roleSenior)
	}
	for range sw {
		roles = append(roles, roleSocialWorker)
	}
	for range practitioners {
		roles = append(roles, rolePractitioner)
	}

	today := w.today
	for _, role := range roles {
		w.lastID.post++
		p := &post{id: w.lastID.post, team: t.id, role: role, fte: 100, dirty: true}
		if role != roleManager {
			switch u := rng.Float64(); {
			case u < 0.08:
				p.fte = 60
			case u < 0.18:
				p.fte = 80
			}
		}
		w.posts = append(w.posts, p)
		vacant := vacancy
		switch role {
		case roleManager:
			vacant /= 2
		case rolePractitioner:
			vacant = 0.1
		}
		if rng.Float64() >= vacant {
			p.holder = w.newWorker(t, role, p.fte, false, today-1-day(rng.ExpFloat64()*1400))
			p.holder.nq = role == roleSocialWorker && today-p.holder.started < 365 && rng.Float64() < 0.6
		} else if role != rolePractitioner && rng.Float64() < cover {
			p.cover = w.newWorker(t, role, p.fte, true, today-1-day(rng.ExpFloat64()*200))
		}
	}
	// Case-holding teams always keep enough hands: a locum is found for
	// uncovered vacancies until the team has three case-holding FTE.
	if t.holdsChildrenCases() {
		for _, p := range w.posts {
			if p.team == t.id && p.holder == nil && p.cover == nil && p.role == roleSocialWorker && w.holderFTE(t, today) < 300 {
				p.cover = w.newWorker(t, p.role, p.fte, true, today-1-day(rng.ExpFloat64()*200))
			}
		}
		// Some agency social workers are over establishment.
		if rng.Float64() < 0.25 {
			w.newWorker(t, roleSocialWorker, 100, true, today-1-day(rng.ExpFloat64()*200))
		}
	}
}

// holderFTE is the FTE (in hundredths) of t's case-holding social workers
// in post on d.
func (w *world) holderFTE(t *team, d day) int {
	n := 0
	for _, wk := range w.workers {
		if wk.team == t.id && wk.holdsCases() && wk.activeOn(d) {
			n += wk.fte
		}
	}
	return n
}

// historicLeavers adds the workers who left in the history the demo
// generates, so closed cases can have been held by them.
func (w *world) historicLeavers(rng *rand.Rand) {
	for _, t := range w.teams {
		posts := 0
		for _, p := range w.posts {
			if p.team == t.id {
				posts++
			}
		}
		for range poisson(rng, float64(posts)*0.25*childrenHistoryDays/365) {
			left := w.today - 1 - day(rng.IntN(childrenHistoryDays))
			role := roleSocialWorker
			if rng.Float64() < 0.15 {
				role = roleSenior
			}
			wk := w.newWorker(t, role, 100, rng.Float64() < 0.3, left-30-day(rng.ExpFloat64()*1000))
			wk.left = left
		}
	}
}

// setHazards sets how fast t's vacancies are filled and covered so that its
// vacancy rate and agency cover stay near where they start.
func (w *world) setHazards(t *team) {
	vacant, total := 0, 0
	for _, p := range w.posts {
		if p.team == t.id && p.role != rolePractitioner {
			total++
			if p.holder == nil {
				vacant++
			}
		}
	}
	v := max(float64(vacant)/float64(max(total, 1)), 0.05)
	t.prof.fillHazard = permanentLeaveHazard * (1 - v) / v
	// About three in four vacancies covered: cover = 3 x (agency leaving + filled).
	t.prof.coverHazard = 3 * (agencyLeaveHazard + t.prof.fillHazard)
}

// openCases creates the open cases of a non-assessment children's team:
// target cases per case-holding FTE, spread unevenly between its workers,
// a few held by practitioners and a few unallocated. The team's demand is
// set so that, on average, its case count stays where it starts.
func (w *world) openCases(t *team, target float64, rng *rand.Rand) {
	today := w.today
	var holders, practitioners []*worker
	var weights []float64
	sum := 0.0
	for _, wk := range w.workers {
		if wk.team != t.id || !wk.activeOn(today) {
			continue
		}
		if wk.role == rolePractitioner {
			practitioners = append(practitioners, wk)
		}
		if !wk.holdsCases() || today-wk.started < inductionDays {
			continue
		}
		holders = append(holders, wk)
		f := float64(wk.fte) * (0.75 + rng.Float64()*0.5)
		weights = append(weights, f)
		sum += f
	}
	fte := 0
	for _, h := range holders {
		fte += h.fte
	}
	n := int(math.Round(target * float64(fte) / 100))

	kind := func() string {
		switch t.kind {
		case typeChildrenInCare:
			return caseCLA
		case typeDisabilities:
			if rng.Float64() < 0.25 {
				return caseCLA
			}
			return caseCIN
		}
		cp := 0.4
		if t.name == "Child Protection and Court 1" || t.name == "Child Protection and Court 2" {
			cp = 0.7
		}
		if rng.Float64() < cp {
			return caseCP
		}
		return caseCIN
	}
	counts := map[string]int{}
	opened := func(k string) day {
		age := day(math.Min(rng.ExpFloat64()*meanCaseDays[k], 17*365))
		return today - age
	}
	// Largest-remainder shares of n, at least one case each.
	given := 0
	quota := make([]int, len(holders))
	for i := range holders {
		quota[i] = max(1, int(float64(n)*weights[i]/sum))
		given += quota[i]
	}
	for i := 0; given < n; i = (i + 1) % len(holders) {
		quota[i]++
		given++
	}
	for i, h := range holders {
		for range quota[i] {
			k := kind()
			counts[k]++
			c := w.newCase(t, k, opened(k))
			w.assign(c, h)
		}
	}
	for _, p := range practitioners {
		for range int(math.Round(6 * float64(p.fte) / 100)) {
			counts[caseCIN]++
			w.assign(w.newCase(t, caseCIN, opened(caseCIN)), p)
		}
	}
	if t.kind == typeFamilySupport {
		for range rng.IntN(3) {
			counts[caseCIN]++
			w.newCase(t, caseCIN, today-day(rng.IntN(5)))
		}
	}
	t.prof.cinPerDay = float64(counts[caseCIN]) * closeHazard(caseCIN)
	t.prof.cpPerDay = float64(counts[caseCP]) * closeHazard(caseCP)
	t.prof.claPerDay = float64(counts[caseCLA]) * closeHazard(caseCLA)
}

// assessmentHistory replays the referrals of the last childrenHistoryDays:
// assessments due by today are completed, with their case closed and held
// by someone who was in the team throughout; the rest are open and
// allocated to today's workers.
func (w *world) assessmentHistory(rng *rand.Rand) {
	var teams []*team
	total := 0.0
	for _, t := range w.teams {
		if t.kind == typeAssessment {
			teams = append(teams, t)
			total += t.prof.referralWeight
		}
	}
	today := w.today
	for d := today - childrenHistoryDays; d <= today; d++ {
		if !w.cal.working(d) {
			continue
		}
		for range poisson(rng, referralsPerWorkingDay) {
			u, t := rng.Float64()*total, teams[len(teams)-1]
			for _, at := range teams {
				if u < at.prof.referralWeight {
					t = at
					break
				}
				u -= at.prof.referralWeight
			}
			c := w.newCase(t, caseAssessment, d)
			w.lastID.assessment++
			a := &assessment{id: w.lastID.assessment, cas: c, team: t.id, referral: d, completed: none,
				due: w.cal.addWorking(d, assessmentDays(rng, t.prof.lateShare)), dirty: true}
			w.assessments = append(w.assessments, a)
			if a.due > today {
				continue
			}
			a.completed = a.due
			c.closed = a.due
			var held []*worker
			for _, wk := range w.workers {
				if wk.team == t.id && wk.holdsCases() && wk.started <= d && (wk.left == none || wk.left > a.due) {
					held = append(held, wk)
				}
			}
			if len(held) > 0 {
				c.worker = held[rng.IntN(len(held))]
			}
		}
	}
	for _, a := range w.assessments {
		if a.completed == none {
			w.assign(a.cas, w.leastLoaded(a.team, today, false, nil))
		}
	}
}

// adultHistory replays the adults' assessment requests of the last
// adultsHistoryDays.
func (w *world) adultHistory(rng *rand.Rand) {
	for d := w.today - adultsHistoryDays; d <= w.today; d++ {
		if !w.cal.working(d) {
			continue
		}
		for _, t := range w.teams {
			if t.service != adults {
				continue
			}
			for range poisson(rng, t.prof.adultPerDay) {
				r := w.request(t, d, adultWaitDays(rng, t.prof))
				if r.due <= w.today {
					r.assessed = r.due
				}
			}
		}
	}
}

// closedCaseHistory adds the children in need, child protection and looked
// after cases that closed in the last childrenHistoryDays, at the rate each
// team's open cases close, so that the statutory returns have plans and
// periods of care that ended as well as those still open. It draws from a
// stream of its own, so the rest of the council is as it would be without
// it.
func (w *world) closedCaseHistory() {
	rng := rand.New(rand.NewPCG(w.seed, 0xc105_edca_5e5))
	for _, t := range w.teams {
		if !t.holdsChildrenCases() || t.kind == typeAssessment {
			continue
		}
		for _, k := range []struct {
			kind string
			rate float64
		}{{caseCIN, t.prof.cinPerDay}, {caseCP, t.prof.cpPerDay}, {caseCLA, t.prof.claPerDay}} {
			for d := w.today - childrenHistoryDays; d < w.today; d++ {
				if !w.cal.working(d) {
					continue
				}
				for range poisson(rng, k.rate) {
					length := 1 + day(math.Min(rng.ExpFloat64()*meanCaseDays[k.kind], 17*365))
					c := w.newCase(t, k.kind, d-length)
					c.closed = d
					var held []*worker
					for _, wk := range w.workers {
						if wk.team == t.id && wk.holdsCases() && wk.started <= d && (wk.left == none || wk.left > d) {
							held = append(held, wk)
						}
					}
					if len(held) > 0 {
						c.worker = held[rng.IntN(len(held))]
					}
				}
			}
		}
	}
}
