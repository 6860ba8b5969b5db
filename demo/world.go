package demo

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// Values of the warehouse's coded columns.
const (
	children = "children"
	adults   = "adults"

	typeAssessment     = "assessment"
	typeFamilySupport  = "family_support"
	typeChildrenInCare = "children_in_care"
	typeDisabilities   = "disabilities"
	typeFrontDoor      = "front_door"
	typeLongTerm       = "long_term"

	roleManager      = "team_manager"
	roleSenior       = "senior_practitioner"
	roleSocialWorker = "social_worker"
	// rolePractitioner is an unqualified worker (family support worker,
	// social care assessor): not a social worker, so outside every SW KPI.
	rolePractitioner = "practitioner"

	caseAssessment = "assessment"
	caseCIN        = "cin"
	caseCP         = "cp"
	caseCLA        = "cla"
)

// none marks a date that is not set (a NULL).
const none day = math.MinInt32

// The rhythm of the council, per working day. Calendar-day figures are
// converted with the share of working days in a year.
const (
	workingDaysPerYear = 253.0
	// Children's referrals that lead to a single assessment: about 4,300 a
	// year, a London-sized borough.
	referralsPerWorkingDay = 4300 / workingDaysPerYear
	// Turnover: a quarter of permanent social workers and most agency
	// workers leave within a year (London is at the high end; the demo
	// wants movement).
	permanentLeaveHazard = 0.25 / workingDaysPerYear
	agencyLeaveHazard    = 0.60 / workingDaysPerYear
	// Cases move between localities when families move.
	transferHazard = 1 / 1500.0 * 365 / workingDaysPerYear
	// Unallocated cases find a worker after a few days.
	allocateHazard = 0.3
	// A case-holding worker's first week holds no cases.
	inductionDays = 7
)

// meanCaseDays is how long, in calendar days, a case of each type stays open.
var meanCaseDays = map[string]float64{caseCIN: 150, caseCP: 270, caseCLA: 600}

// closeHazard is the chance that a case of type ct closes on a working day.
func closeHazard(ct string) float64 { return 365 / workingDaysPerYear / meanCaseDays[ct] }

type team struct {
	id      int
	name    string
	service string
	kind    string
	prof    profile
}

// holdsChildrenCases reports whether t is one of the case-holding children's teams.
func (t *team) holdsChildrenCases() bool {
	return t.service == children && t.kind != typeFrontDoor
}

// mainCaseType is the kind of case t mostly holds.
func (t *team) mainCaseType() string {
	switch t.kind {
	case typeAssessment:
		return caseAssessment
	case typeChildrenInCare:
		return caseCLA
	}
	if t.prof.cpPerDay > t.prof.cinPerDay {
		return caseCP
	}
	return caseCIN
}

// profile is what drives a team's simulation; it is drawn at set-up and kept.
type profile struct {
	referralWeight float64 // share of the children's referrals (assessment teams)
	lateShare      float64 // share of its assessments going beyond 45 working days
	cinPerDay      float64 // new cases per working day, by type
	cpPerDay       float64
	claPerDay      float64
	fillHazard     float64 // chance a vacant post is filled on a working day
	coverHazard    float64 // chance an uncovered vacant post gets agency cover on a working day
	adultPerDay    float64 // assessment requests per working day
	adultFastDays  float64 // mean wait of the quick requests
	adultSlowShare float64 // share of requests that join the long queue
	adultSlowDays  float64 // mean wait in the long queue
}

type worker struct {
	id       int
	team     int
	role     string
	fte      int // hundredths of a full-time equivalent
	agency   bool
	nq       bool
	started  day
	left     day
	dirty    bool
	holdings int // open cases held
}

func (w *worker) qualified() bool { return w.role != rolePractitioner }

func (w *worker) activeOn(d day) bool { return w.started <= d && (w.left == none || w.left > d) }

// holdsCases reports whether w takes cases when they are allocated: social
// workers and senior practitioners do, team managers do not.
func (w *worker) holdsCases() bool { return w.role == roleSocialWorker || w.role == roleSenior }

type post struct {
	id     int
	team   int
	role   string
	fte    int
	holder *worker // the permanent worker in post, when filled
	cover  *worker // the agency worker covering it, when vacant
	dirty  bool
}

type childCase struct {
	id     int
	team   int
	worker *worker
	kind   string
	opened day
	closed day
	dirty  bool
}

func (c *childCase) open() bool { return c.closed == none }

type assessment struct {
	id        int
	cas       *childCase
	team      int
	referral  day
	completed day
	due       day
	dirty     bool
}

type adultRequest struct {
	id        int
	team      int
	requested day
	assessed  day
	due       day
	dirty     bool
}

// world is the demo council in memory: everything at set-up, or what
// Advance needs (the teams, the workers still in post, the posts, and the
// cases, assessments and requests still open).
type world struct {
	seed        uint64
	today       day
	cal         *calendar
	teams       []*team
	teamByID    map[int]*team
	workers     []*worker
	posts       []*post
	cases       []*childCase
	assessments []*assessment
	requests    []*adultRequest
	lastID      struct{ worker, post, cas, assessment, request int }
}

