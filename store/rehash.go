package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/carewatch/carewatch/kpi"
)

// seriesIDTables are the tables that refer to a series by its ID.
var seriesIDTables = []string{"observations", "revisions", "series_status", "status_events"}

// rehashSeriesIDs moves every series to the ID kpi.SeriesID gives it now
// that the ID no longer depends on the order a KPI lists its labels in: the
// labels are hashed in the order of their names. A series whose KPI listed
// its labels in that order already keeps its ID; the others, and every row
// that refers to them, move once.
func rehashSeriesIDs(ctx context.Context, tx *sqlx.Tx) error {
	type move struct{ from, to int64 }
	var moves []move
	rows, err := tx.QueryContext(ctx, `SELECT id, kpi, labels FROM series`)
	if err != nil {
		return fmt.Errorf("reading series: %w", err)
	}
	for rows.Next() {
		var (
			id   int64
			name string
			doc  []byte
		)
		if err := rows.Scan(&id, &name, &doc); err != nil {
			rows.Close()
			return fmt.Errorf("reading series: %w", err)
		}
		var labels map[string]string
		if err := json.Unmarshal(doc, &labels); err != nil {
			rows.Close()
			return fmt.Errorf("series %d: labels %s: %w", id, doc, err)
		}
		k := &kpi.KPI{Name: name, Labels: slices.Sorted(maps.Keys(labels))}
		values := make([]string, len(k.Labels))
		for i, l := range k.Labels {
			values[i] = labels[l]
		}
		if to := kpi.SeriesID(k, values); to != id {
			moves = append(moves, move{id, to})
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading series: %w", err)
	}
	if len(moves) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE series_moves (from_id bigint PRIMARY KEY, to_id bigint NOT NULL UNIQUE) ON COMMIT DROP`); err != nil {
		return err
	}
	from, to := make([]int64, len(moves)), make([]int64, len(moves))
	for i, m := range moves {
		from[i], to[i] = m.from, m.to
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO series_moves SELECT * FROM unnest($1::bigint[], $2::bigint[])`, pq.Array(from), pq.Array(to)); err != nil {
		return fmt.Errorf("staging series moves: %w", err)
	}
	for _, table := range append([]string{"series"}, seriesIDTables...) {
		col := "series_id"
		if table == "series" {
			col = "id"
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(
			`UPDATE %[1]s t SET %[2]s = m.to_id FROM series_moves m WHERE t.%[2]s = m.from_id`, table, col)); err != nil {
			return fmt.Errorf("moving series IDs in %s: %w", table, err)
		}
	}
	return nil
}
