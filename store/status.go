package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/carewatch/carewatch/kpi"
)

// statusLockKey is the advisory lock key that serialises, across processes,
// the part of SaveRun that records status changes ("carewatch status").
const statusLockKey int64 = 0x63_77_73_74_61_74_75_73

// candidate is a series' status judged on the value of the run's latest
// period. It is kept small: a run may hold a million.
type candidate struct {
	id     int64 // as writers compute it
	obs    int
	status kpi.Status
}

// evaluate judges the latest value of every series of the batch whose KPI
// has thresholds.
func evaluate(b *batch) []candidate {
	cands := make([]candidate, 0, len(b.series))
	var (
		k             *kpi.KPI
		hasThresholds bool
	)
	for j, id := range b.series {
		i := b.latest[j]
		o := &b.obs[i]
		if o.KPI != k {
			k, hasThresholds = o.KPI, o.KPI.HasThresholds()
		}
		if !hasThresholds {
			continue
		}
		if st, _ := k.Evaluate(o.Labels, o.Period, stored(o.Value)); st != kpi.StatusNone {
			cands = append(cands, candidate{id: id, obs: i, status: st})
		}
	}
	return cands
}

// updateStatus records the statuses of cands that differ from the stored
// ones, for series whose latest stored period is the run's.
//
// Comparing a million statuses in the database costs more than storing the
// million observations, so the store keeps the stored statuses it has seen
// in memory, and only candidates that differ from them go to the database.
// The memory follows status_events, which only this function writes: it
// holds statusLockKey until its transaction ends, so events are committed
// in the order of their IDs, and replaying the events after the last one
// it saw brings the memory up to date with every other writer.
//
// The series the transaction stored (created, ascending) have no stored
// status: their first statuses are copied straight in (copyFirstStatuses).
//
// The caller holds statusMu from before the call until after the commit,
// and then, if the commit succeeded, applies the returned record to memory.
func (s *Store) updateStatus(ctx context.Context, tx *sqlx.Conn, b *batch, cands []candidate, created []int64, runID int64, now time.Time) ([]kpi.StatusChange, *statusRecord, error) {
	if len(cands) == 0 {
		return nil, nil, nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, statusLockKey); err != nil {
		return nil, nil, fmt.Errorf("status lock: %w", err)
	}
	if err := s.followStatusEvents(ctx, tx); err != nil {
		return nil, nil, fmt.Errorf("reading status events: %w", err)
	}
	rec := &statusRecord{}
	var changes []kpi.StatusChange
	first, rest := splitCandidates(cands, created)
	if len(first) > 0 {
		var err error
		changes, err = copyFirstStatuses(ctx, tx, b, first, runID, now, rec)
		if err != nil {
			return nil, nil, err
		}
		if changes == nil {
			rest = cands
		}
	}
	// The first statuses come sorted.
	sorted := len(changes)
	if len(rest) > 0 {
		byID, changed, err := s.changedStatuses(ctx, tx, rest)
		if err != nil {
			return nil, nil, err
		}
		if len(changed) > 0 {
			reasons, err := statusReasons(ctx, tx, b, byID, changed)
			if err != nil {
				return nil, nil, fmt.Errorf("reading statuses: %w", err)
			}
			if err := stageStatuses(ctx, tx, b, byID, changed, reasons); err != nil {
				return nil, nil, err
			}
			if changes, err = recordStatusChanges(ctx, tx, b, byID, reasons, runID, now, changes, rec); err != nil {
				return nil, nil, err
			}
		}
	}
	if len(changes) == 0 {
		return nil, nil, nil
	}
	if sorted < len(changes) {
		sortChanges(changes)
	}
	return changes, rec, nil
}

// sortChanges sorts changes in the order of RunResult.StatusChanges.
func sortChanges(changes []kpi.StatusChange) {
	permute(changes, changesOrder(changes))
}

