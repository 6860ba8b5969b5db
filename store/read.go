package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/carewatch/carewatch/kpi"
)

// Latest returns, for every stored series of a KPI in c, the value of its
// latest period, the run that stored it, its status as c judges that period
// (with the thresholds in force on the period's date: a trajectory may have
// moved them since), and the thresholds in force today (a reload may have
// moved them since the value was stored). A series whose label names are no longer those of its KPI is
// left out: it belongs to an older definition. The states come in no
// particular order: sorting a million of them by their labels costs the
// server more than it costs the exporter, which sorts them its own way.
func (s *Store) Latest(ctx context.Context, c kpi.Catalogue) ([]kpi.SeriesState, error) {
	return s.latest(ctx, c, "", nil)
}

// RunLatest is Latest for the series run runID wrote a value of (a new
// period or a revision) only: what a replica told of the run must read to
// serve what the run changed. A run that changed nothing has none.
func (s *Store) RunLatest(ctx context.Context, c kpi.Catalogue, runID int64) ([]kpi.SeriesState, error) {
	return s.latest(ctx, c, `AND s.id IN (SELECT series_id FROM observations WHERE run_id = $2)`, runID)
}

// RunStates returns, without reading the store, the states that the
// series of obs have once run runID, which this process just stored with
// SaveRun, is committed: each series' observation of the run's latest
// period, judged as Latest judges it. It is for the process that stored
// the run; another reads RunLatest.
//
// They are what RunLatest returns, but for two things a publication must
// allow for: they hold every series of the run, also those whose value the
// run left as it was (their state is the same but for the run and the time
// of collection), and a series' state is the run's even where a later
// period is stored already, so a state must not replace one of a later
// period (Exporter.Update does not). It returns false when an
// observation's KPI is not c's own (a reload replaced the catalogue while
// the run collected): the run must then be read back.
func (s *Store) RunStates(c kpi.Catalogue, runID int64, finished time.Time, obs []kpi.Observation) ([]kpi.SeriesState, bool) {
	b, err := newBatch(obs)
	if err != nil {
		return nil, false
	}
	now := s.now()
	states := make([]kpi.SeriesState, 0, len(b.latest))
	for _, i := range b.latest {
		o := &obs[i]
		k := c[o.KPI.Name]
		if k != o.KPI {
			return nil, false
		}
		// The store keeps microseconds, rounded.
		period := o.Period.Round(time.Microsecond)
		states = append(states, seriesState(k, o.Labels, period, stored(o.Value), now, runID, finished))
	}
	return states, true
}

// seriesState is the state of a series of k whose latest period holds v.
func seriesState(k *kpi.KPI, labels []string, period time.Time, v kpi.Value, now time.Time, runID int64, collectedAt time.Time) kpi.SeriesState {
	// The value is judged by the thresholds in force for its period; the
	// thresholds served are today's, so dashboards draw the target now.
	st, _ := k.Evaluate(labels, period, v)
	return kpi.SeriesState{
		KPI:         k,
		Labels:      labels,
		Period:      period,
		Value:       v,
		Status:      st,
		Thresholds:  k.ThresholdsAt(labels, now),
		CollectedAt: collectedAt,
		RunID:       runID,
	}
}

