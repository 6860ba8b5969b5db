package store_test

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/store"
)

// firstRunObservations is a run of new series of every kind SaveRun
// handles: with and without thresholds, with an override, label values
// that COPY and JSON must escape, missing, NaN and infinite values, and
// series with several periods.
func firstRunObservations() []kpi.Observation {
	k, h := caseload(), headcount()
	// A KPI whose labels are not listed in the order of their names.
	wait := &kpi.KPI{
		Name: "adults_assessment_wait_days", Direction: kpi.LowerIsBetter,
		Labels:     []string{"team", "area"},
		Thresholds: kpi.Thresholds{Amber: kpi.At(28), Red: kpi.At(42)},
	}
	var o []kpi.Observation
	teams := []string{"north", "south", "all", `quote " and \ backslash`, "tab\tnew\nline\r", "ünïcödé ✓", "<&>", ""}
	for i, team := range teams {
		o = append(o,
			obs(k, day(1), kpi.Known(float64(10+2*i)), "children", team),
			obs(k, day(2), kpi.Known(float64(11+2*i)), "children", team),
			obs(wait, day(1), kpi.Known(float64(5*i)), team, "east"),
		)
	}
	o = append(o,
		obs(k, day(2), kpi.Missing, "adults", "north"),
		obs(k, day(2), kpi.Known(math.NaN()), "adults", "south"),
		obs(k, day(2), kpi.Known(math.Inf(1)), "adults", "west"),
		obs(h, day(1), kpi.Known(41), "children"),
		obs(h, day(2), kpi.Known(42), "children"),
	)
	return o
}