// changesOrder returns the indexes of changes in the order of
// RunResult.StatusChanges: by KPI name, then label values. It only reads
// changes. A first run's million changes are large to move about: sorting
// their indexes and then moving each change once (permute) costs less.
func changesOrder(changes []kpi.StatusChange) []int32 {
	order := make([]int32, len(changes))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(i, j int32) int {
		a, b := &changes[i], &changes[j]
		if c := strings.Compare(a.KPI.Name, b.KPI.Name); c != 0 {
			return c
		}
		return slices.Compare(a.Labels, b.Labels)
	})
	return order
}

// permute moves the change at order[i] to position i, for every i, in
// place; it uses up order.
func permute(changes []kpi.StatusChange, order []int32) {
	// Follow each cycle of the permutation, marking the positions filled
	// with order[i] = i.
	for i := range order {
		if int(order[i]) == i {
			continue
		}
		held := changes[i]
		j := i
		for {
			k := int(order[j])
			order[j] = int32(j)
			if k == i {
				changes[j] = held
				break
			}
			changes[j] = changes[k]
			j = k
		}
	}
}

// splitCandidates splits cands into those of the series created (both
// ascending) and the others.
func splitCandidates(cands []candidate, created []int64) (first, rest []candidate) {
	if len(created) == 0 {
		return nil, cands
	}
	j := 0
	for i := range cands {
		for j < len(created) && created[j] < cands[i].id {
			j++
		}
		if j < len(created) && created[j] == cands[i].id {
			first = append(first, cands[i])
		} else {
			rest = append(rest, cands[i])
		}
	}
	return first, rest
}

// copyFirstStatuses records the first status of series the transaction
// stored (cands, ascending), copying the rows straight into series_status
// and status_events: such a series has no stored status to compare with or
// give a reason against, and its latest period is the run's. It returns
// the changes, sorted (see sortChanges), and records them in rec; or nil,
// having rolled back to its savepoint, if a status is stored already for
// one of them.
func copyFirstStatuses(ctx context.Context, tx *sqlx.Conn, b *batch, cands []candidate, runID int64, now time.Time, rec *statusRecord) ([]kpi.StatusChange, error) {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT copy_statuses`); err != nil {
		return nil, err
	}
	enc := newCopyEncoder()
	at := enc.time(nil, now)
	run := enc.int(nil, runID)
	changes := make([]kpi.StatusChange, len(cands))
	// The period, value and thresholds of a status and of its event.
	judged := func(buf []byte, ch *kpi.StatusChange) []byte {
		buf = append(enc.time(buf, ch.Period), '\t')
		buf = append(enc.value(buf, ch.Value), '\t')
		buf = append(enc.threshold(buf, ch.Thresholds.Amber), '\t')
		return append(enc.threshold(buf, ch.Thresholds.Red), '\t')
	}
	err := copyIn(ctx, tx, "series_status", []string{"series_id", "status", "since", "period", "value", "amber", "red", "run_id"}, len(cands), func(buf []byte, i int) []byte {
		c := &cands[i]
		o := &b.obs[c.obs]
		_, th := o.KPI.Evaluate(o.Labels, o.Period, stored(o.Value))
		changes[i] = kpi.StatusChange{
			KPI: o.KPI, Labels: o.Labels, Period: o.Period, From: kpi.StatusNone, To: c.status,
			Value: stored(o.Value), Thresholds: th, At: now,
		}
		buf = append(enc.int(buf, c.id), '\t')
		buf = append(enc.text(buf, c.status.String()), '\t')
		buf = append(append(buf, at...), '\t')
		buf = judged(buf, &changes[i])
		return append(buf, run...)
	})
	if err != nil {
		if pq.As(err, pqerror.UniqueViolation) == nil {
			return nil, fmt.Errorf("recording first statuses: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT copy_statuses`); err != nil {
			return nil, err
		}
		return nil, nil
	}
	// The changes' order is worked out while the server stores the events:
	// the client has little else to do then.
	order := make(chan []int32, 1)
	go func() { order <- changesOrder(changes) }()
	defer func() {
		if order != nil {
			<-order
		}
	}()
	err = copyIn(ctx, tx, "status_events", []string{"series_id", "at", "from_status", "to_status", "period", "value", "amber", "red", "run_id", "reason"}, len(cands), func(buf []byte, i int) []byte {
		c := &cands[i]
		buf = append(enc.int(buf, c.id), '\t')
		buf = append(append(buf, at...), "\t\\N\t"...)
		buf = append(enc.text(buf, c.status.String()), '\t')
		buf = append(judged(buf, &changes[i]), run...)
		return append(buf, "\t\\N"...)
	})
	if err != nil {
		return nil, fmt.Errorf("recording first statuses: %w", err)
	}
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT currval(pg_get_serial_sequence('status_events', 'id'))`).Scan(&last); err != nil {
		return nil, fmt.Errorf("recording first statuses: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT copy_statuses`); err != nil {
		return nil, err
	}
	for i := range cands {
		rec.add(cands[i].id, cands[i].status)
	}
	rec.last = max(rec.last, last)
	permute(changes, <-order)
	order = nil
	return changes, nil
}