// latest reads the latest states of the series of c's KPIs that also meet
// the condition and, with $2 as arg.
func (s *Store) latest(ctx context.Context, c kpi.Catalogue, and string, arg any) ([]kpi.SeriesState, error) {
	names := c.Names()
	if len(names) == 0 {
		return nil, nil
	}
	args := []any{pq.Array(names)}
	if and != "" {
		args = append(args, arg)
	}
	// The values and the times of their runs are read in one snapshot, by
	// two queries: a million series' values come from a few runs, and
	// joining each row to its run would send and parse a million copies of
	// a few timestamps.
	// A million probes cost far above jit_above_cost, and compiling the
	// query took about 0.4 s before the first row, while the process
	// waited: the restart benchmark was 0.3 to 0.6 s faster without it.
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: latest values: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var states []kpi.SeriesState
	if and == "" {
		// The planner's estimate of the series stored: growing the slice
		// of a million states as they come would copy them several times.
		var estimate float64
		if err := tx.QueryRowContext(ctx, `SELECT reltuples FROM pg_class WHERE oid = 'series'::regclass`).Scan(&estimate); err != nil {
			return nil, fmt.Errorf("store: latest values: %w", err)
		}
		states = make([]kpi.SeriesState, 0, int(min(max(estimate, 0), maxStatesEstimate)))
	}
	// The lateral subquery reads one row per series backwards along the
	// primary key, however long the history.
	rows, err := tx.QueryContext(ctx, `
		SELECT s.kpi, s.labels, o.period, o.value, o.run_id
		FROM series s
		CROSS JOIN LATERAL (
			SELECT period, value, run_id FROM observations
			WHERE series_id = s.id ORDER BY period DESC LIMIT 1
		) o
		WHERE s.kpi = ANY($1::text[]) `+and, args...)
	if err != nil {
		return nil, fmt.Errorf("store: latest values: %w", err)
	}
	defer rows.Close()
	labels := newLabelReader()
	now := s.now()
	for rows.Next() {
		var (
			name      string
			labelsDoc sql.RawBytes // read before the next row
			period    time.Time
			v         sql.NullFloat64
			runID     int64
		)
		if err := rows.Scan(&name, &labelsDoc, &period, &v, &runID); err != nil {
			return nil, fmt.Errorf("store: latest values: %w", err)
		}
		k := c[name]
		if k == nil {
			continue
		}
		values, ok, err := labels.values(k, labelsDoc)
		if err != nil {
			return nil, fmt.Errorf("store: latest values: kpi %q: series %s: %w", name, labelsDoc, err)
		}
		if !ok {
			s.logger.Debug("series left out: its labels are not those of its KPI",
				"kpi", name, "labels", string(labelsDoc), "kpi_labels", k.Labels)
			continue
		}
		// The time of collection is the run's, filled in below.
		states = append(states, seriesState(k, values, period, kpi.Value{V: v.Float64, Valid: v.Valid}, now, runID, time.Time{}))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: latest values: %w", err)
	}
	if err := runTimes(ctx, tx, states); err != nil {
		return nil, fmt.Errorf("store: latest values: %w", err)
	}
	return states, nil
}

// readTx begins the read-only transaction that reads of many series run
// in: one snapshot for their several statements, and no JIT compilation.
// They read thousands to millions of rows in short index ranges, and their
// estimated cost is far above jit_above_cost: compiling them took longer
// than running them.
func (s *Store) readTx(ctx context.Context) (*sql.Tx, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `SET LOCAL jit = off`); err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// maxStatesEstimate bounds the states allocated ahead on the planner's
// estimate, should its statistics be far off.
const maxStatesEstimate = 10_000_000

// runTimes sets the time of collection of every state: when its run
// finished, or zero if the run's record is gone.
func runTimes(ctx context.Context, tx *sql.Tx, states []kpi.SeriesState) error {
	finished := make(map[int64]time.Time)
	for i := range states {
		finished[states[i].RunID] = time.Time{}
	}
	if err := finishTimes(ctx, tx, finished); err != nil {
		return err
	}
	for i := range states {
		states[i].CollectedAt = finished[states[i].RunID]
	}
	return nil
}

