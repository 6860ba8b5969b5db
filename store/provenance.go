package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/carewatch/carewatch/kpi"
)

// ErrNotFound is returned when the store holds no such KPI, series or value.
var ErrNotFound = errors.New("not found")

// StoredKPI returns KPI name as the store's catalogue last recorded it
// (thresholds, overrides, trajectory, own_series), so that commands which
// read the store alone judge a period as the daemon did; retired says the
// KPI has left the daemon's catalogue.
func (s *Store) StoredKPI(ctx context.Context, name string) (k *kpi.KPI, retired bool, err error) {
	var (
		unit, help, direction string
		labels                []string
		amber, red            sql.NullFloat64
		overrides, trajectory []byte
		own                   []byte
		maxAge                sql.NullFloat64
		retiredAt             sql.NullTime
	)
	err = s.db.QueryRowContext(ctx, `
		SELECT help, unit, direction, labels, amber, red, overrides, trajectory, own_series,
		       extract(epoch FROM max_age), retired_at
		FROM kpis WHERE name = $1`, name).Scan(&help, &unit, &direction, pq.Array(&labels), &amber, &red,
		&overrides, &trajectory, &own, &maxAge, &retiredAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, fmt.Errorf("KPI %q: %w in the store's catalogue", name, ErrNotFound)
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: KPI %q: %w", name, err)
	}
	d, err := kpi.ParseDirection(direction)
	if err != nil {
		return nil, false, fmt.Errorf("store: KPI %q: %w", name, err)
	}
	k = &kpi.KPI{Name: name, Help: help, Unit: unit, Direction: d, Labels: labels,
		Thresholds: thresholds(nullPtr(amber), nullPtr(red))}
	if maxAge.Valid {
		k.MaxAge = time.Duration(maxAge.Float64 * float64(time.Second))
	}
	var ors []overrideRow
	var steps0 []stepRow
	if err := json.Unmarshal(overrides, &ors); err != nil {
		return nil, false, fmt.Errorf("store: KPI %q: overrides: %w", name, err)
	}
	if err := json.Unmarshal(trajectory, &steps0); err != nil {
		return nil, false, fmt.Errorf("store: KPI %q: trajectory: %w", name, err)
	}
	if len(own) > 0 {
		if err := json.Unmarshal(own, &k.OwnSeries); err != nil {
			return nil, false, fmt.Errorf("store: KPI %q: own_series: %w", name, err)
		}
	}
	k.Trajectory = steps(steps0)
	for _, o := range ors {
		k.Overrides = append(k.Overrides, kpi.Override{Match: o.Match, Thresholds: thresholds(o.Amber, o.Red), Trajectory: steps(o.Trajectory)})
	}
	return k, retiredAt.Valid, nil
}

func nullPtr(f sql.NullFloat64) *float64 {
	if !f.Valid {
		return nil
	}
	return &f.Float64
}

// SeriesRef is one stored series of a KPI.
type SeriesRef struct {
	ID int64
	// Labels are the label values, aligned with the KPI's labels.
	Labels []string
}

