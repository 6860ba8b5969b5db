package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/carewatch/carewatch/kpi"
)

// MonthlyHistory returns, for every stored series of q's KPIs whose labels
// are those of its KPI in c, the value of the latest period of each
// calendar month (in q.Location), for its q.Months most recent months with
// a value up to q.Until, oldest first. Series are ordered by KPI, then
// label set.
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
	// One pass over the KPIs' observations, newest first along the primary
	// key: the first row of each (series, month) is the month's latest.
	rows, err := s.db.QueryContext(ctx, `
		WITH m AS (
			SELECT DISTINCT ON (o.series_id, date_trunc('month', o.period, $3))
			       o.series_id, o.period, o.value, o.run_id
			FROM series s
			JOIN observations o ON o.series_id = s.id
			WHERE s.kpi = ANY($1::text[]) AND o.period <= $2
			ORDER BY o.series_id, date_trunc('month', o.period, $3) DESC, o.period DESC
		), ranked AS (
			SELECT m.*, row_number() OVER (PARTITION BY m.series_id ORDER BY m.period DESC) AS n
			FROM m
		)
		SELECT s.id, s.kpi, s.labels, r.period, r.value, runs.finished_at
		FROM ranked r
		JOIN series s ON s.id = r.series_id
		LEFT JOIN runs ON runs.id = r.run_id
		WHERE r.n <= $4
		ORDER BY s.kpi, s.labels, r.period`,
		pq.Array(names), q.Until, loc.String(), q.Months)
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
