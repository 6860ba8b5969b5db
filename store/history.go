package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/carewatch/carewatch/kpi"
)

// rollupZone is the time zone of observations_monthly's calendar months
// (migration 0011): MonthlyHistory reads the rollup for months in this zone.
const rollupZone = "Europe/London"

// MonthlyHistory returns, for every stored series of q's KPIs whose labels
// are those of its KPI in c and that q.Series selects, the value of the
// latest period of each calendar month (in q.Location), for its q.Months
// most recent months with a value up to q.Until, oldest first; a series
// with no value up to q.Until is left out. Series are ordered by KPI, then
// label values in the KPI's label order.
func (s *Store) MonthlyHistory(ctx context.Context, c kpi.Catalogue, q kpi.HistoryQuery) ([]kpi.SeriesHistory, error) {
	names := catalogued(c, q.KPIs)
	if len(names) == 0 || q.Months <= 0 {
		return nil, nil
	}
	loc := q.Location
	if loc == nil {
		loc = time.UTC
	}
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: monthly history: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	out, ids, err := selectSeries(ctx, tx, c, names, q.Series)
	if err != nil || len(out) == 0 {
		return nil, err
	}
	at := make(map[int64]int, len(ids))
	for i, id := range ids {
		at[id] = i
	}
	pts := make([][]point, len(ids))
	add := func(rows *sql.Rows) error {
		defer rows.Close()
		for rows.Next() {
			var (
				id, us int64
				p      point
				v      sql.NullFloat64
			)
			if err := rows.Scan(&id, &us, &v, &p.run); err != nil {
				return err
			}
			p.period = time.UnixMicro(us).UTC()
			p.value = kpi.Value{V: v.Float64, Valid: v.Valid}
			pts[at[id]] = append(pts[at[id]], p)
		}
		return rows.Err()
	}
	if loc.String() == rollupZone {
		err = monthlyFromRollup(ctx, tx, ids, q, pts, add)
	} else {
		// In another zone the months are not the rollup's: each series
		// walks back month by month along the primary key, the latest
		// period up to Until, then the latest before that period's month
		// began, and so on: Months index probes per series.
		var rows *sql.Rows
		rows, err = tx.QueryContext(ctx, `
			WITH RECURSIVE walk AS (
				SELECT s.id AS series_id, o.period, o.value, o.run_id, 1 AS n
				FROM unnest($1::bigint[]) s(id)
				CROSS JOIN LATERAL (
					SELECT period, value, run_id FROM observations
					WHERE series_id = s.id AND period <= $2
					ORDER BY period DESC LIMIT 1
				) o
			UNION ALL
				SELECT w.series_id, o.period, o.value, o.run_id, w.n + 1
				FROM walk w
				CROSS JOIN LATERAL (
					SELECT period, value, run_id FROM observations
					WHERE series_id = w.series_id AND period < date_trunc('month', w.period, $3)
					ORDER BY period DESC LIMIT 1
				) o
				WHERE w.n < $4
			)
			SELECT w.series_id, `+microseconds("w.period")+`, w.value, w.run_id
			FROM walk w ORDER BY w.series_id, w.period`,
			pq.Array(ids), q.Until, loc.String(), q.Months)
		if err == nil {
			err = add(rows)
		}
	}
	if err == nil {
		err = collected(ctx, tx, out, pts)
	}
	if err != nil {
		return nil, fmt.Errorf("store: monthly history: %w", err)
	}
	return slices.DeleteFunc(out, func(h kpi.SeriesHistory) bool { return len(h.Points) == 0 }), nil
}

// point is a point of a monthly history as its queries read it: the time
// its run finished is read once per run, by collected. Periods cross lib/pq
// as microseconds since 1970, which parse in a fraction of the time of
// timestamps.
type point struct {
	period time.Time
	value  kpi.Value
	run    int64
}

// microseconds is the SQL of the time t as microseconds since 1970.
func microseconds(t string) string {
	return `(extract(epoch FROM ` + t + `) * 1000000)::bigint`
}

