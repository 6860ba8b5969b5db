package store_test

import (
	"context"
	"hash/fnv"
	"testing"
	"time"

	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/store"
)

// declaredOrderID is the series ID of releases that hashed a KPI's labels
// in the order the KPI listed them.
func declaredOrderID(k *kpi.KPI, values []string) int64 {
	h := fnv.New64a()
	h.Write([]byte(k.Name))
	for i, name := range k.Labels {
		h.Write([]byte{0xff})
		h.Write([]byte(name))
		h.Write([]byte{0xfe})
		h.Write([]byte(values[i]))
	}
	return int64(h.Sum64() &^ (1 << 63))
}

// A store written by a release that hashed labels in their declared order
// is migrated once: every series moves to its ID by sorted label names with
// its history, and a KPI whose labels are then listed in either order
// keeps its series.
func TestMigrationMovesSeriesToTheirSortedLabelIDsWithTheirHistory(t *testing.T) {
	s, dsn, _ := newStore(t)
	ctx := context.Background()
	teamFirst := caseload()
	teamFirst.Labels = []string{"team", "service"}
	save(t, s, run("caseload", t0), obs(teamFirst, day(1), kpi.Known(16), "north", "children"))
	save(t, s, run("caseload", t0.Add(time.Hour)), obs(teamFirst, day(1), kpi.Known(23), "north", "children"))
	h := headcount() // one label: its ID is the same either way
	save(t, s, run("headcount", t0), obs(h, day(1), kpi.Known(200), "children"))

	newID := kpi.SeriesID(teamFirst, []string{"north", "children"})
	oldID := declaredOrderID(teamFirst, []string{"north", "children"})
	if newID == oldID {
		t.Fatal("the test needs a KPI whose series ID changed")
	}
	// Put the store back as the earlier release left it.
	for _, q := range []string{
		`UPDATE series SET id = $2 WHERE id = $1`,
		`UPDATE observations SET series_id = $2 WHERE series_id = $1`,
		`UPDATE revisions SET series_id = $2 WHERE series_id = $1`,
		`UPDATE series_status SET series_id = $2 WHERE series_id = $1`,
		`UPDATE status_events SET series_id = $2 WHERE series_id = $1`,
	} {
		if _, err := s.DB().ExecContext(ctx, q, newID, oldID); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := s.DB().ExecContext(ctx, `DELETE FROM schema_migrations WHERE version = 7`); err != nil {
		t.Fatal(err)
	}
	before := map[string]int{}
	for _, table := range []string{"observations", "revisions", "series_status", "status_events"} {
		before[table] = count(t, s, table+" WHERE series_id = $1", oldID)
		if before[table] == 0 {
			t.Fatalf("no %s of the moved series: the test would prove nothing", table)
		}
	}

	// A process of this release migrates the store as it opens it.
	migrated, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer migrated.Close()
	if err := migrated.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	for table, n := range before {
		if got := count(t, migrated, table+" WHERE series_id = $1", newID); got != n {
			t.Errorf("%s: %d rows under the new ID, want the %d under the old one", table, got, n)
		}
		if got := count(t, migrated, table+" WHERE series_id = $1", oldID); got != 0 {
			t.Errorf("%s: %d rows left under the old ID", table, got)
		}
	}
	if n := count(t, migrated, "series WHERE id = $1", kpi.SeriesID(h, []string{"children"})); n != 1 {
		t.Errorf("the one-label series moved: %d series under its ID", n)
	}

	// Listed in either order, the labels find the same series and history.
	serviceFirst := caseload()
	res := save(t, migrated, run("caseload", t0.Add(2*time.Hour)),
		obs(serviceFirst, day(1), kpi.Known(23), "children", "north"),
		obs(h, day(1), kpi.Known(200), "children"),
	)
	if res.Unchanged != 2 || res.Inserted != 0 {
		t.Errorf("saving the stored values again: unchanged %d, inserted %d; want 2, 0", res.Unchanged, res.Inserted)
	}
	if n := count(t, migrated, "series"); n != 2 {
		t.Errorf("%d series, want 2", n)
	}
	states, err := migrated.Latest(ctx, kpi.Catalogue{serviceFirst.Name: serviceFirst})
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || states[0].Value != kpi.Known(23) || states[0].Labels[1] != "north" {
		t.Errorf("latest %+v, want north's 23", states)
	}
}
