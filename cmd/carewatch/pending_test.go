package main

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/store"
)

// Past its limit the queue drops a collector's oldest failed runs and
// counts them; what it kept is recorded in the order the runs ended, and
// one collector's failures never push out another's.
func TestPendingRunsKeepTheLastRunsOfEachCollectorAndRecordThemInOrder(t *testing.T) {
	st, err := store.Open(t.Context(), pgtest.NewDatabase(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	p, err := newPendingRuns(3, 10*time.Second, reg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	failed := func(collector string, i int) kpi.Run {
		at := start.Add(time.Duration(i) * time.Minute)
		return kpi.Run{Collector: collector, StartedAt: at, FinishedAt: at.Add(time.Second), Err: fmt.Errorf("run %d: %w", i, errors.New("store unreachable"))}
	}
	p.add(failed("hr", 0))
	for i := 1; i <= 5; i++ {
		if lost := p.add(failed("caseload", i)); (lost != nil) != (i > 3) {
			t.Errorf("adding caseload's run %d dropped %v", i, lost)
		}
	}
	if got := testutil.ToFloat64(p.dropped.WithLabelValues("caseload")); got != 2 {
		t.Errorf("caseload: %v runs counted as dropped, want 2", got)
	}
	if got := testutil.ToFloat64(p.waiting.WithLabelValues("caseload")); got != 3 {
		t.Errorf("caseload: %v runs waiting, want 3", got)
	}

	n, _, err := p.flush(t.Context(), st)
	if err != nil || n != 4 {
		t.Fatalf("flush recorded %d runs (%v), want 4", n, err)
	}
	if p.len() != 0 || testutil.ToFloat64(p.waiting.WithLabelValues("caseload")) != 0 {
		t.Errorf("%d runs still waiting after the store recorded them", p.len())
	}
	var runs []struct {
		Collector string    `db:"collector"`
		Error     string    `db:"error"`
		StartedAt time.Time `db:"started_at"`
	}
	if err := st.DB().SelectContext(t.Context(), &runs, `SELECT collector, error, started_at FROM runs ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	want := []string{"hr run 0", "caseload run 3", "caseload run 4", "caseload run 5"}
	wantMinute := []int{0, 3, 4, 5}
	if len(runs) != len(want) {
		t.Fatalf("%d runs recorded, want %d: %+v", len(runs), len(want), runs)
	}
	for i, r := range runs {
		if got := r.Collector + " " + r.Error[:len("run 0")]; got != want[i] {
			t.Errorf("run %d recorded: %s, want %s", i, got, want[i])
		}
		if at := start.Add(time.Duration(wantMinute[i]) * time.Minute); !r.StartedAt.Equal(at) {
			t.Errorf("run %d recorded as started %s", i, r.StartedAt)
		}
	}
	health, err := st.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range health {
		if h.LastRunOK {
			t.Errorf("%s: last run recorded as a success", h.Collector)
		}
	}
}