// collected sets the points of out from pts, each with the time its run
// finished: there are far fewer runs than points.
func collected(ctx context.Context, tx *sql.Tx, out []kpi.SeriesHistory, pts [][]point) error {
	seen := map[int64]time.Time{}
	for _, ps := range pts {
		for _, p := range ps {
			seen[p.run] = time.Time{}
		}
	}
	if err := finishTimes(ctx, tx, seen); err != nil {
		return err
	}
	for i, ps := range pts {
		out[i].Points = make([]kpi.Point, len(ps))
		for j, p := range ps {
			out[i].Points[j] = kpi.Point{Period: p.period, Value: p.value, CollectedAt: seen[p.run]}
		}
	}
	return nil
}

// monthlyFromRollup reads the months of the series ids (pts[i] is ids[i]'s)
// in Europe/London from the rollup, set by set rather than series by
// series: the q.Months months up to the latest one with a value up to
// q.Until (or the rollup's frontier) in one range scan of each index, then,
// for the series with fewer months in that window, their months before it.
func monthlyFromRollup(ctx context.Context, tx *sql.Tx, ids []int64, q kpi.HistoryQuery, pts [][]point, add func(*sql.Rows) error) error {
	// The window ends with top: the month of Until or, when Until is
	// later, the frontier's, after which nothing is stored. Its months
	// before top are closed, so the rollup holds them whole; top's are
	// read from observations, up to Until.
	var top, low time.Time
	err := tx.QueryRowContext(ctx, `
		SELECT t.top, ((t.top AT TIME ZONE 'Europe/London') - ($2 - 1) * interval '1 month') AT TIME ZONE 'Europe/London'
		FROM (
			SELECT least(month, observations_month($1)) AS top
			FROM observations_monthly_frontier WHERE month > '-infinity'
		) t`, q.Until, q.Months).Scan(&top, &low)
	if errors.Is(err, sql.ErrNoRows) {
		// Nothing is stored.
		return nil
	}
	if err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `
		SELECT m.series_id, `+microseconds("m.period")+`, m.value, m.run_id
		FROM (
			SELECT series_id, period, value, run_id FROM observations_monthly
			WHERE series_id = ANY($1::bigint[]) AND month >= $3 AND month < $4
		UNION ALL
			SELECT * FROM (
				SELECT DISTINCT ON (series_id, observations_month(period)) series_id, period, value, run_id
				FROM observations
				WHERE series_id = ANY($1::bigint[]) AND period >= $4 AND period <= $2
				ORDER BY series_id, observations_month(period), period DESC
			) top
		) m
		ORDER BY m.series_id, m.period`,
		pq.Array(ids), q.Until, low, top)
	if err != nil {
		return err
	}
	if err := add(rows); err != nil {
		return err
	}
	// A series with a month without values in the window, or none after
	// it, has its latest months before it in the rollup: the window is
	// where its latest values are only for a series that keeps up.
	var short []int64
	var missing []int
	for i, ps := range pts {
		if n := len(ps); n < q.Months {
			short = append(short, ids[i])
			missing = append(missing, q.Months-n)
		}
	}
	if len(short) == 0 {
		return nil
	}
	window := make([][]point, len(pts))
	for i := range pts {
		window[i], pts[i] = pts[i], nil
	}
	rows, err = tx.QueryContext(ctx, `
		SELECT l.id, `+microseconds("m.period")+`, m.value, m.run_id
		FROM unnest($1::bigint[], $2::int[]) l(id, n)
		CROSS JOIN LATERAL (
			SELECT period, value, run_id FROM observations_monthly
			WHERE series_id = l.id AND month < $3
			ORDER BY month DESC LIMIT l.n
		) m
		ORDER BY l.id, m.period`,
		pq.Array(short), pq.Array(missing), low)
	if err != nil {
		return err
	}
	if err := add(rows); err != nil {
		return err
	}
	for i := range pts {
		pts[i] = append(pts[i], window[i]...)
	}
	return nil
}

