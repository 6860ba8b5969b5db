package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/carewatch/carewatch/kpi"
)

// SaveRun records a run and, for a successful one, its observations, in one
// transaction.
//
// A failed run (run.Err != nil) is recorded with its error and nothing else
// is touched. A successful run stores series it is the first to see, new
// (series, period) pairs, and new values for stored periods, each of which
// is also kept as a revision with the old value and run; a period stored
// with the same value (missing counts as the same as missing) is left
// alone. So saving the same run twice changes nothing but the run records.
//
// Then, for every series of a KPI with thresholds, the value of the run's
// latest period is evaluated, unless a later period is already stored; a
// status other than the stored one becomes the current status and is
// recorded as a status event. The result lists those changes.
//
// The commit sends a notification on NotifyChannel, so that other replicas
// know the collector's data changed and which run changed it.
//
// A NaN or infinite value is stored and judged as missing: no KPI takes such
// a value, and a division by zero is missing, not infinite.
func (s *Store) SaveRun(ctx context.Context, run kpi.Run, obs []kpi.Observation) (kpi.RunResult, error) {
	if run.Collector == "" {
		return kpi.RunResult{}, errors.New("store: save run: the run names no collector")
	}
	if run.Err != nil {
		return s.saveFailedRun(ctx, run)
	}
	b, err := newBatch(obs)
	if err != nil {
		return kpi.RunResult{}, fmt.Errorf("store: collector %q: %w", run.Collector, err)
	}
	start := time.Now()
	res, learned, err := s.saveRun(ctx, run, b)
	if err != nil {
		return kpi.RunResult{}, fmt.Errorf("store: collector %q: saving %d observations: %w", run.Collector, len(obs), err)
	}
	if len(learned) > 0 {
		s.mu.Lock()
		s.known.set(learned, make([]struct{}, len(learned)))
		s.mu.Unlock()
	}
	s.logger.Debug("saved run", "collector", run.Collector, "run", res.RunID,
		"observations", res.Observations, "inserted", res.Inserted, "revised", res.Revised,
		"status_changes", len(res.StatusChanges), "took", time.Since(start))
	return res, nil
}

// saveFailedRun records a failed run and nothing else.
func (s *Store) saveFailedRun(ctx context.Context, run kpi.Run) (kpi.RunResult, error) {
	var id int64
	err := s.inTx(ctx, func(tx *sqlx.Conn) (err error) {
		if id, err = insertRun(ctx, tx, run, 0); err != nil {
			return err
		}
		return s.notify(ctx, tx, id, run.Collector)
	})
	if err != nil {
		return kpi.RunResult{}, fmt.Errorf("store: collector %q: saving failed run: %w", run.Collector, err)
	}
	return kpi.RunResult{RunID: id}, nil
}

// insertRun records run, which carried n observations.
func insertRun(ctx context.Context, tx *sqlx.Conn, run kpi.Run, n int) (int64, error) {
	status, errText, failed := "success", any(nil), 0
	if run.Err != nil {
		status, errText, failed = "failed", run.Err.Error(), 1
	}
	reads := run.Reads
	if reads == nil {
		reads = []kpi.Read{}
	}
	readsJSON, err := json.Marshal(reads)
	if err != nil {
		return 0, fmt.Errorf("recording the run's reads: %w", err)
	}
	checks, err := checksDoc(run.Checks)
	if err != nil {
		return 0, fmt.Errorf("recording the run's checks: %w", err)
	}
	var id int64
	err = tx.QueryRowContext(ctx, `
		INSERT INTO runs (collector, source, query, started_at, finished_at, duration_seconds, status, error, observations, reads, checks)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		RETURNING id`,
		run.Collector, run.Source, run.Query, run.StartedAt, run.FinishedAt,
		max(run.FinishedAt.Sub(run.StartedAt).Seconds(), 0), status, errText, n, string(readsJSON), checks,
	).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("recording the run: %w", err)
	}
	// The collector's health follows in the same transaction. A run that
	// finished before the latest one recorded (a replica's, late) counts,
	// but does not become the latest.
	_, err = tx.ExecContext(ctx, `
		INSERT INTO collector_health AS h (collector, runs, failures, last_run_id, last_success_id)
		VALUES ($1, 1, $2::bigint, $3::bigint, CASE WHEN $2::bigint = 0 THEN $3::bigint END)
		ON CONFLICT (collector) DO UPDATE SET
			runs = h.runs + 1,
			failures = h.failures + $2::bigint,
			last_run_id = CASE
				WHEN (SELECT finished_at FROM runs WHERE id = h.last_run_id) > $4::timestamptz THEN h.last_run_id
				ELSE $3::bigint END,
			last_success_id = CASE
				WHEN $2::bigint = 1 THEN h.last_success_id
				WHEN (SELECT finished_at FROM runs WHERE id = h.last_success_id) > $4::timestamptz THEN h.last_success_id
				ELSE $3::bigint END`,
		run.Collector, failed, id, run.FinishedAt)
	if err != nil {
		return 0, fmt.Errorf("recording the collector's health: %w", err)
	}
	return id, nil
}

