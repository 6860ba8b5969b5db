package demo

import "math/rand/v2"

// dayRNG is the random stream of day d: derived from the seed and the date
// alone, so that advancing by n days at once or one day n times, and
// replaying from the same state, give the same council.
func dayRNG(seed uint64, d day) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0xda7e_0000_0000_0000|uint64(uint32(d))))
}

// step moves the world to day d and simulates it. Nothing is recorded on
// weekends and bank holidays, as in a real case-management system; the
// reporting date still moves, so waits grow and the 12-month window slides.
//
// Every loop below skips closed cases and leavers before drawing a random
// number, so the draws depend only on what is open, not on how much closed
// history happens to be in memory.
func (w *world) step(d day) {
	w.today = d
	if !w.cal.working(d) {
		return
	}
	rng := dayRNG(w.seed, d)
	w.workforce(d, rng)
	w.allocateWaiting(d, rng)
	w.childrenCases(d, rng)
	w.adultRequests(d, rng)
}

// workforce: some workers leave, some vacant posts are filled by permanent
// starters, and agency workers come to cover vacancies.
func (w *world) workforce(d day, rng *rand.Rand) {
	// range reads w.workers once: today's replacements are not at risk of leaving today.
	for _, wk := range w.workers {
		if wk.left != none {
			continue
		}
		hazard := permanentLeaveHazard
		if wk.agency {
			hazard = agencyLeaveHazard
		}
		if rng.Float64() >= hazard {
			continue
		}
		covering := w.postCoveredBy(wk) != nil
		w.leave(wk, d)
		// An agency worker over establishment is usually replaced by another.
		if wk.agency && !covering && rng.Float64() < 0.7 {
			w.newWorker(w.teamByID[wk.team], wk.role, wk.fte, true, d)
		}
	}
	for _, p := range w.posts {
		if p.holder != nil {
			continue
		}
		t := w.teamByID[p.team]
		switch u := rng.Float64(); {
		case u < t.prof.fillHazard:
			nw := w.newWorker(t, p.role, p.fte, false, d)
			nw.nq = p.role == roleSocialWorker && rng.Float64() < 0.4
			p.holder = nw
			p.dirty = true
			if p.cover != nil {
				// The locum hands over to the new starter and goes.
				w.leave(p.cover, d)
			}
		case p.cover == nil && p.role != rolePractitioner && u < t.prof.fillHazard+t.prof.coverHazard:
			p.cover = w.newWorker(t, p.role, p.fte, true, d)
			p.dirty = true
		}
	}
}

func (w *world) postCoveredBy(wk *worker) *post {
	for _, p := range w.posts {
		if p.cover == wk {
			return p
		}
	}
	return nil
}

// allocateWaiting finds workers for unallocated open cases.
func (w *world) allocateWaiting(d day, rng *rand.Rand) {
	for _, c := range w.cases {
		if c.open() && c.worker == nil && rng.Float64() < allocateHazard {
			w.assign(c, w.leastLoaded(c.team, d, false, nil))
		}
	}
}

func (w *world) childrenCases(d day, rng *rand.Rand) {
	// New referrals, each with its single assessment.
	var assessmentTeams []*team
	total := 0.0
	for _, t := range w.teams {
		if t.kind == typeAssessment && t.service == children {
			assessmentTeams = append(assessmentTeams, t)
			total += t.prof.referralWeight
		}
	}
	if total > 0 {
		for range poisson(rng, referralsPerWorkingDay) {
			u, t := rng.Float64()*total, assessmentTeams[len(assessmentTeams)-1]
			for _, at := range assessmentTeams {
				if u < at.prof.referralWeight {
					t = at
					break
				}
				u -= at.prof.referralWeight
			}
			w.refer(t, d, assessmentDays(rng, t.prof.lateShare), rng)
		}
	}

	// Assessments reaching their completion day.
	for _, a := range w.assessments {
		if a.completed == none && a.due <= d {
			a.completed = d
			a.dirty = true
			w.close(a.cas, d)
		}
	}

	// Cases closing, and moving between teams of the same kind.
	for _, c := range w.cases {
		if !c.open() || c.kind == caseAssessment || c.opened == d {
			continue
		}
		u, h := rng.Float64(), closeHazard(c.kind)
		switch {
		case u < h:
			w.close(c, d)
		case u < h+transferHazard:
			from := w.teamByID[c.team]
			var others []*team
			for _, t := range w.teams {
				if t.service == children && t.kind == from.kind && t != from {
					others = append(others, t)
				}
			}
			if len(others) == 0 {
				continue
			}
			to := others[rng.IntN(len(others))]
			w.assign(c, nil)
			c.team = to.id
			w.allocate(c, d, rng)
		}
	}

	// New cases stepping up from assessment or in from other councils.
	for _, t := range w.teams {
		if !t.holdsChildrenCases() || t.kind == typeAssessment {
			continue
		}
		for _, k := range []struct {
			kind string
			rate float64
		}{{caseCIN, t.prof.cinPerDay}, {caseCP, t.prof.cpPerDay}, {caseCLA, t.prof.claPerDay}} {
			for range poisson(rng, k.rate) {
				w.allocate(w.newCase(t, k.kind, d), d, rng)
			}
		}
	}
}

func (w *world) adultRequests(d day, rng *rand.Rand) {
	for _, r := range w.requests {
		if r.assessed == none && r.due <= d {
			r.assessed = d
			r.dirty = true
		}
	}
	for _, t := range w.teams {
		if t.service != adults {
			continue
		}
		for range poisson(rng, t.prof.adultPerDay) {
			w.request(t, d, adultWaitDays(rng, t.prof))
		}
	}
}