// finishTimes sets each run of finished (its keys, run IDs) to when the
// run finished, read once per run: values read by the million come from a
// few runs. A run whose record is gone keeps the zero time.
func finishTimes(ctx context.Context, tx *sql.Tx, finished map[int64]time.Time) error {
	if len(finished) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(finished))
	for id := range finished {
		ids = append(ids, id)
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, finished_at FROM runs WHERE id = ANY($1::bigint[])`, pq.Array(ids))
	if err != nil {
		return fmt.Errorf("runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id int64
			at time.Time
		)
		if err := rows.Scan(&id, &at); err != nil {
			return fmt.Errorf("runs: %w", err)
		}
		finished[id] = at
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("runs: %w", err)
	}
	return nil
}

// alignLabels returns the values of labels in the order of k.Labels, or
// false if the label names are not exactly k's.
func alignLabels(k *kpi.KPI, labels map[string]string) ([]string, bool) {
	if len(labels) != len(k.Labels) {
		return nil, false
	}
	values := make([]string, len(k.Labels))
	for i, name := range k.Labels {
		v, ok := labels[name]
		if !ok {
			return nil, false
		}
		values[i] = v
	}
	return values, true
}

// Health returns a summary of every collector's runs, ordered by
// collector: a step per collector ever recorded, whatever the number of runs.
func (s *Store) Health(ctx context.Context) ([]kpi.CollectorHealth, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT h.collector, h.runs, h.failures,
		       l.status = 'success', l.finished_at, l.duration_seconds, coalesce(l.error, ''),
		       ok.finished_at, coalesce(ok.observations, 0), l.checks
		FROM collector_health h
		JOIN runs l ON l.id = h.last_run_id
		LEFT JOIN runs ok ON ok.id = h.last_success_id
		ORDER BY h.collector`)
	if err != nil {
		return nil, fmt.Errorf("store: collector health: %w", err)
	}
	defer rows.Close()
	var hs []kpi.CollectorHealth
	for rows.Next() {
		var (
			h         kpi.CollectorHealth
			durSecs   float64
			lastOKAt  sql.NullTime
			lastRunAt time.Time
			checks    []byte
		)
		if err := rows.Scan(&h.Collector, &h.Runs, &h.Failures, &h.LastRunOK, &lastRunAt, &durSecs,
			&h.LastError, &lastOKAt, &h.LastObservations, &checks); err != nil {
			return nil, fmt.Errorf("store: collector health: %w", err)
		}
		var err error
		if h.LastRunChecks, err = parseChecks(checks); err != nil {
			return nil, fmt.Errorf("store: collector health: %s: checks: %w", h.Collector, err)
		}
		h.LastRunAt = lastRunAt
		h.LastRunDuration = time.Duration(durSecs * float64(time.Second))
		h.LastSuccessAt = lastOKAt.Time
		hs = append(hs, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: collector health: %w", err)
	}
	return hs, nil
}

// pruneBatch bounds the runs one statement of PruneRuns deletes.
const pruneBatch = 5000

// PruneRuns deletes the records of runs that finished before before and
// that nothing points at: no observation, revision or status came from
// them, and none is its collector's latest run or latest success. Those
// stay, so every stored number can still be traced to its run. Collector
// health counts are kept apart and do not change. It returns how many runs
// it deleted.
func (s *Store) PruneRuns(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, `
			DELETE FROM runs WHERE id IN (
				SELECT r.id FROM runs r
				WHERE r.finished_at < $1
				  AND NOT EXISTS (SELECT 1 FROM observations o WHERE o.run_id = r.id)
				  AND NOT EXISTS (SELECT 1 FROM revisions v WHERE v.old_run_id = r.id)
				  AND NOT EXISTS (SELECT 1 FROM revisions v WHERE v.new_run_id = r.id)
				  AND NOT EXISTS (SELECT 1 FROM series_status x WHERE x.run_id = r.id)
				  AND NOT EXISTS (SELECT 1 FROM status_events e WHERE e.run_id = r.id)
				  AND NOT EXISTS (SELECT 1 FROM collector_health h WHERE h.last_run_id = r.id)
				  AND NOT EXISTS (SELECT 1 FROM collector_health h WHERE h.last_success_id = r.id)
				ORDER BY r.id LIMIT $2)`, before, pruneBatch)
		if err != nil {
			return total, fmt.Errorf("store: pruning runs: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("store: pruning runs: %w", err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}
