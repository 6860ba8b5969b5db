package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/carewatch/carewatch/kpi"
)

// checkRow is one failed check as runs.checks holds it.
type checkRow struct {
	Check    string `json:"check"`
	Action   string `json:"action"`
	KPI      string `json:"kpi,omitempty"`
	Failures int    `json:"failures"`
	Message  string `json:"message"`
}

func checksDoc(fs []kpi.CheckFailure) (string, error) {
	rows := make([]checkRow, 0, len(fs))
	for _, f := range fs {
		rows = append(rows, checkRow{Check: f.Check, Action: f.Action.String(), KPI: f.KPI, Failures: f.Failures, Message: f.Message})
	}
	b, err := json.Marshal(rows)
	return string(b), err
}

func parseChecks(doc []byte) ([]kpi.CheckFailure, error) {
	if len(doc) == 0 {
		return nil, nil
	}
	var rows []checkRow
	if err := json.Unmarshal(doc, &rows); err != nil {
		return nil, err
	}
	var out []kpi.CheckFailure
	for _, r := range rows {
		a, err := kpi.ParseAction(r.Action)
		if err != nil {
			return nil, err
		}
		out = append(out, kpi.CheckFailure{Check: r.Check, Action: a, KPI: r.KPI, Failures: r.Failures, Message: r.Message})
	}
	return out, nil
}

// PreviousValues returns, aligned with obs, each series' value for its
// latest stored period before the observation's period; kpi.Missing where
// there is none or it is missing. The checks judge a run's change with it.
func (s *Store) PreviousValues(ctx context.Context, obs []kpi.Observation) ([]kpi.Value, error) {
	out := make([]kpi.Value, len(obs))
	if len(obs) == 0 {
		return out, nil
	}
	ids := make([]int64, len(obs))
	periods := make([]time.Time, len(obs))
	for i, o := range obs {
		ids[i], periods[i] = kpi.SeriesID(o.KPI, o.Labels), o.Period
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT x.ord, p.value
		FROM unnest($1::bigint[], $2::timestamptz[]) WITH ORDINALITY AS x(series_id, period, ord)
		CROSS JOIN LATERAL (
			SELECT value FROM observations o
			WHERE o.series_id = x.series_id AND o.period < x.period
			ORDER BY o.period DESC LIMIT 1
		) p`, pq.Array(ids), pq.Array(periods))
	if err != nil {
		return nil, fmt.Errorf("store: previous values: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			ord int64
			v   sql.NullFloat64
		)
		if err := rows.Scan(&ord, &v); err != nil {
			return nil, fmt.Errorf("store: previous values: %w", err)
		}
		out[ord-1] = kpi.Value{V: v.Float64, Valid: v.Valid}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: previous values: %w", err)
	}
	return out, nil
}

// LastGoodObservations is the number of observations the collector's
// latest successful run carried; ok is false if it never succeeded.
func (s *Store) LastGoodObservations(ctx context.Context, collector string) (n int, ok bool, err error) {
	err = s.db.QueryRowContext(ctx, `
		SELECT observations FROM runs WHERE collector = $1 AND status = 'success'
		ORDER BY finished_at DESC, id DESC LIMIT 1`, collector).Scan(&n)
	if err == sql.ErrNoRows {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: last good run of %q: %w", collector, err)
	}
	return n, true, nil
}