// LatestPeriod returns the latest period, at or after since and up to
// until, stored for any series of kpis whose labels are those of its KPI
// in c; the zero time when there is none. When since is past the month of
// the latest period stored (the rollup's frontier) it reads nothing else;
// otherwise it probes each series' latest period.
func (s *Store) LatestPeriod(ctx context.Context, c kpi.Catalogue, kpis []string, since, until time.Time) (time.Time, error) {
	var latest time.Time
	names := catalogued(c, kpis)
	if len(names) == 0 {
		return latest, nil
	}
	tx, err := s.readTx(ctx)
	if err != nil {
		return latest, fmt.Errorf("store: latest period: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, `
		SELECT s.kpi, s.labels, o.period
		FROM series s
		CROSS JOIN LATERAL (
			SELECT period FROM observations
			WHERE series_id = s.id AND period <= $3
			ORDER BY period DESC LIMIT 1
		) o
		WHERE s.kpi = ANY($1::text[]) AND o.period >= $2
		  AND $2 < (SELECT observations_month_end(month) FROM observations_monthly_frontier)`,
		pq.Array(names), since, until)
	if err != nil {
		return latest, fmt.Errorf("store: latest period: %w", err)
	}
	defer rows.Close()
	labels := newLabelReader()
	for rows.Next() {
		var (
			name   string
			doc    []byte
			period time.Time
		)
		if err := rows.Scan(&name, &doc, &period); err != nil {
			return latest, fmt.Errorf("store: latest period: %w", err)
		}
		if !period.After(latest) {
			continue
		}
		_, ok, err := labels.values(c[name], doc)
		if err != nil {
			return latest, fmt.Errorf("store: latest period: %w", err)
		}
		if ok {
			latest = period
		}
	}
	if err := rows.Err(); err != nil {
		return latest, fmt.Errorf("store: latest period: %w", err)
	}
	return latest, nil
}

// catalogued returns the names of kpis that c defines.
func catalogued(c kpi.Catalogue, kpis []string) []string {
	var names []string
	for _, n := range kpis {
		if c[n] != nil {
			names = append(names, n)
		}
	}
	return names
}

// selectSeries returns the series of the KPIs names whose labels are those
// of their KPI in c and that series selects (kpi.HistoryQuery.Series),
// without points, ordered by KPI and label values, and their IDs in the
// same order.
//
// PostgreSQL reads only the series that may match, so that the others are
// never read: each label set is looked for by the value of one of its
// labels (its first in name order), and each series of a KPI by its values
// of those labels, in the hash table PostgreSQL builds of a constant array
// (kpi, label, value): one look-up per series and label used, however
// many sets there are (a pack of 65 teams matched one by one reads each
// series' team once). KPI.Matches then decides.
func selectSeries(ctx context.Context, tx *sql.Tx, c kpi.Catalogue, names []string, series map[string][]map[string]string) ([]kpi.SeriesHistory, []int64, error) {
	const sep = "\x1f"
	var probeKPIs, probeLabels, wanted []string
	probed := map[[2]string]bool{}
	for _, n := range names {
		sets, narrowed := series[n]
		if !narrowed {
			sets = []map[string]string{nil}
		}
		for _, m := range sets {
			// The empty set is looked for by the empty label name, which
			// no series has: every series of the KPI finds it.
			label := ""
			if len(m) > 0 {
				label = slices.Sorted(maps.Keys(m))[0]
			}
			if !probed[[2]string{n, label}] {
				probed[[2]string{n, label}] = true
				probeKPIs, probeLabels = append(probeKPIs, n), append(probeLabels, label)
			}
			wanted = append(wanted, n+sep+label+sep+m[label])
		}
	}
	rows, err := tx.QueryContext(ctx, `
		SELECT s.id, s.kpi, s.labels
		FROM unnest($1::text[], $2::text[]) p(kpi, label)
		JOIN series s ON s.kpi = p.kpi
		WHERE s.kpi || E'\x1f' || p.label || E'\x1f' || coalesce(s.labels ->> p.label, '') = ANY($3::text[])`,
		pq.Array(probeKPIs), pq.Array(probeLabels), pq.Array(wanted))
	if err != nil {
		return nil, nil, fmt.Errorf("store: monthly history: %w", err)
	}
	defer rows.Close()
	type found struct {
		id int64
		h  kpi.SeriesHistory
	}
	var all []found
	labels := newLabelReader()
	for rows.Next() {
		var (
			id   int64
			name string
			doc  []byte
		)
		if err := rows.Scan(&id, &name, &doc); err != nil {
			return nil, nil, fmt.Errorf("store: monthly history: %w", err)
		}
		k := c[name]
		values, ok, err := labels.values(k, doc)
		if err != nil {
			return nil, nil, fmt.Errorf("store: monthly history: series %d: %w", id, err)
		}
		if !ok {
			continue
		}
		if sets, narrowed := series[name]; narrowed && !slices.ContainsFunc(sets, func(m map[string]string) bool { return k.Matches(m, values) }) {
			continue
		}
		all = append(all, found{id, kpi.SeriesHistory{KPI: k, Labels: values}})
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("store: monthly history: %w", err)
	}
	slices.SortFunc(all, func(a, b found) int {
		return cmp.Or(cmp.Compare(a.h.KPI.Name, b.h.KPI.Name), slices.Compare(a.h.Labels, b.h.Labels), cmp.Compare(a.id, b.id))
	})
	// A series found by several of its KPI's labels comes once for each.
	all = slices.CompactFunc(all, func(a, b found) bool { return a.id == b.id })
	out := make([]kpi.SeriesHistory, len(all))
	ids := make([]int64, len(all))
	for i, f := range all {
		out[i], ids[i] = f.h, f.id
	}
	return out, ids, nil
}

// SaveComment stores an officer's comment. Nothing is overwritten: the
// latest comment for a KPI, label set and month is the one in force.
func (s *Store) SaveComment(ctx context.Context, c kpi.Comment) error {
	text := strings.TrimSpace(c.Text)
	if c.KPI == "" || text == "" {
		return errors.New("store: a comment needs a KPI and some text")
	}
	if c.Month.Day() != 1 {
		return fmt.Errorf("store: comment month %s is not the first day of a month", c.Month.Format(time.DateOnly))
	}
	labels := c.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	doc, err := json.Marshal(labels)
	if err != nil {
		return fmt.Errorf("store: comment labels: %w", err)
	}
	at := c.WrittenAt
	if at.IsZero() {
		at = s.now()
	}
	if _, err := s.db.ExecContext(ctx,
		`INSERT INTO comments (kpi, labels, month, body, written_at) VALUES ($1, $2, $3::date, $4, $5)`,
		c.KPI, string(doc), c.Month.Format(time.DateOnly), text, at); err != nil {
		return fmt.Errorf("store: saving comment: %w", err)
	}
	return nil
}

// Comments returns the comments in force for the month starting at month:
// the latest written for each KPI and label set, ordered by KPI and labels.
func (s *Store) Comments(ctx context.Context, month time.Time) ([]kpi.Comment, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT DISTINCT ON (kpi, labels) kpi, labels, body, written_at
		FROM comments WHERE month = $1::date
		ORDER BY kpi, labels, written_at DESC, id DESC`, month.Format(time.DateOnly))
	if err != nil {
		return nil, fmt.Errorf("store: comments: %w", err)
	}
	defer rows.Close()
	var out []kpi.Comment
	for rows.Next() {
		c := kpi.Comment{Month: month}
		var doc []byte
		if err := rows.Scan(&c.KPI, &doc, &c.Text, &c.WrittenAt); err != nil {
			return nil, fmt.Errorf("store: comments: %w", err)
		}
		if err := json.Unmarshal(doc, &c.Labels); err != nil {
			return nil, fmt.Errorf("store: comments: labels: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: comments: %w", err)
	}
	return out, nil
}