// FindSeries returns the stored series of k whose labels include every
// pair of match, ordered by label values.
func (s *Store) FindSeries(ctx context.Context, k *kpi.KPI, match map[string]string) ([]SeriesRef, error) {
	doc, err := json.Marshal(match)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT id, labels FROM series WHERE kpi = $1 AND labels @> $2::jsonb`, k.Name, string(doc))
	if err != nil {
		return nil, fmt.Errorf("store: series of %q: %w", k.Name, err)
	}
	defer rows.Close()
	var out []SeriesRef
	for rows.Next() {
		var (
			id  int64
			raw []byte
			m   map[string]string
		)
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, fmt.Errorf("store: series of %q: %w", k.Name, err)
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("store: series %d: labels: %w", id, err)
		}
		values, ok := alignLabels(k, m)
		if !ok {
			continue // a series of an older definition, with other labels
		}
		out = append(out, SeriesRef{ID: id, Labels: values})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: series of %q: %w", k.Name, err)
	}
	sort.Slice(out, func(i, j int) bool { return strings.Join(out[i].Labels, "\x00") < strings.Join(out[j].Labels, "\x00") })
	return out, nil
}

// RunRecord is what the store keeps of one collector run.
type RunRecord struct {
	ID                    int64
	Collector             string
	Source, Query         string
	StartedAt, FinishedAt time.Time
	Status                string
	Error                 string
	Observations          int
	// Reads are what the run read: each file with its size, modification
	// time and SHA-256, each HTTP answer, each query.
	Reads  []kpi.Read
	Checks []kpi.CheckFailure
}

// Revision is one change of a stored value, with the runs on either side.
type Revision struct {
	Old, New  kpi.Value
	OldRun    RunRecord
	NewRun    RunRecord
	RevisedAt time.Time
}

// StatusEvent is one change of a series' RAG status.
type StatusEvent struct {
	At         time.Time
	Period     time.Time
	From, To   kpi.Status
	Value      kpi.Value
	Thresholds kpi.Thresholds
	Reason     string
	RunID      int64
}

// Explanation is where one stored value came from.
type Explanation struct {
	Period time.Time
	Value  kpi.Value
	// Run is the run that stored the current value.
	Run RunRecord
	// Revisions are the earlier values of the period, oldest first.
	Revisions []Revision
	// Statuses are the series' status changes, oldest first.
	Statuses []StatusEvent
}

// Explain returns the value of series id for the latest period at or before
// at (the latest of all when at is zero), the run that stored it, its
// revisions and the series' status history.
func (s *Store) Explain(ctx context.Context, id int64, at time.Time) (*Explanation, error) {
	if at.IsZero() {
		at = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	e := &Explanation{}
	var (
		v     sql.NullFloat64
		runID int64
	)
	err := s.db.QueryRowContext(ctx, `
		SELECT period, value, run_id FROM observations
		WHERE series_id = $1 AND period <= $2 ORDER BY period DESC LIMIT 1`, id, at).Scan(&e.Period, &v, &runID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("no value %w for that period", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: explain: %w", err)
	}
	e.Value = kpi.Value{V: v.Float64, Valid: v.Valid}
	runs, err := s.runs(ctx, runID)
	if err != nil {
		return nil, err
	}
	e.Run = runs[runID]

	rows, err := s.db.QueryContext(ctx, `
		SELECT old_value, new_value, old_run_id, new_run_id, revised_at FROM revisions
		WHERE series_id = $1 AND period = $2 ORDER BY revised_at, new_run_id`, id, e.Period)
	if err != nil {
		return nil, fmt.Errorf("store: explain: revisions: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var (
			r        Revision
			oldV, nv sql.NullFloat64
		)
		if err := rows.Scan(&oldV, &nv, &r.OldRun.ID, &r.NewRun.ID, &r.RevisedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: explain: revisions: %w", err)
		}
		r.Old, r.New = kpi.Value{V: oldV.Float64, Valid: oldV.Valid}, kpi.Value{V: nv.Float64, Valid: nv.Valid}
		e.Revisions = append(e.Revisions, r)
		ids = append(ids, r.OldRun.ID, r.NewRun.ID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: explain: revisions: %w", err)
	}
	if len(ids) > 0 {
		runs, err := s.runs(ctx, ids...)
		if err != nil {
			return nil, err
		}
		for i := range e.Revisions {
			e.Revisions[i].OldRun, e.Revisions[i].NewRun = runs[e.Revisions[i].OldRun.ID], runs[e.Revisions[i].NewRun.ID]
		}
	}

	rows, err = s.db.QueryContext(ctx, `
		SELECT at, period, coalesce(from_status, ''), to_status, value, amber, red, coalesce(reason, ''), run_id
		FROM status_events WHERE series_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("store: explain: status events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			ev         StatusEvent
			from, to   string
			val        sql.NullFloat64
			amber, red sql.NullFloat64
		)
		if err := rows.Scan(&ev.At, &ev.Period, &from, &to, &val, &amber, &red, &ev.Reason, &ev.RunID); err != nil {
			return nil, fmt.Errorf("store: explain: status events: %w", err)
		}
		ev.From, _ = kpi.ParseStatus(from)
		ev.To, _ = kpi.ParseStatus(to)
		ev.Value = kpi.Value{V: val.Float64, Valid: val.Valid}
		ev.Thresholds = thresholds(nullPtr(amber), nullPtr(red))
		e.Statuses = append(e.Statuses, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: explain: status events: %w", err)
	}
	return e, nil
}