// changedStatuses returns the candidates whose status differs from the one
// in memory (brought up to date with the store), by series ID, and their
// IDs in order.
func (s *Store) changedStatuses(ctx context.Context, tx *sqlx.Conn, cands []candidate) (map[int64]*candidate, []int64, error) {
	// The candidates come in the order of their series IDs.
	ids := make([]int64, len(cands))
	for i := range cands {
		ids[i] = cands[i].id
	}
	if err := s.loadStatuses(ctx, tx, ids); err != nil {
		return nil, nil, fmt.Errorf("reading statuses: %w", err)
	}
	byID := make(map[int64]*candidate)
	var changed []int64
	s.statuses.join(ids, func(i int, st kpi.Status, _ bool) {
		if st != cands[i].status {
			byID[ids[i]] = &cands[i]
			changed = append(changed, ids[i])
		}
	})
	return byID, changed, nil
}

// stageStatuses copies the changed series' new statuses, with the period,
// value and thresholds they were judged on, into the temporary table
// run_status.
func stageStatuses(ctx context.Context, tx *sqlx.Conn, b *batch, byID map[int64]*candidate, changed []int64, reasons map[int64]string) error {
	if _, err := tx.ExecContext(ctx, `
		CREATE TEMP TABLE run_status (
			series_id bigint, period timestamptz, value double precision,
			status text, amber double precision, red double precision, reason text
		) ON COMMIT DROP`); err != nil {
		return fmt.Errorf("staging statuses: %w", err)
	}
	enc := newCopyEncoder()
	err := copyIn(ctx, tx, "run_status", []string{"series_id", "period", "value", "status", "amber", "red", "reason"}, len(changed), func(buf []byte, i int) []byte {
		c := byID[changed[i]]
		o := &b.obs[c.obs]
		_, th := o.KPI.Evaluate(o.Labels, o.Period, stored(o.Value))
		buf = append(enc.int(buf, changed[i]), '\t')
		buf = append(enc.time(buf, o.Period), '\t')
		buf = append(enc.value(buf, o.Value), '\t')
		buf = append(enc.text(buf, c.status.String()), '\t')
		buf = append(enc.threshold(buf, th.Amber), '\t')
		buf = append(enc.threshold(buf, th.Red), '\t')
		if r := reasons[changed[i]]; r != "" {
			return enc.text(buf, r)
		}
		return append(buf, '\\', 'N')
	})
	if err != nil {
		return fmt.Errorf("staging statuses: %w", err)
	}
	return nil
}

