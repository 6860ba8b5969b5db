package demo

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/carewatch/carewatch/kpi"
)

// Key names one series of the demo configuration's KPIs: the KPI's name and
// its label values rendered as name=value pairs, sorted by label name and
// joined by commas, e.g. "service=children,team=all". Build it with SeriesKey.
type Key struct {
	KPI    string
	Labels string
}

// SeriesKey returns the Key of the series of kpiName with the given labels.
func SeriesKey(kpiName string, labels map[string]string) Key {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	sort.Strings(names)
	pairs := make([]string, len(names))
	for i, n := range names {
		pairs[i] = n + "=" + labels[n]
	}
	return Key{KPI: kpiName, Labels: strings.Join(pairs, ",")}
}

// String renders k as kpi{labels}, for test messages.
func (k Key) String() string { return k.KPI + "{" + k.Labels + "}" }

// Figures are the values every series of the demo configuration should
// have on the current reporting date, keyed by series. A series whose value
// is a division by zero (no case holders, no vacancies, nobody waiting) is
// present with kpi.Missing; a series that has no row at all (a team with no
// assessment completed in the last 12 months) is absent.
type Figures map[Key]kpi.Value

// Expected computes, in Go from plain SELECTs of the raw tables, what the
// demo configuration's collectors should report on the current reporting
// date. It shares no SQL with them and counts working days with its own
// calendar, so that comparing the two checks both. The series are:
//
//   - children_sw_caseload_average{service,team}: open cases held by
//     qualified social workers in post (agency included) ÷ FTE of those
//     holding at least one case; every children's team, and team="all".
//   - children_sw_vacancy_ratio{service,team}: vacant social work post FTE ÷
//     (vacant + filled post FTE).
//   - children_sw_agency_ratio{service,team}: agency social worker FTE ÷
//     (agency + permanent social worker FTE) in post.
//   - children_sw_vacancy_agency_cover_ratio{service,team}: agency FTE
//     covering vacant social work posts ÷ vacant post FTE.
//   - children_assessment_within_45wd_ratio{service,team}: assessments
//     completed in the 12 months to the reporting date within 45 working
//     days of referral ÷ assessments completed; teams with completions, and
//     team="all".
//   - adults_assessment_waiting_people{team}, adults_assessment_wait_median_seconds{team},
//     adults_assessment_wait_max_seconds{team} and
//     adults_assessment_waiting_over_6m_ratio{team} (waiting more than 182
//     days ÷ waiting): every adults' team, and team="all".
func Expected(ctx context.Context, db *sqlx.DB) (Figures, error) {
	tx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return nil, fmt.Errorf("demo expected: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	r, err := readRaw(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("demo expected: %w", err)
	}
	return r.figures(), nil
}

type rawTeam struct {
	ID      int    `db:"team_id"`
	Name    string `db:"team_name"`
	Service string `db:"service"`
}

type rawWorker struct {
	ID         int          `db:"worker_id"`
	Team       int          `db:"team_id"`
	FTE        string       `db:"fte"`
	Employment string       `db:"employment"`
	Qualified  bool         `db:"qualified"`
	Started    time.Time    `db:"started_on"`
	Left       sql.NullTime `db:"left_on"`
	fte        int
}

type rawPost struct {
	Team   int    `db:"team_id"`
	Role   string `db:"role"`
	FTE    string `db:"fte"`
	Status string `db:"status"`
	Cover  string `db:"agency_cover_fte"`
}

type rawCase struct {
	Worker sql.NullInt64 `db:"worker_id"`
	Opened time.Time     `db:"opened"`
	Closed sql.NullTime  `db:"closed"`
}

type rawAssessment struct {
	Team      int          `db:"team_id"`
	Referral  time.Time    `db:"referral_date"`
	Completed sql.NullTime `db:"completed_date"`
}

type rawRequest struct {
	Team      int          `db:"team_id"`
	Requested time.Time    `db:"requested"`
	Assessed  sql.NullTime `db:"assessed"`
}

