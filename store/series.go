package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/carewatch/carewatch/kpi"
)

// resolveSeries makes sure every series of the batch is stored. It returns
// the IDs this process had not seen before, for its cache once the
// transaction commits, and, in ascending order, the IDs of the series this
// transaction stored: those have no status and no observations but the
// run's.
func (s *Store) resolveSeries(ctx context.Context, tx *sqlx.Conn, b *batch, now time.Time) (learned, created []int64, err error) {
	var unknown []int64
	s.mu.Lock()
	s.known.join(b.series, func(i int, _ struct{}, ok bool) {
		if !ok {
			unknown = append(unknown, b.series[i])
		}
	})
	s.mu.Unlock()
	if len(unknown) == 0 {
		return nil, nil, nil
	}

	// A first run, into a store that holds none of its series, copies them
	// straight into series: as fast as a plain COPY, where staging them and
	// inserting them checked one by one costs several times that. If any is
	// stored already (by an earlier run this process has not seen, or by
	// another writer meanwhile), the copy fails on the primary key and the
	// series are looked up and merged instead.
	if !s.mergeOnly {
		if ok, err := copySeries(ctx, tx, b, unknown, now); err != nil || ok {
			if ok {
				created = unknown
			}
			return unknown, created, err
		}
	}

	// Most series this process has not seen were stored before it started,
	// or by another replica: look them up by ID first.
	stored := make(map[int64]bool, len(unknown))
	if err := scanIDs(ctx, tx, func(id int64) { stored[id] = true },
		`SELECT id FROM series WHERE id = ANY($1::bigint[])`, pq.Array(unknown)); err != nil {
		return nil, nil, fmt.Errorf("looking up series: %w", err)
	}
	fresh := without(unknown, stored)
	if len(fresh) == 0 {
		return unknown, nil, nil
	}
	if len(fresh) < len(unknown) && !s.mergeOnly {
		// The run meets stored series: copy the new ones alone.
		if ok, err := copySeries(ctx, tx, b, fresh, now); err != nil || ok {
			if ok {
				created = fresh
			}
			return unknown, created, err
		}
	}
	if created, err = mergeSeries(ctx, tx, b, fresh, stored, now); err != nil || s.mergeOnly {
		return unknown, nil, err
	}
	return unknown, created, nil
}

// copySeries copies the series ids (ascending) of the batch straight into
// series, inside a savepoint. It returns false, having rolled back to the
// savepoint, if one of them is stored already.
func copySeries(ctx context.Context, tx *sqlx.Conn, b *batch, ids []int64, now time.Time) (bool, error) {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT copy_series`); err != nil {
		return false, err
	}
	enc := newCopyEncoder()
	first := enc.time(nil, now)
	labels := newLabelsEncoder()
	err := copyIn(ctx, tx, "series", []string{"id", "kpi", "labels", "first_seen"}, len(ids), func(buf []byte, i int) []byte {
		o := b.latestOf(ids[i])
		buf = append(enc.int(buf, ids[i]), '\t')
		buf = append(enc.text(buf, o.KPI.Name), '\t')
		buf = append(labels.append(buf, o.KPI, o.Labels), '\t')
		return append(buf, first...)
	})
	if err == nil {
		if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT copy_series`); err != nil {
			return false, err
		}
		return true, nil
	}
	if pq.As(err, pqerror.UniqueViolation) == nil {
		return false, fmt.Errorf("storing new series: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT copy_series`); err != nil {
		return false, err
	}
	return false, nil
}