// recordStatusChanges stores the staged statuses that change a series'
// status, with a status event each. It returns changes with the changes
// appended, and records in rec what memory must learn once the
// transaction commits.
func recordStatusChanges(ctx context.Context, tx *sqlx.Conn, b *batch, byID map[int64]*candidate, reasons map[int64]string, runID int64, now time.Time, changes []kpi.StatusChange, rec *statusRecord) ([]kpi.StatusChange, error) {
	// A status changes when it differs from the stored one and the run's
	// latest period is the series' latest (the run's rows are stored by
	// now). The status is compared again here: that costs nothing and does
	// not depend on memory.
	rows, err := tx.QueryContext(ctx, `
		WITH changed AS (
			SELECT c.series_id, c.period, c.value, c.status, c.amber, c.red, c.reason, cur.status AS from_status
			FROM run_status c
			LEFT JOIN series_status cur ON cur.series_id = c.series_id
			WHERE cur.status IS DISTINCT FROM c.status
			  AND c.period >= (SELECT max(o.period) FROM observations o WHERE o.series_id = c.series_id)
		), upserted AS (
			INSERT INTO series_status AS s (series_id, status, since, period, value, amber, red, run_id)
			SELECT series_id, status, $1, period, value, amber, red, $2 FROM changed
			ON CONFLICT (series_id) DO UPDATE SET
				status = excluded.status, since = excluded.since, period = excluded.period,
				value = excluded.value, amber = excluded.amber, red = excluded.red, run_id = excluded.run_id
		)
		INSERT INTO status_events (series_id, at, period, from_status, to_status, value, amber, red, run_id, reason)
		SELECT series_id, $1, period, from_status, status, value, amber, red, $2, reason FROM changed
		RETURNING id, series_id, from_status`, now, runID)
	if err != nil {
		return nil, fmt.Errorf("recording status changes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var event, id int64
		var from sql.NullString
		if err := rows.Scan(&event, &id, &from); err != nil {
			return nil, fmt.Errorf("recording status changes: %w", err)
		}
		c, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("recording status changes: series %d was not in the run", id)
		}
		fromStatus, err := kpi.ParseStatus(from.String)
		if err != nil {
			return nil, fmt.Errorf("recording status changes: %w", err)
		}
		rec.add(id, c.status)
		rec.last = max(rec.last, event)
		o := &b.obs[c.obs]
		_, th := o.KPI.Evaluate(o.Labels, o.Period, stored(o.Value))
		changes = append(changes, kpi.StatusChange{
			KPI:        o.KPI,
			Labels:     o.Labels,
			Period:     o.Period,
			From:       fromStatus,
			To:         c.status,
			Value:      stored(o.Value),
			Thresholds: th,
			At:         now,
			Reason:     reasons[id],
		})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recording status changes: %w", err)
	}
	return changes, nil
}

// statusReasons says why each changed series changes status: a series
// with a stored status changes for its target when the thresholds it was
// judged by have moved and its new value, judged by them, would have kept
// its stored status; otherwise for its value. A series without a stored
// status has no reason.
func statusReasons(ctx context.Context, tx *sqlx.Conn, b *batch, byID map[int64]*candidate, changed []int64) (map[int64]string, error) {
	rows, err := tx.QueryContext(ctx, `
		SELECT series_id, status, amber, red FROM series_status WHERE series_id = ANY($1::bigint[])`, pq.Array(changed))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	reasons := make(map[int64]string, len(changed))
	for rows.Next() {
		var (
			id         int64
			status     string
			amber, red sql.NullFloat64
		)
		if err := rows.Scan(&id, &status, &amber, &red); err != nil {
			return nil, err
		}
		c := byID[id]
		if c == nil {
			continue
		}
		from, err := kpi.ParseStatus(status)
		if err != nil {
			return nil, err
		}
		o := &b.obs[c.obs]
		v := stored(o.Value)
		_, now := o.KPI.Evaluate(o.Labels, o.Period, v)
		before := kpi.Thresholds{Amber: kpi.Threshold{Value: amber.Float64, Set: amber.Valid}, Red: kpi.Threshold{Value: red.Float64, Set: red.Valid}}
		reasons[id] = kpi.ReasonValue
		if before != now && o.KPI.Judge(v, before) == from {
			reasons[id] = kpi.ReasonTarget
		}
	}
	return reasons, rows.Err()
}