type raw struct {
	today       day
	teams       []rawTeam
	workers     []rawWorker
	posts       []rawPost
	cases       []rawCase
	assessments []rawAssessment
	requests    []rawRequest
}

func readRaw(ctx context.Context, tx *sqlx.Tx) (*raw, error) {
	r := &raw{}
	var today time.Time
	if err := tx.GetContext(ctx, &today, `SELECT today FROM cms.reporting_date`); err != nil {
		return nil, fmt.Errorf("reporting date: %w", err)
	}
	r.today = dayOf(today)
	for _, q := range []struct {
		dest any
		sql  string
	}{
		{&r.teams, `SELECT team_id, team_name, service FROM cms.team`},
		{&r.workers, `SELECT worker_id, team_id, fte, employment, qualified, started_on, left_on FROM cms.worker`},
		{&r.posts, `SELECT team_id, role, fte, status, agency_cover_fte FROM hr.establishment`},
		{&r.cases, `SELECT worker_id, opened, closed FROM cms.child_case`},
		{&r.assessments, `SELECT team_id, referral_date, completed_date FROM cms.child_assessment`},
		{&r.requests, `SELECT team_id, requested, assessed FROM cms.adult_assessment_request`},
	} {
		if err := tx.SelectContext(ctx, q.dest, q.sql); err != nil {
			return nil, fmt.Errorf("%s: %w", q.sql, err)
		}
	}
	for i := range r.workers {
		fte, err := parseFTE(r.workers[i].FTE)
		if err != nil {
			return nil, fmt.Errorf("worker fte %q: %w", r.workers[i].FTE, err)
		}
		r.workers[i].fte = fte
	}
	return r, nil
}

// ratio is num ÷ den, missing when den is zero. Both are exact counts or
// hundredths, so the division is the one correctly rounded float64 result,
// as PostgreSQL's is.
func ratio(num, den float64) kpi.Value {
	if den == 0 {
		return kpi.Missing
	}
	return kpi.Known(num / den)
}

// openOn reports whether a record that started on from and ended on to
// (NULL: not yet) is open on d.
func openOn(from time.Time, to sql.NullTime, d day) bool {
	return dayOf(from) <= d && (!to.Valid || dayOf(to.Time) > d)
}