// mergeSeries stores the series fresh (ascending), which were not stored
// when looked up, through a staging table, skipping those another writer
// stores meanwhile. It adds the IDs found stored to stored, and returns
// those it stored itself, in ascending order.
func mergeSeries(ctx context.Context, tx *sqlx.Conn, b *batch, fresh []int64, stored map[int64]bool, now time.Time) ([]int64, error) {
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE run_series (id bigint, kpi text, labels jsonb) ON COMMIT DROP`); err != nil {
		return nil, fmt.Errorf("staging new series: %w", err)
	}
	enc := newCopyEncoder()
	labels := newLabelsEncoder()
	err := copyIn(ctx, tx, "run_series", []string{"id", "kpi", "labels"}, len(fresh), func(buf []byte, i int) []byte {
		o := b.latestOf(fresh[i])
		buf = append(enc.int(buf, fresh[i]), '\t')
		buf = append(enc.text(buf, o.KPI.Name), '\t')
		return labels.append(buf, o.KPI, o.Labels)
	})
	if err != nil {
		return nil, fmt.Errorf("staging new series: %w", err)
	}
	// ON CONFLICT skips rows whose ID is stored: a replica may have stored
	// the same series meanwhile. Those it skipped must be the same series
	// under the same ID.
	var created []int64
	if err := scanIDs(ctx, tx, func(id int64) { stored[id] = true; created = append(created, id) }, `
		INSERT INTO series (id, kpi, labels, first_seen)
		SELECT id, kpi, labels, $1 FROM run_series
		ON CONFLICT DO NOTHING
		RETURNING id`, now); err != nil {
		return nil, fmt.Errorf("storing new series: %w", err)
	}
	slices.Sort(created)
	if rest := without(fresh, stored); len(rest) > 0 {
		if err := scanIDs(ctx, tx, func(id int64) { stored[id] = true }, `
			SELECT r.id FROM run_series r
			JOIN series s ON s.id = r.id AND s.kpi = r.kpi AND s.labels = r.labels
			WHERE r.id = ANY($1::bigint[])`, pq.Array(rest)); err != nil {
			return nil, fmt.Errorf("looking up series: %w", err)
		}
		if rest := without(rest, stored); len(rest) > 0 {
			// Two label sets with the same 63-bit hash: vanishingly rare,
			// but never to be merged silently.
			o := b.latestOf(rest[0])
			return nil, fmt.Errorf("series %s%s: its ID %d is taken by another series",
				o.KPI.Name, kpi.LabelString(o.KPI, o.Labels), rest[0])
		}
	}
	return created, nil
}

// labelsEncoder appends series' label sets as JSON objects, names in
// ascending order, in COPY's text format.
type labelsEncoder struct {
	order map[*kpi.KPI][]int
}

func newLabelsEncoder() *labelsEncoder {
	return &labelsEncoder{order: make(map[*kpi.KPI][]int)}
}

func (e *labelsEncoder) append(buf []byte, k *kpi.KPI, values []string) []byte {
	order, ok := e.order[k]
	if !ok {
		order = make([]int, len(k.Labels))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(k.Labels[a], k.Labels[b]) })
		e.order[k] = order
	}
	buf = append(buf, '{')
	for n, j := range order {
		if n > 0 {
			buf = append(buf, ", "...)
		}
		buf = appendJSONString(buf, k.Labels[j])
		buf = append(buf, ": "...)
		buf = appendJSONString(buf, values[j])
	}
	return append(buf, '}')
}

// appendJSONString appends s as a JSON string in COPY's text format. Plain
// printable ASCII, the common case, is copied as it is; anything else is
// encoded by encoding/json, as the label sets always were.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			// A string always encodes: invalid UTF-8 becomes U+FFFD.
			q, _ := json.Marshal(s)
			for _, c := range q {
				if c == '\\' {
					buf = append(buf, '\\')
				}
				buf = append(buf, c)
			}
			return buf
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// without returns the IDs that are not keys of m.
func without(ids []int64, m map[int64]bool) []int64 {
	var rest []int64
	for _, id := range ids {
		if _, ok := m[id]; !ok {
			rest = append(rest, id)
		}
	}
	return rest
}

// scanIDs calls fn with the single bigint column of every row of query.
func scanIDs(ctx context.Context, tx *sqlx.Conn, fn func(int64), query string, args ...any) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		fn(id)
	}
	return rows.Err()
}