// statusRecord is what a transaction wrote to status_events: the stored
// series' new statuses, one each, and the last event's ID.
type statusRecord struct {
	ids  []int64
	vals []kpi.Status
	last int64
}

func (r *statusRecord) add(id int64, st kpi.Status) {
	r.ids, r.vals = append(r.ids, id), append(r.vals, st)
}

// applyStatusRecord brings s.statuses up to date with the changes a
// committed transaction recorded. It needs statusMu, held since before the
// transaction took statusLockKey: no other writer's events can lie between
// statusSeen and the record's.
func (s *Store) applyStatusRecord(rec *statusRecord) {
	if rec == nil || len(rec.ids) == 0 {
		return
	}
	var ids []int64
	var vals []kpi.Status
	if slices.IsSorted(rec.ids) {
		// A first run's million new statuses: one merge with memory.
		s.statuses.join(rec.ids, func(i int, _ kpi.Status, ok bool) {
			if ok {
				s.statuses.update(rec.ids[i], rec.vals[i])
			} else {
				ids, vals = append(ids, rec.ids[i]), append(vals, rec.vals[i])
			}
		})
	} else {
		for i, id := range rec.ids {
			if !s.statuses.update(id, rec.vals[i]) {
				ids, vals = append(ids, id), append(vals, rec.vals[i])
			}
		}
	}
	s.statuses.set(ids, vals)
	s.statusSeen = max(s.statusSeen, rec.last)
}

// followStatusEvents brings s.statuses up to date with the status events
// recorded since it last looked. It needs statusMu and statusLockKey held.
func (s *Store) followStatusEvents(ctx context.Context, tx *sqlx.Conn) error {
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM status_events`).Scan(&last); err != nil {
		return err
	}
	switch {
	case last == s.statusSeen:
		return nil
	case last < s.statusSeen || last-s.statusSeen > int64(s.statuses.len()):
		// The events were cut back, or replaying them would cost more than
		// reading the statuses again: forget what we know.
		s.statuses.clear()
		s.statusSeen = last
		return nil
	}
	rows, err := tx.QueryContext(ctx, `
		SELECT series_id, to_status FROM status_events
		WHERE id > $1 AND id <= $2 ORDER BY id`, s.statusSeen, last)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var to string
		if err := rows.Scan(&id, &to); err != nil {
			return err
		}
		st, err := kpi.ParseStatus(to)
		if err != nil {
			return err
		}
		// Series this process has not looked at yet are read when needed.
		s.statuses.update(id, st)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	s.statusSeen = last
	return nil
}

// loadStatuses reads the stored statuses of the series (ids, ascending)
// that s.statuses does not hold; a series without one is held as
// StatusNone. It needs statusMu and statusLockKey held.
func (s *Store) loadStatuses(ctx context.Context, tx *sqlx.Conn, ids []int64) error {
	var missing []int64
	s.statuses.join(ids, func(i int, _ kpi.Status, ok bool) {
		if !ok {
			missing = append(missing, ids[i])
		}
	})
	if len(missing) == 0 {
		return nil
	}
	found := make(map[int64]kpi.Status)
	rows, err := tx.QueryContext(ctx, `SELECT series_id, status FROM series_status WHERE series_id = ANY($1::bigint[])`, pq.Array(missing))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var status string
		if err := rows.Scan(&id, &status); err != nil {
			return err
		}
		st, err := kpi.ParseStatus(status)
		if err != nil {
			return err
		}
		found[id] = st
	}
	if err := rows.Err(); err != nil {
		return err
	}
	vals := make([]kpi.Status, len(missing))
	for i, id := range missing {
		vals[i] = found[id] // StatusNone if not found
	}
	s.statuses.set(missing, vals)
	return nil
}