// yearBefore is d less one year, as PostgreSQL computes date - interval
// '1 year': 29 February becomes 28 February.
func yearBefore(d day) day {
	t := d.time()
	y, m, dd := t.Date()
	last := time.Date(y-1, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
	return dayOf(time.Date(y-1, m, min(dd, last), 0, 0, 0, 0, time.UTC))
}

func (r *raw) figures() Figures {
	f := Figures{}
	today := r.today
	put := func(name string, v kpi.Value, labels ...string) {
		m := map[string]string{}
		for i := 0; i+1 < len(labels); i += 2 {
			m[labels[i]] = labels[i+1]
		}
		f[SeriesKey(name, m)] = v
	}
	// Hundredths for FTE keep every sum exact.
	type agg struct {
		cases, holderFTE        int
		vacantFTE, filledFTE    int
		coverFTE                int
		agencyFTE, permanentFTE int
		completed, within45     int
		waits                   []int
	}
	teamOf := map[int]*rawTeam{}
	byTeam := map[int]*agg{}
	all := map[string]*agg{children: {}, adults: {}}
	for i := range r.teams {
		teamOf[r.teams[i].ID] = &r.teams[i]
		byTeam[r.teams[i].ID] = &agg{}
	}
	both := func(team int, fn func(*agg)) {
		fn(byTeam[team])
		fn(all[teamOf[team].Service])
	}

	held := map[int]int{}
	for _, c := range r.cases {
		if c.Worker.Valid && openOn(c.Opened, c.Closed, today) {
			held[int(c.Worker.Int64)]++
		}
	}
	for _, w := range r.workers {
		if !w.Qualified || !openOn(w.Started, w.Left, today) {
			continue
		}
		both(w.Team, func(a *agg) {
			if n := held[w.ID]; n > 0 {
				a.cases += n
				a.holderFTE += w.fte
			}
			if w.Employment == "agency" {
				a.agencyFTE += w.fte
			} else {
				a.permanentFTE += w.fte
			}
		})
	}
	for _, p := range r.posts {
		if p.Role == rolePractitioner {
			continue
		}
		fte, _ := parseFTE(p.FTE)
		cover, _ := parseFTE(p.Cover)
		both(p.Team, func(a *agg) {
			if p.Status == "vacant" {
				a.vacantFTE += fte
				a.coverFTE += cover
			} else {
				a.filledFTE += fte
			}
		})
	}
	cal := newCalendar()
	since := yearBefore(today)
	for _, a := range r.assessments {
		if !a.Completed.Valid {
			continue
		}
		done := dayOf(a.Completed.Time)
		if done <= since || done > today {
			continue
		}
		within := cal.between(dayOf(a.Referral), done) <= 45
		both(a.Team, func(g *agg) {
			g.completed++
			if within {
				g.within45++
			}
		})
	}
	for _, q := range r.requests {
		if openOn(q.Requested, q.Assessed, today) {
			wait := int(today - dayOf(q.Requested))
			both(q.Team, func(g *agg) { g.waits = append(g.waits, wait) })
		}
	}

	type series struct {
		service, team string
		a             *agg
	}
	var rows []series
	for _, t := range r.teams {
		rows = append(rows, series{t.Service, t.Name, byTeam[t.ID]})
	}
	rows = append(rows, series{children, "all", all[children]}, series{adults, "all", all[adults]})
	for _, s := range rows {
		a := s.a
		if s.service == children {
			l := []string{"service", s.service, "team", s.team}
			put("children_sw_caseload_average", ratio(float64(a.cases), float64(a.holderFTE)/100), l...)
			put("children_sw_vacancy_ratio", ratio(float64(a.vacantFTE)/100, float64(a.vacantFTE+a.filledFTE)/100), l...)
			put("children_sw_agency_ratio", ratio(float64(a.agencyFTE)/100, float64(a.agencyFTE+a.permanentFTE)/100), l...)
			put("children_sw_vacancy_agency_cover_ratio", ratio(float64(a.coverFTE)/100, float64(a.vacantFTE)/100), l...)
		}
		if a.completed > 0 {
			put("children_assessment_within_45wd_ratio", ratio(float64(a.within45), float64(a.completed)),
				"service", s.service, "team", s.team)
		}
		if s.service == adults {
			sort.Ints(a.waits)
			n := len(a.waits)
			over := 0
			for _, w := range a.waits {
				if w > 182 {
					over++
				}
			}
			median, longest := kpi.Missing, kpi.Missing
			if n > 0 {
				median = kpi.Known(percentileCont(a.waits, 0.5) * 86400)
				longest = kpi.Known(float64(a.waits[n-1]) * 86400)
			}
			put("adults_assessment_waiting_people", kpi.Known(float64(n)), "team", s.team)
			put("adults_assessment_wait_median_seconds", median, "team", s.team)
			put("adults_assessment_wait_max_seconds", longest, "team", s.team)
			put("adults_assessment_waiting_over_6m_ratio", ratio(float64(over), float64(n)), "team", s.team)
		}
	}
	return f
}

// percentileCont interpolates between the sorted values as PostgreSQL's
// percentile_cont does.
func percentileCont(sorted []int, p float64) float64 {
	pos := p * float64(len(sorted)-1)
	lo, hi := math.Floor(pos), math.Ceil(pos)
	a, b := float64(sorted[int(lo)]), float64(sorted[int(hi)])
	if lo == hi {
		return a
	}
	return a + (b-a)*(pos-lo)
}