// notify announces a run on NotifyChannel (see Notification).
func (s *Store) notify(ctx context.Context, tx *sqlx.Conn, runID int64, collector string) error {
	// Sent inside the transaction, the notification is delivered at commit
	// and only if the commit succeeds.
	payload := s.instance + " " + strconv.FormatInt(runID, 10) + " " + collector
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, payload); err != nil {
		return fmt.Errorf("notifying %s: %w", NotifyChannel, err)
	}
	return nil
}

// batch is a run's observations with what SaveRun works out before it
// touches the database.
type batch struct {
	obs []kpi.Observation
	// ids holds each observation's series ID as writers compute it.
	ids []int64
	// order lists the observations by series ID, then period: the order
	// they are written in, so that the primary key of observations is
	// walked once from one end instead of at random.
	order []int
	// series holds the run's distinct series IDs in ascending order, and
	// latest the index of each one's observation of the latest period.
	series []int64
	latest []int
}

func newBatch(obs []kpi.Observation) (*batch, error) {
	type key struct {
		id int64
		i  int
	}
	keys := make([]key, len(obs))
	b := &batch{obs: obs, ids: make([]int64, len(obs))}
	for i := range obs {
		o := &obs[i]
		if o.KPI == nil {
			return nil, fmt.Errorf("observation %d has no KPI", i)
		}
		if len(o.Labels) != len(o.KPI.Labels) {
			return nil, fmt.Errorf("observation %d of KPI %q has %d label values for %d labels",
				i, o.KPI.Name, len(o.Labels), len(o.KPI.Labels))
		}
		for j, v := range o.Labels {
			// Label sets are stored as JSON, which would replace the bytes
			// that are not UTF-8, so that two series became one.
			if !utf8.ValidString(v) {
				return nil, fmt.Errorf("observation %d of KPI %q: the value of label %q is not valid UTF-8", i, o.KPI.Name, o.KPI.Labels[j])
			}
		}
		if o.Period.IsZero() {
			return nil, fmt.Errorf("observation %d of %s%s has no period", i, o.KPI.Name, kpi.LabelString(o.KPI, o.Labels))
		}
		id := kpi.SeriesID(o.KPI, o.Labels)
		b.ids[i] = id
		keys[i] = key{id, i}
	}
	// Sorting a million keys costs less than a million probes into a hash
	// table of that size.
	slices.SortFunc(keys, func(x, y key) int {
		if c := cmp.Compare(x.id, y.id); c != 0 {
			return c
		}
		return cmp.Compare(x.i, y.i)
	})
	b.order = make([]int, len(keys))
	for i, k := range keys {
		b.order[i] = k.i
	}
	byPeriod := func(x, y int) int { return obs[x].Period.Compare(obs[y].Period) }
	for g := 0; g < len(keys); {
		h := g + 1
		for h < len(keys) && keys[h].id == keys[g].id {
			h++
		}
		group := b.order[g:h]
		if len(group) > 1 {
			slices.SortStableFunc(group, byPeriod)
			for k := 1; k < len(group); k++ {
				if byPeriod(group[k-1], group[k]) == 0 {
					o := &obs[group[k]]
					return nil, fmt.Errorf("the run holds two values of %s%s for the period %s",
						o.KPI.Name, kpi.LabelString(o.KPI, o.Labels), o.Period.Format(time.RFC3339))
				}
			}
		}
		b.series = append(b.series, keys[g].id)
		b.latest = append(b.latest, group[len(group)-1])
		g = h
	}
	return b, nil
}