func (w *world) newWorker(t *team, role string, fte int, agency bool, started day) *worker {
	w.lastID.worker++
	wk := &worker{id: w.lastID.worker, team: t.id, role: role, fte: fte, agency: agency, started: started, left: none, dirty: true}
	w.workers = append(w.workers, wk)
	return wk
}

func (w *world) newCase(t *team, kind string, opened day) *childCase {
	w.lastID.cas++
	c := &childCase{id: w.lastID.cas, team: t.id, kind: kind, opened: opened, closed: none, dirty: true}
	w.cases = append(w.cases, c)
	return c
}

func (w *world) assign(c *childCase, wk *worker) {
	if c.worker == wk {
		return
	}
	if c.worker != nil && c.open() {
		c.worker.holdings--
	}
	c.worker = wk
	if wk != nil && c.open() {
		wk.holdings++
	}
	c.dirty = true
}

func (w *world) close(c *childCase, d day) {
	if c.worker != nil {
		c.worker.holdings--
	}
	c.closed = d
	c.dirty = true
}

// leastLoaded is the team's case-holding worker in post on d with the fewest
// cases per FTE (the lowest id among equals), skipping except; nil if none.
// Practitioners are only considered when practitioner is true, and then
// only they are.
func (w *world) leastLoaded(team int, d day, practitioner bool, except *worker) *worker {
	var best *worker
	for _, wk := range w.workers {
		if wk.team != team || wk == except || !wk.activeOn(d) {
			continue
		}
		if practitioner != (wk.role == rolePractitioner) || (!practitioner && !wk.holdsCases()) {
			continue
		}
		if best == nil || wk.holdings*best.fte < best.holdings*wk.fte {
			best = wk
		}
	}
	return best
}

// allocate gives c to the least loaded social worker of its team; a tenth
// of new CIN cases go to an unqualified practitioner when the team has one.
func (w *world) allocate(c *childCase, d day, rng *rand.Rand) {
	if c.kind == caseCIN && rng.Float64() < 0.1 {
		if p := w.leastLoaded(c.team, d, true, nil); p != nil {
			w.assign(c, p)
			return
		}
	}
	w.assign(c, w.leastLoaded(c.team, d, false, nil))
}

// leave records wk's last day as d-1 (left_on d) and hands its open cases
// to the rest of the team, or leaves them unallocated when no one is left.
func (w *world) leave(wk *worker, d day) {
	wk.left = d
	wk.dirty = true
	for _, p := range w.posts {
		if p.holder == wk {
			p.holder = nil
			p.dirty = true
		}
		if p.cover == wk {
			p.cover = nil
			p.dirty = true
		}
	}
	for _, c := range w.cases {
		if c.worker == wk && c.open() {
			w.assign(c, w.leastLoaded(c.team, d, wk.role == rolePractitioner, wk))
		}
	}
}

// refer records a children's referral on d to assessment team t: a case and
// its single assessment, due the given number of working days later.
func (w *world) refer(t *team, d day, workingDays int, rng *rand.Rand) *assessment {
	c := w.newCase(t, caseAssessment, d)
	w.allocate(c, d, rng)
	w.lastID.assessment++
	a := &assessment{id: w.lastID.assessment, cas: c, team: t.id, referral: d, completed: none,
		due: w.cal.addWorking(d, workingDays), dirty: true}
	w.assessments = append(w.assessments, a)
	return a
}

func (w *world) request(t *team, d day, waitDays int) *adultRequest {
	w.lastID.request++
	r := &adultRequest{id: w.lastID.request, team: t.id, requested: d, assessed: none,
		due: w.cal.onOrAfter(d + day(max(1, waitDays))), dirty: true}
	w.requests = append(w.requests, r)
	return r
}

// assessmentDays draws how many working days an assessment takes: most
// within the 45-day timescale (median about 30), lateShare beyond it.
func assessmentDays(rng *rand.Rand, lateShare float64) int {
	if rng.Float64() < lateShare {
		return 46 + rng.IntN(35)
	}
	if rng.Float64() < 0.35 {
		return 3 + rng.IntN(20)
	}
	return 23 + rng.IntN(23)
}

// adultWaitDays draws a calendar wait for an adults' assessment: most are
// seen quickly, a share joins a long queue.
func adultWaitDays(rng *rand.Rand, p profile) int {
	mean := p.adultFastDays
	if rng.Float64() < p.adultSlowShare {
		mean = p.adultSlowDays
	}
	return 1 + int(rng.ExpFloat64()*mean)
}

// poisson draws from a Poisson distribution (Knuth's method; the demo's
// rates are small).
func poisson(rng *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// fteString renders hundredths of an FTE as numeric(3,2) text.
func fteString(h int) string {
	return strconv.Itoa(h/100) + "." + strconv.Itoa(h%100/10) + strconv.Itoa(h%10)
}

// parseFTE reads numeric(3,2) text into hundredths.
func parseFTE(s string) (int, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return int(math.Round(f * 100)), nil
}