// runs reads the records of the runs ids.
func (s *Store) runs(ctx context.Context, ids ...int64) (map[int64]RunRecord, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT id, collector, source, query, started_at, finished_at, status, coalesce(error, ''), observations, reads, checks
		FROM runs WHERE id = ANY($1::bigint[])`, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("store: runs: %w", err)
	}
	defer rows.Close()
	out := make(map[int64]RunRecord, len(ids))
	for rows.Next() {
		var (
			r             RunRecord
			reads, checks []byte
		)
		if err := rows.Scan(&r.ID, &r.Collector, &r.Source, &r.Query, &r.StartedAt, &r.FinishedAt, &r.Status, &r.Error, &r.Observations, &reads, &checks); err != nil {
			return nil, fmt.Errorf("store: runs: %w", err)
		}
		if len(reads) > 0 {
			if err := json.Unmarshal(reads, &r.Reads); err != nil {
				return nil, fmt.Errorf("store: run %d: reads: %w", r.ID, err)
			}
		}
		if r.Checks, err = parseChecks(checks); err != nil {
			return nil, fmt.Errorf("store: run %d: checks: %w", r.ID, err)
		}
		out[r.ID] = r
	}
	return out, rows.Err()
}

// HistoryRow is one stored value of a series, with the run that stored it.
type HistoryRow struct {
	Series      SeriesRef
	Period      time.Time
	Value       kpi.Value
	RunID       int64
	Collector   string
	CollectedAt time.Time
	Revisions   int
}

// SeriesHistory returns the stored values of the series, for the periods
// within [from, to] (a zero bound is open), ordered by series then period.
func (s *Store) SeriesHistory(ctx context.Context, series []SeriesRef, from, to time.Time) ([]HistoryRow, error) {
	if len(series) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(series))
	byID := make(map[int64]SeriesRef, len(series))
	for i, sr := range series {
		ids[i], byID[sr.ID] = sr.ID, sr
	}
	if to.IsZero() {
		to = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	// The revisions are counted in one pass over the series' revisions,
	// not one probe per stored value: five years of daily values are
	// 1,826 probes, and most values have no revision.
	rows, err := s.db.QueryContext(ctx, `
		SELECT o.series_id, o.period, o.value, o.run_id, r.collector, r.finished_at, coalesce(v.n, 0)
		FROM observations o
		JOIN runs r ON r.id = o.run_id
		LEFT JOIN (
			SELECT series_id, period, count(*) AS n FROM revisions
			WHERE series_id = ANY($1::bigint[]) AND period >= $2 AND period <= $3
			GROUP BY series_id, period
		) v ON v.series_id = o.series_id AND v.period = o.period
		WHERE o.series_id = ANY($1::bigint[]) AND o.period >= $2 AND o.period <= $3
		ORDER BY o.series_id, o.period`, pq.Array(ids), from, to)
	if err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	defer rows.Close()
	var out []HistoryRow
	for rows.Next() {
		var (
			h  HistoryRow
			id int64
			v  sql.NullFloat64
		)
		if err := rows.Scan(&id, &h.Period, &v, &h.RunID, &h.Collector, &h.CollectedAt, &h.Revisions); err != nil {
			return nil, fmt.Errorf("store: history: %w", err)
		}
		h.Series, h.Value = byID[id], kpi.Value{V: v.Float64, Valid: v.Valid}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	order := make(map[int64]int, len(series))
	for i, sr := range series {
		order[sr.ID] = i
	}
	sort.SliceStable(out, func(i, j int) bool { return order[out[i].Series.ID] < order[out[j].Series.ID] })
	return out, nil
}
