package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/carewatch/carewatch/kpi"
)

// latestUpTo is the FROM and WHERE of the monthly histories' first
// points: each series of the KPIs $1 with its latest period up to $2, as
// o, by one probe of the primary key.
const latestUpTo = `FROM series s
				CROSS JOIN LATERAL (
					SELECT period, value, run_id FROM observations
					WHERE series_id = s.id AND period <= $2
					ORDER BY period DESC LIMIT 1
				) o
				WHERE s.kpi = ANY($1::text[])`

// rollupZone is the time zone of observations_monthly's calendar months
// (migration 0011): MonthlyHistory reads the rollup for months in this zone.
const rollupZone = "Europe/London"

// monthlyPoints reads the points of MonthlyHistory's walk: the series, the
// period, the value and when its run finished.
const monthlyPoints = `
	SELECT s.id, s.kpi, s.labels, w.period, w.value, runs.finished_at
	FROM walk w
	JOIN series s ON s.id = w.series_id
	LEFT JOIN runs ON runs.id = w.run_id
	ORDER BY w.series_id, w.period`

// MonthlyHistory returns, for every stored series of q's KPIs whose labels
// are those of its KPI in c, the value of the latest period of each
// calendar month (in q.Location), for its q.Months most recent months with
// a value up to q.Until, oldest first. Series are ordered by KPI, then
// label values in the KPI's label order.
func (s *Store) MonthlyHistory(ctx context.Context, c kpi.Catalogue, q kpi.HistoryQuery) ([]kpi.SeriesHistory, error) {
	var names []string
	for _, n := range q.KPIs {
		if c[n] != nil {
			names = append(names, n)
		}
	}
	if len(names) == 0 || q.Months <= 0 {
		return nil, nil
	}
	loc := q.Location
	if loc == nil {
		loc = time.UTC
	}
	// The query reads hundreds of thousands of rows at a hub's size in
	// short index ranges, and its estimated cost is far above
	// jit_above_cost: compiling it took longer than running it.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("store: monthly history: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SET LOCAL jit = off`); err != nil {
		return nil, fmt.Errorf("store: monthly history: %w", err)
	}
	var rows *sql.Rows
	if loc.String() == rollupZone {
		// Each series' latest period up to Until, then its months before
		// that period's month as the rollup serves them: a probe and two
		// short ranges per series.
		rows, err = tx.QueryContext(ctx, `
			WITH latest AS (
				SELECT s.id AS series_id, o.period, o.value, o.run_id
				`+latestUpTo+`
			), walk AS (
				SELECT series_id, period, value, run_id FROM latest
			UNION ALL
				SELECT l.series_id, m.period, m.value, m.run_id
				FROM latest l
				CROSS JOIN LATERAL (
					SELECT period, value, run_id FROM observations_monthly_of(l.series_id)
					WHERE month < observations_month(l.period)
					ORDER BY month DESC LIMIT $3 - 1
				) m
			)
			`+monthlyPoints,
			pq.Array(names), q.Until, q.Months)
	} else {
		// In another zone the months are not the rollup's: each series
		// walks back month by month along the primary key, the latest
		// period up to Until, then the latest before that period's month
		// began, and so on: Months index probes per series.
		rows, err = tx.QueryContext(ctx, `
			WITH RECURSIVE walk AS (
				SELECT s.id AS series_id, o.period, o.value, o.run_id, 1 AS n
				`+latestUpTo+`
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
			`+monthlyPoints,
			pq.Array(names), q.Until, loc.String(), q.Months)
	}
	if err != nil {
		return nil, fmt.Errorf("store: monthly history: %w", err)
	}
	defer rows.Close()
	var (
		out    []kpi.SeriesHistory
		lastID int64 = -1
		skip   bool
		labels map[string]string
	)
	for rows.Next() {
		var (
			id          int64
			name        string
			labelsDoc   []byte
			p           kpi.Point
			v           sql.NullFloat64
			collectedAt sql.NullTime
		)
		if err := rows.Scan(&id, &name, &labelsDoc, &p.Period, &v, &collectedAt); err != nil {
			return nil, fmt.Errorf("store: monthly history: %w", err)
		}
		if id != lastID {
			lastID, skip = id, true
			k := c[name]
			clear(labels)
			if err := json.Unmarshal(labelsDoc, &labels); err != nil {
				return nil, fmt.Errorf("store: monthly history: series %d: labels: %w", id, err)
			}
			if values, ok := alignLabels(k, labels); ok {
				skip = false
				out = append(out, kpi.SeriesHistory{KPI: k, Labels: values})
			}
		}
		if skip {
			continue
		}
		p.Value = kpi.Value{V: v.Float64, Valid: v.Valid}
		p.CollectedAt = collectedAt.Time
		h := &out[len(out)-1]
		h.Points = append(h.Points, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: monthly history: %w", err)
	}
	// Sorting a few thousand series here costs less than sorting their
	// points by jsonb label sets in the query.
	slices.SortFunc(out, func(a, b kpi.SeriesHistory) int {
		return cmp.Or(cmp.Compare(a.KPI.Name, b.KPI.Name), slices.Compare(a.Labels, b.Labels))
	})
	return out, nil
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