// latestOf returns the observation of the latest period of series id.
func (b *batch) latestOf(id int64) *kpi.Observation {
	j, _ := slices.BinarySearch(b.series, id)
	return &b.obs[b.latest[j]]
}

// value is v as stored: a float64, or nil (NULL) for a missing value.
func value(v kpi.Value) any {
	if !v.Valid || math.IsNaN(v.V) || math.IsInf(v.V, 0) {
		return nil
	}
	return v.V
}

// stored is v as stored and read back.
func stored(v kpi.Value) kpi.Value {
	if value(v) == nil {
		return kpi.Missing
	}
	return v
}

// saveRun writes a successful run in one transaction. It returns the result
// and the series IDs it learned, for the cache once committed.
func (s *Store) saveRun(ctx context.Context, run kpi.Run, b *batch) (res kpi.RunResult, learned []int64, err error) {
	now := s.now()
	res.Observations = len(b.obs)
	// Where the time goes, for the debug log: a slow save is the first thing
	// an operator with a large collector will ask about.
	var took []any
	lap := time.Now()
	step := func(name string) {
		took = append(took, name, time.Since(lap))
		lap = time.Now()
	}
	defer func() { s.logger.Debug("run save steps", append([]any{"collector", run.Collector}, took...)...) }()

	// Statuses are judged before the transaction begins, to keep it short.
	cands := evaluate(b)
	step("evaluate")

	// statusMu is taken in the transaction before its status step, and
	// held until the transaction has ended: see updateStatus.
	var (
		rec          *statusRecord
		statusLocked bool
		created      []int64
	)
	defer func() {
		if statusLocked {
			s.statusMu.Unlock()
		}
	}()
	err = s.inTx(ctx, func(tx *sqlx.Conn) error {
		var err error
		if res.RunID, err = insertRun(ctx, tx, run, len(b.obs)); err != nil {
			return err
		}
		step("run")
		if learned, created, err = s.resolveSeries(ctx, tx, b, now); err != nil {
			return err
		}
		step("series")
		if err := writeObservations(ctx, tx, b, res.RunID, now, &res); err != nil {
			return err
		}
		if err := rollUp(ctx, tx, b, res); err != nil {
			return err
		}
		step("observations")
		if len(cands) > 0 {
			s.statusMu.Lock()
			statusLocked = true
		}
		if res.StatusChanges, rec, err = s.updateStatus(ctx, tx, b, cands, created, res.RunID, now); err != nil {
			return err
		}
		step("status")
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET inserted = $2, revised = $3 WHERE id = $1`,
			res.RunID, res.Inserted, res.Revised); err != nil {
			return fmt.Errorf("recording the run's counts: %w", err)
		}
		return s.notify(ctx, tx, res.RunID, run.Collector)
	})
	if err != nil {
		return res, nil, err
	}
	s.applyStatusRecord(rec)
	step("commit")
	return res, learned, nil
}

// writeObservations stores the batch's observations and counts what changed.
//
// Most runs collect a period not stored yet, so it first copies the rows
// straight into observations inside a savepoint: as fast as a plain COPY.
// If any (series, period) is stored already, the copy fails on the primary
// key (usually at its first row), is rolled back to the savepoint, and the
// rows are merged instead.
func writeObservations(ctx context.Context, tx *sqlx.Conn, b *batch, runID int64, now time.Time, res *kpi.RunResult) error {
	if len(b.obs) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SAVEPOINT copy_observations`); err != nil {
		return err
	}
	enc := newCopyEncoder()
	run := enc.int(nil, runID)
	err := copyIn(ctx, tx, "observations", []string{"series_id", "period", "value", "run_id"}, len(b.obs), func(buf []byte, k int) []byte {
		i := b.order[k]
		o := &b.obs[i]
		buf = append(enc.int(buf, b.ids[i]), '\t')
		buf = append(enc.time(buf, o.Period), '\t')
		buf = append(enc.value(buf, o.Value), '\t')
		return append(buf, run...)
	})
	if err == nil {
		if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT copy_observations`); err != nil {
			return err
		}
		res.Inserted = len(b.obs)
		return nil
	}
	if pq.As(err, pqerror.UniqueViolation) == nil {
		return fmt.Errorf("copying observations: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT copy_observations`); err != nil {
		return err
	}
	return mergeObservations(ctx, tx, b, runID, now, enc, res)
}

// rollUp keeps the monthly rollup (observations_monthly) for the
// observations the run inserted; revisions keep it through their trigger.
func rollUp(ctx context.Context, tx *sqlx.Conn, b *batch, res kpi.RunResult) error {
	if res.Inserted == 0 {
		return nil
	}
	earliest, latest := b.obs[0].Period, b.obs[0].Period
	for i := range b.obs {
		if p := b.obs[i].Period; p.Before(earliest) {
			earliest = p
		} else if p.After(latest) {
			latest = p
		}
	}
	if _, err := tx.ExecContext(ctx, `SELECT observations_monthly_insert_run($1, $2, $3)`,
		res.RunID, earliest, latest); err != nil {
		return fmt.Errorf("rolling up the run's months: %w", err)
	}
	return nil
}

// mergeObservations stores the batch's observations when some of their
// periods are stored already.
func mergeObservations(ctx context.Context, tx *sqlx.Conn, b *batch, runID int64, now time.Time, enc *copyEncoder, res *kpi.RunResult) error {
	if _, err := tx.ExecContext(ctx, `
		CREATE TEMP TABLE run_observations (
			series_id bigint, period timestamptz, value double precision
		) ON COMMIT DROP`); err != nil {
		return fmt.Errorf("staging observations: %w", err)
	}
	err := copyIn(ctx, tx, "run_observations", []string{"series_id", "period", "value"}, len(b.obs), func(buf []byte, k int) []byte {
		i := b.order[k]
		o := &b.obs[i]
		buf = append(enc.int(buf, b.ids[i]), '\t')
		buf = append(enc.time(buf, o.Period), '\t')
		return enc.value(buf, o.Value)
	})
	if err != nil {
		return fmt.Errorf("staging observations: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `ANALYZE run_observations`); err != nil {
		return fmt.Errorf("staging observations: %w", err)
	}
	// One join sorts the rows into new, changed and unchanged. All parts of
	// the statement see the same snapshot, so the revisions keep the values
	// from before the update. ON CONFLICT covers a period another writer
	// stored since.
	var inserted, revised int
	if err := tx.QueryRowContext(ctx, `
		WITH j AS MATERIALIZED (
			SELECT n.series_id, n.period, n.value, o.value AS old_value, o.run_id AS old_run_id,
			       o.series_id IS NOT NULL AS stored
			FROM run_observations n
			LEFT JOIN observations o ON o.series_id = n.series_id AND o.period = n.period
		), ins AS (
			INSERT INTO observations (series_id, period, value, run_id)
			SELECT series_id, period, value, $1 FROM j WHERE NOT stored
			ON CONFLICT (series_id, period) DO NOTHING
			RETURNING 1
		), changed AS (
			SELECT * FROM j WHERE stored AND old_value IS DISTINCT FROM value
		), upd AS (
			UPDATE observations o SET value = c.value, run_id = $1
			FROM changed c
			WHERE o.series_id = c.series_id AND o.period = c.period
		), rev AS (
			INSERT INTO revisions (series_id, period, old_value, new_value, old_run_id, new_run_id, revised_at)
			SELECT series_id, period, old_value, value, old_run_id, $1, $2 FROM changed
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM rev)`,
		runID, now).Scan(&inserted, &revised); err != nil {
		return fmt.Errorf("merging observations: %w", err)
	}
	res.Inserted, res.Revised = inserted, revised
	res.Unchanged = len(b.obs) - inserted - revised
	return nil
}
