package demo

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// rowSet is the rows of one table to write.
type rowSet struct {
	schema, table, key string
	cols               []string
	rows               [][]any
}

// write puts rs into its table: by COPY into an empty table at set-up, or
// by COPY into a temporary table and one INSERT ... ON CONFLICT DO UPDATE
// afterwards, so a day's changes cost a few round trips however many rows.
func (rs rowSet) write(ctx context.Context, tx *sqlx.Tx, fresh bool) error {
	if len(rs.rows) == 0 {
		return nil
	}
	target := rs.schema + "." + rs.table
	var stmt string
	tmp := "demo_sim_upsert_" + rs.table
	if fresh {
		stmt = copyStatement(target, rs.cols)
	} else {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`CREATE TEMPORARY TABLE %s (LIKE %s INCLUDING DEFAULTS) ON COMMIT DROP`, tmp, target)); err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
		stmt = copyStatement(tmp, rs.cols)
	}
	if err := copyRows(ctx, tx, stmt, rs.rows); err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	if fresh {
		return nil
	}
	set := make([]string, 0, len(rs.cols))
	for _, c := range rs.cols {
		if c != rs.key {
			set = append(set, c+" = EXCLUDED."+c)
		}
	}
	cols := strings.Join(rs.cols, ", ")
	q := fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s ORDER BY %s ON CONFLICT (%s) DO UPDATE SET %s`,
		target, cols, cols, tmp, rs.key, rs.key, strings.Join(set, ", "))
	if _, err := tx.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	if _, err := tx.ExecContext(ctx, `DROP TABLE `+tmp); err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	return nil
}

// copyStatement is the COPY ... FROM STDIN that lib/pq streams rows into.
// The table and column names are the demo's own, never input.
func copyStatement(table string, cols []string) string {
	return "COPY " + table + " (" + strings.Join(cols, ", ") + ") FROM STDIN"
}

func copyRows(ctx context.Context, tx *sqlx.Tx, stmt string, rows [][]any) error {
	st, err := tx.PrepareContext(ctx, stmt)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if _, err := st.ExecContext(ctx, r...); err != nil {
			st.Close()
			return err
		}
	}
	if _, err := st.ExecContext(ctx); err != nil {
		st.Close()
		return err
	}
	return st.Close()
}

// dateValue is a day as COPY text, or NULL.
func dateValue(d day) any {
	if d == none {
		return nil
	}
	return d.String()
}

func workerID(wk *worker) any {
	if wk == nil {
		return nil
	}
	return int64(wk.id)
}

// save writes what changed in w (everything, at set-up) and the reporting date.
func (w *world) save(ctx context.Context, tx *sqlx.Tx, fresh bool) error {
	if fresh {
		sets := []rowSet{{schema: "ref", table: "bank_holiday", key: "day", cols: []string{"day", "name"}}}
		for y := FirstHolidayYear; y <= LastHolidayYear; y++ {
			for _, h := range BankHolidays(y) {
				sets[0].rows = append(sets[0].rows, []any{h.Date.Format(time.DateOnly), h.Name})
			}
		}
		teams := rowSet{schema: "cms", table: "team", key: "team_id", cols: []string{"team_id", "team_name", "service", "team_type"}}
		profiles := rowSet{schema: "demo_sim", table: "team_profile", key: "team_id", cols: []string{"team_id",
			"referral_weight", "late_share", "cin_per_day", "cp_per_day", "cla_per_day", "fill_hazard", "cover_hazard",
			"adult_per_day", "adult_fast_days", "adult_slow_share", "adult_slow_days"}}
		for _, t := range w.teams {
			p := t.prof
			teams.rows = append(teams.rows, []any{int64(t.id), t.name, t.service, t.kind})
			profiles.rows = append(profiles.rows, []any{int64(t.id), p.referralWeight, p.lateShare, p.cinPerDay, p.cpPerDay, p.claPerDay,
				p.fillHazard, p.coverHazard, p.adultPerDay, p.adultFastDays, p.adultSlowShare, p.adultSlowDays})
		}
		sets = append(sets, teams, profiles)
		for _, rs := range sets {
			if err := rs.write(ctx, tx, true); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO demo_sim.state (seed, set_up_for) VALUES ($1, $2)`, int64(w.seed), w.today.String()); err != nil {
			return fmt.Errorf("demo_sim.state: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO cms.reporting_date (today) VALUES ($1)`, w.today.String()); err != nil {
			return fmt.Errorf("cms.reporting_date: %w", err)
		}
	} else if _, err := tx.ExecContext(ctx, `UPDATE cms.reporting_date SET today = $1`, w.today.String()); err != nil {
		return fmt.Errorf("cms.reporting_date: %w", err)
	}

	workers := rowSet{schema: "cms", table: "worker", key: "worker_id", cols: []string{"worker_id", "team_id", "role", "fte",
		"employment", "newly_qualified", "qualified", "started_on", "left_on"}}
	for _, wk := range w.workers {
		if wk.dirty {
			employment := "permanent"
			if wk.agency {
				employment = "agency"
			}
			workers.rows = append(workers.rows, []any{int64(wk.id), int64(wk.team), wk.role, fteString(wk.fte),
				employment, wk.nq, wk.qualified(), wk.started.String(), dateValue(wk.left)})
		}
	}
	posts := rowSet{schema: "hr", table: "establishment", key: "post_id", cols: []string{"post_id", "team_id", "role", "fte",
		"status", "worker_id", "agency_cover_fte", "cover_worker_id"}}
	for _, p := range w.posts {
		if p.dirty {
			status, coverFTE := "filled", 0
			if p.holder == nil {
				status = "vacant"
			}
			if p.cover != nil {
				coverFTE = p.cover.fte
			}
			posts.rows = append(posts.rows, []any{int64(p.id), int64(p.team), p.role, fteString(p.fte),
				status, workerID(p.holder), fteString(coverFTE), workerID(p.cover)})
		}
	}
	cases := rowSet{schema: "cms", table: "child_case", key: "case_id", cols: []string{"case_id", "team_id", "worker_id",
		"case_type", "opened", "closed"}}
	for _, c := range w.cases {
		if c.dirty {
			cases.rows = append(cases.rows, []any{int64(c.id), int64(c.team), workerID(c.worker), c.kind,
				c.opened.String(), dateValue(c.closed)})
		}
	}
	assessments := rowSet{schema: "cms", table: "child_assessment", key: "assessment_id", cols: []string{"assessment_id",
		"case_id", "team_id", "referral_date", "completed_date"}}
	// demo_sim keeps the due dates of open work only.
	var assessmentDone, requestDone []int64
	assessmentDue := rowSet{schema: "demo_sim", table: "assessment_due", key: "assessment_id", cols: []string{"assessment_id", "due"}}
	for _, a := range w.assessments {
		if a.dirty {
			assessments.rows = append(assessments.rows, []any{int64(a.id), int64(a.cas.id), int64(a.team),
				a.referral.String(), dateValue(a.completed)})
			if a.completed == none {
				assessmentDue.rows = append(assessmentDue.rows, []any{int64(a.id), a.due.String()})
			} else if !fresh {
				assessmentDone = append(assessmentDone, int64(a.id))
			}
		}
	}
	requests := rowSet{schema: "cms", table: "adult_assessment_request", key: "request_id", cols: []string{"request_id",
		"team_id", "requested", "assessed"}}
	requestDue := rowSet{schema: "demo_sim", table: "adult_request_due", key: "request_id", cols: []string{"request_id", "due"}}
	for _, r := range w.requests {
		if r.dirty {
			requests.rows = append(requests.rows, []any{int64(r.id), int64(r.team), r.requested.String(), dateValue(r.assessed)})
			if r.assessed == none {
				requestDue.rows = append(requestDue.rows, []any{int64(r.id), r.due.String()})
			} else if !fresh {
				requestDone = append(requestDone, int64(r.id))
			}
		}
	}
	// Parents before children, for the foreign keys.
	for _, rs := range []rowSet{workers, posts, cases, assessments, assessmentDue, requests, requestDue} {
		if err := rs.write(ctx, tx, fresh); err != nil {
			return err
		}
	}
	for _, del := range []struct {
		table, key string
		ids        []int64
	}{{"demo_sim.assessment_due", "assessment_id", assessmentDone}, {"demo_sim.adult_request_due", "request_id", requestDone}} {
		if len(del.ids) == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+del.table+` WHERE `+del.key+` = ANY($1)`, pq.Array(del.ids)); err != nil {
			return fmt.Errorf("%s: %w", del.table, err)
		}
	}
	if fresh {
		if _, err := tx.ExecContext(ctx, foreignKeysDDL); err != nil {
			return fmt.Errorf("foreign keys: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `ANALYZE cms.team, cms.worker, cms.child_case, cms.child_assessment,
			cms.adult_assessment_request, hr.establishment, ref.bank_holiday`); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
	}
	return nil
}

// load reads what Advance, AddCases and CloseCases need, locking the
// simulation's state so that two of them never interleave.
func load(ctx context.Context, tx *sqlx.Tx) (*world, error) {
	w := &world{cal: newCalendar(), teamByID: map[int]*team{}}
	var seed int64
	if err := tx.GetContext(ctx, &seed, `SELECT seed FROM demo_sim.state FOR UPDATE`); err != nil {
		return nil, fmt.Errorf("demo state (was the demo set up?): %w", err)
	}
	w.seed = uint64(seed)
	var today time.Time
	if err := tx.GetContext(ctx, &today, `SELECT today FROM cms.reporting_date`); err != nil {
		return nil, fmt.Errorf("reporting date: %w", err)
	}
	w.today = dayOf(today)

	var teams []struct {
		ID             int     `db:"team_id"`
		Name           string  `db:"team_name"`
		Service        string  `db:"service"`
		Kind           string  `db:"team_type"`
		ReferralWeight float64 `db:"referral_weight"`
		LateShare      float64 `db:"late_share"`
		CIN            float64 `db:"cin_per_day"`
		CP             float64 `db:"cp_per_day"`
		CLA            float64 `db:"cla_per_day"`
		Fill           float64 `db:"fill_hazard"`
		Cover          float64 `db:"cover_hazard"`
		Adult          float64 `db:"adult_per_day"`
		AdultFast      float64 `db:"adult_fast_days"`
		AdultSlowShare float64 `db:"adult_slow_share"`
		AdultSlow      float64 `db:"adult_slow_days"`
	}
	if err := tx.SelectContext(ctx, &teams, `SELECT t.team_id, t.team_name, t.service, t.team_type, p.referral_weight,
		p.late_share, p.cin_per_day, p.cp_per_day, p.cla_per_day, p.fill_hazard, p.cover_hazard, p.adult_per_day,
		p.adult_fast_days, p.adult_slow_share, p.adult_slow_days
		FROM cms.team t JOIN demo_sim.team_profile p USING (team_id) ORDER BY t.team_id`); err != nil {
		return nil, fmt.Errorf("teams: %w", err)
	}
	for _, r := range teams {
		t := &team{id: r.ID, name: r.Name, service: r.Service, kind: r.Kind, prof: profile{
			referralWeight: r.ReferralWeight, lateShare: r.LateShare, cinPerDay: r.CIN, cpPerDay: r.CP, claPerDay: r.CLA,
			fillHazard: r.Fill, coverHazard: r.Cover, adultPerDay: r.Adult, adultFastDays: r.AdultFast,
			adultSlowShare: r.AdultSlowShare, adultSlowDays: r.AdultSlow}}
		w.teams = append(w.teams, t)
		w.teamByID[t.id] = t
	}

	var workers []struct {
		ID         int       `db:"worker_id"`
		Team       int       `db:"team_id"`
		Role       string    `db:"role"`
		FTE        string    `db:"fte"`
		Employment string    `db:"employment"`
		NQ         bool      `db:"newly_qualified"`
		Started    time.Time `db:"started_on"`
	}
	// Leavers never change again; only the workers still in post are needed.
	if err := tx.SelectContext(ctx, &workers, `SELECT worker_id, team_id, role, fte, employment, newly_qualified, started_on
		FROM cms.worker WHERE left_on IS NULL ORDER BY worker_id`); err != nil {
		return nil, fmt.Errorf("workers: %w", err)
	}
	byID := make(map[int]*worker, len(workers))
	for _, r := range workers {
		fte, err := parseFTE(r.FTE)
		if err != nil {
			return nil, fmt.Errorf("worker %d: fte %q: %w", r.ID, r.FTE, err)
		}
		wk := &worker{id: r.ID, team: r.Team, role: r.Role, fte: fte, agency: r.Employment == "agency", nq: r.NQ,
			started: dayOf(r.Started), left: none}
		w.workers = append(w.workers, wk)
		byID[wk.id] = wk
	}
	ref := func(what string, id sql.NullInt64) (*worker, error) {
		if !id.Valid {
			return nil, nil
		}
		wk, ok := byID[int(id.Int64)]
		if !ok {
			return nil, fmt.Errorf("%s refers to worker %d, who is not in post", what, id.Int64)
		}
		return wk, nil
	}

	var posts []struct {
		ID     int           `db:"post_id"`
		Team   int           `db:"team_id"`
		Role   string        `db:"role"`
		FTE    string        `db:"fte"`
		Holder sql.NullInt64 `db:"worker_id"`
		Cover  sql.NullInt64 `db:"cover_worker_id"`
	}
	if err := tx.SelectContext(ctx, &posts, `SELECT post_id, team_id, role, fte, worker_id, cover_worker_id
		FROM hr.establishment ORDER BY post_id`); err != nil {
		return nil, fmt.Errorf("establishment: %w", err)
	}
	for _, r := range posts {
		fte, err := parseFTE(r.FTE)
		if err != nil {
			return nil, fmt.Errorf("post %d: fte %q: %w", r.ID, r.FTE, err)
		}
		p := &post{id: r.ID, team: r.Team, role: r.Role, fte: fte}
		what := fmt.Sprintf("post %d", r.ID)
		if p.holder, err = ref(what, r.Holder); err != nil {
			return nil, err
		}
		if p.cover, err = ref(what, r.Cover); err != nil {
			return nil, err
		}
		w.posts = append(w.posts, p)
	}

	var cases []struct {
		ID     int           `db:"case_id"`
		Team   int           `db:"team_id"`
		Worker sql.NullInt64 `db:"worker_id"`
		Kind   string        `db:"case_type"`
		Opened time.Time     `db:"opened"`
	}
	if err := tx.SelectContext(ctx, &cases, `SELECT case_id, team_id, worker_id, case_type, opened
		FROM cms.child_case WHERE closed IS NULL ORDER BY case_id`); err != nil {
		return nil, fmt.Errorf("cases: %w", err)
	}
	caseByID := make(map[int]*childCase, len(cases))
	for _, r := range cases {
		c := &childCase{id: r.ID, team: r.Team, kind: r.Kind, opened: dayOf(r.Opened), closed: none}
		var err error
		if c.worker, err = ref(fmt.Sprintf("case %d", r.ID), r.Worker); err != nil {
			return nil, err
		}
		if c.worker != nil {
			c.worker.holdings++
		}
		w.cases = append(w.cases, c)
		caseByID[c.id] = c
	}

	var assessments []struct {
		ID       int       `db:"assessment_id"`
		Case     int       `db:"case_id"`
		Team     int       `db:"team_id"`
		Referral time.Time `db:"referral_date"`
		Due      time.Time `db:"due"`
	}
	if err := tx.SelectContext(ctx, &assessments, `SELECT a.assessment_id, a.case_id, a.team_id, a.referral_date, d.due
		FROM cms.child_assessment a JOIN demo_sim.assessment_due d USING (assessment_id)
		WHERE a.completed_date IS NULL ORDER BY a.assessment_id`); err != nil {
		return nil, fmt.Errorf("assessments: %w", err)
	}
	for _, r := range assessments {
		c, ok := caseByID[r.Case]
		if !ok {
			return nil, fmt.Errorf("open assessment %d belongs to case %d, which is closed", r.ID, r.Case)
		}
		w.assessments = append(w.assessments, &assessment{id: r.ID, cas: c, team: r.Team, referral: dayOf(r.Referral),
			completed: none, due: dayOf(r.Due)})
	}

	var requests []struct {
		ID        int       `db:"request_id"`
		Team      int       `db:"team_id"`
		Requested time.Time `db:"requested"`
		Due       time.Time `db:"due"`
	}
	if err := tx.SelectContext(ctx, &requests, `SELECT r.request_id, r.team_id, r.requested, d.due
		FROM cms.adult_assessment_request r JOIN demo_sim.adult_request_due d USING (request_id)
		WHERE r.assessed IS NULL ORDER BY r.request_id`); err != nil {
		return nil, fmt.Errorf("adult requests: %w", err)
	}
	for _, r := range requests {
		w.requests = append(w.requests, &adultRequest{id: r.ID, team: r.Team, requested: dayOf(r.Requested),
			assessed: none, due: dayOf(r.Due)})
	}

	if err := tx.QueryRowxContext(ctx, `SELECT
		(SELECT coalesce(max(worker_id), 0) FROM cms.worker),
		(SELECT coalesce(max(post_id), 0) FROM hr.establishment),
		(SELECT coalesce(max(case_id), 0) FROM cms.child_case),
		(SELECT coalesce(max(assessment_id), 0) FROM cms.child_assessment),
		(SELECT coalesce(max(request_id), 0) FROM cms.adult_assessment_request)`).Scan(
		&w.lastID.worker, &w.lastID.post, &w.lastID.cas, &w.lastID.assessment, &w.lastID.request); err != nil {
		return nil, fmt.Errorf("last ids: %w", err)
	}
	return w, nil
}