// dumpTables returns every row SaveRun writes, as text, in a fixed order.
func dumpTables(t *testing.T, s *store.Store) map[string][]string {
	t.Helper()
	queries := map[string]string{
		"series":       `SELECT id, kpi, labels::text, first_seen FROM series ORDER BY id`,
		"observations": `SELECT series_id, period, value, run_id FROM observations ORDER BY series_id, period`,
		"revisions":    `SELECT * FROM revisions ORDER BY series_id, period, new_run_id`,
		"status":       `SELECT * FROM series_status ORDER BY series_id`,
		// Event IDs are compared as a set: the order in which one run's
		// events are numbered is not part of the contract.
		"events":     `SELECT series_id, at, period, from_status, to_status, value, amber, red, run_id, reason FROM status_events ORDER BY series_id, id`,
		"event_ids":  `SELECT id FROM status_events ORDER BY id`,
		"runs":       `SELECT id, collector, observations, inserted, revised, status FROM runs ORDER BY id`,
		"collectors": `SELECT * FROM collector_health ORDER BY collector`,
	}
	out := make(map[string][]string)
	for name, q := range queries {
		rows, err := s.DB().QueryxContext(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for rows.Next() {
			cols, err := rows.SliceScan()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for i, c := range cols {
				if b, ok := c.([]byte); ok {
					cols[i] = string(b)
				}
			}
			out[name] = append(out[name], fmt.Sprint(cols...))
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rows.Close()
	}
	return out
}

// mergedStore opens a store on a new database that stores new series only
// through the staged, merged path.
func mergedStore(t *testing.T, c *clock) *store.Store {
	t.Helper()
	s := openStore(t, pgtest.NewDatabase(t), c)
	store.MergeOnly(s)
	return s
}

func sameTables(t *testing.T, copied, merged *store.Store) {
	t.Helper()
	a, b := dumpTables(t, copied), dumpTables(t, merged)
	for name := range b {
		if !reflect.DeepEqual(a[name], b[name]) {
			t.Errorf("%s: copied path\n%s\nmerged path\n%s", name, strings.Join(a[name], "\n"), strings.Join(b[name], "\n"))
		}
	}
}

func TestFirstRunCopiedStoresWhatTheMergedPathStores(t *testing.T) {
	copied, _, c := newStore(t)
	merged := mergedStore(t, c)
	first := firstRunObservations()
	resCopied := save(t, copied, run("cms", t0), first...)
	resMerged := save(t, merged, run("cms", t0), first...)
	if !reflect.DeepEqual(resCopied, resMerged) {
		t.Errorf("results differ:\ncopied %+v\nmerged %+v", resCopied, resMerged)
	}
	if len(resCopied.StatusChanges) == 0 || resCopied.Inserted != len(first) {
		t.Fatalf("the first run stored %d observations and %d status changes", resCopied.Inserted, len(resCopied.StatusChanges))
	}
	sameTables(t, copied, merged)
	if got := count(t, copied, "series"); got != 20 {
		t.Errorf("%d series, want 20", got)
	}

	// A second run over the same series, one of them changing status,
	// goes on from the statuses the first recorded in both.
	c.Set(t0.Add(24 * time.Hour))
	k := caseload()
	second := []kpi.Observation{
		obs(k, day(3), kpi.Known(30), "children", "north"),
		obs(k, day(3), kpi.Known(12), "children", "south"),
	}
	resCopied = save(t, copied, run("cms", t0.Add(24*time.Hour)), second...)
	resMerged = save(t, merged, run("cms", t0.Add(24*time.Hour)), second...)
	if !reflect.DeepEqual(resCopied, resMerged) || len(resCopied.StatusChanges) != 1 {
		t.Errorf("second run's results:\ncopied %+v\nmerged %+v", resCopied, resMerged)
	}
	sameTables(t, copied, merged)
}

func TestRunMixingNewAndStoredSeries(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	c := &clock{t: t0}
	copied := openStore(t, dsn, c)
	merged := mergedStore(t, c)
	all := firstRunObservations()
	var some []kpi.Observation
	for i, o := range all {
		if i%3 == 0 {
			some = append(some, o)
		}
	}
	save(t, copied, run("cms", t0), some...)
	save(t, merged, run("cms", t0), some...)
	c.Set(t0.Add(time.Hour))

	// The same run from a process that has seen none of the stored series
	// (another replica, or this one restarted) and from the one that
	// stored them.
	for _, s := range []*store.Store{openStore(t, dsn, c), copied} {
		resCopied := save(t, s, run("cms", t0.Add(time.Hour)), all...)
		resMerged := save(t, merged, run("cms", t0.Add(time.Hour)), all...)
		if !reflect.DeepEqual(resCopied, resMerged) {
			t.Errorf("results differ:\ncopied %+v\nmerged %+v", resCopied, resMerged)
		}
		sameTables(t, copied, merged)
	}
}

// TestFirstRunRacingAnotherWriter stores a run while another writer holds,
// uncommitted, one of its new series: the copy waits for it, fails on the
// unique index once it commits, and the run is stored through the merge.
func TestFirstRunRacingAnotherWriter(t *testing.T) {
	ctx := context.Background()
	s, dsn, c := newStore(t)
	other := openStore(t, dsn, c)
	k := caseload()
	run1 := []kpi.Observation{
		obs(k, day(1), kpi.Known(12), "children", "north"),
		obs(k, day(1), kpi.Known(20), "children", "south"),
		obs(k, day(1), kpi.Known(25), "children", "east"),
	}
	conn, err := other.DB().Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO series (id, kpi, labels, first_seen) VALUES ($1, $2, '{"service": "children", "team": "south"}', $3)`,
		kpi.SeriesID(k, []string{"children", "south"}), k.Name, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var res kpi.RunResult
	go func() {
		var err error
		res, err = s.SaveRun(ctx, run("cms", t0), run1)
		done <- err
	}()
	// Commit once the run waits for the other writer's series.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting bool
		if err := other.DB().QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)))`, pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run never waited for the other writer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not finish")
	}
	if res.Inserted != 3 || len(res.StatusChanges) != 3 {
		t.Fatalf("inserted %d, %d status changes; want 3 and 3", res.Inserted, len(res.StatusChanges))
	}
	for _, ch := range res.StatusChanges {
		if ch.From != kpi.StatusNone {
			t.Errorf("%v: from %v, want a first status", ch.Labels, ch.From)
		}
	}
	if got := tableCounts(t, s); got != (counts{series: 3, observations: 3, statuses: 3, events: 3}) {
		t.Errorf("rows: %+v", got)
	}
	// The other writer's series kept its first sighting.
	if n := count(t, s, `series WHERE first_seen = $1`, t0.Add(-time.Hour)); n != 1 {
		t.Errorf("%d series first seen by the other writer, want 1", n)
	}
}
