package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/carewatch/carewatch/kpi"
)

// resolveSeries makes sure every series of the batch is stored, and returns
// the IDs this process had not seen before, for its cache once the
// transaction commits.
func (s *Store) resolveSeries(ctx context.Context, tx *sqlx.Conn, b *batch, now time.Time) (learned []int64, err error) {
	var unknown []int64
	s.mu.Lock()
	s.known.join(b.series, func(i int, _ struct{}, ok bool) {
		if !ok {
			unknown = append(unknown, b.series[i])
		}
	})
	s.mu.Unlock()
	if len(unknown) == 0 {
		return nil, nil
	}

	// Most series this process has not seen were stored before it started,
	// or by another replica: look them up by ID first.
	stored := make(map[int64]bool, len(unknown))
	if err := scanIDs(ctx, tx, func(id int64) { stored[id] = true },
		`SELECT id FROM series WHERE id = ANY($1::bigint[])`, pq.Array(unknown)); err != nil {
		return nil, fmt.Errorf("looking up series: %w", err)
	}
	fresh := without(unknown, stored)
	if len(fresh) == 0 {
		return unknown, nil
	}

	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE run_series (id bigint, kpi text, labels jsonb) ON COMMIT DROP`); err != nil {
		return nil, fmt.Errorf("staging new series: %w", err)
	}
	labels := make(map[string]string)
	enc := newCopyEncoder()
	var jsonErr error
	err = copyIn(ctx, tx, "run_series", []string{"id", "kpi", "labels"}, len(fresh), func(buf []byte, i int) []byte {
		o := b.latestOf(fresh[i])
		clear(labels)
		for j, name := range o.KPI.Labels {
			labels[name] = o.Labels[j]
		}
		doc, err := json.Marshal(labels)
		if err != nil && jsonErr == nil {
			jsonErr = err
		}
		buf = append(enc.int(buf, fresh[i]), '\t')
		buf = append(enc.text(buf, o.KPI.Name), '\t')
		return enc.text(buf, string(doc))
	})
	if err == nil {
		err = jsonErr
	}
	if err != nil {
		return nil, fmt.Errorf("staging new series: %w", err)
	}
	// ON CONFLICT without a target skips rows that clash on the ID or on
	// (kpi, labels): a replica may have stored the same series meanwhile.
	// Those it skipped must be the same series under the same ID.
	if err := scanIDs(ctx, tx, func(id int64) { stored[id] = true }, `
		INSERT INTO series (id, kpi, labels, first_seen)
		SELECT id, kpi, labels, $1 FROM run_series
		ON CONFLICT DO NOTHING
		RETURNING id`, now); err != nil {
		return nil, fmt.Errorf("storing new series: %w", err)
	}
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
	return unknown, nil
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
