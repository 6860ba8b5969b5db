package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/carewatch/carewatch/kpi"
)

// Pruning old runs keeps every run something points at, and leaves the
// collectors' health (counts, latest run, latest success) as it was.
func TestPruneRunsKeepsWhatIsReferencedAndTheHealthCounts(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	k := caseload()
	first := save(t, s, run("caseload", t0), obs(k, day(1), kpi.Known(16), "children", "north"))
	var unchanged []int64
	for i := 1; i <= 5; i++ {
		// The same value again: these runs leave no trace in the data.
		res := save(t, s, run("caseload", t0.Add(time.Duration(i)*time.Hour)), obs(k, day(1), kpi.Known(16), "children", "north"))
		unchanged = append(unchanged, res.RunID)
	}
	for i := 6; i <= 8; i++ {
		failed := run("caseload", t0.Add(time.Duration(i)*time.Hour))
		failed.Err = errors.New("source cms: connection refused")
		if _, err := s.SaveRun(ctx, failed, nil); err != nil {
			t.Fatal(err)
		}
	}
	before, err := s.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}

	n, err := s.PruneRuns(ctx, t0.Add(100*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Kept: the first run (its observation), the last success (the latest
	// success) and the last failure (the latest run).
	if n != 4+2 {
		t.Errorf("pruned %d runs, want 6", n)
	}
	if c := count(t, s, "runs WHERE id = $1", first.RunID); c != 1 {
		t.Error("the run that stored the observation was pruned")
	}
	if c := count(t, s, "runs WHERE id = $1", unchanged[len(unchanged)-1]); c != 1 {
		t.Error("the collector's latest success was pruned")
	}
	after, err := s.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 1 || len(before) != 1 || !sameHealth(after[0], before[0]) {
		t.Errorf("health after pruning %+v, want %+v", after, before)
	}
	if after[0].Runs != 9 || after[0].Failures != 3 {
		t.Errorf("runs %d, failures %d; want 9 and 3", after[0].Runs, after[0].Failures)
	}
	if n, err := s.PruneRuns(ctx, t0.Add(100*time.Hour)); err != nil || n != 0 {
		t.Errorf("pruning again: %d, %v", n, err)
	}
}

// A run that finished before the latest one recorded (a replica's, late)
// is counted but does not become the latest.
func TestALateRunDoesNotBecomeTheLatest(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	k := caseload()
	save(t, s, run("caseload", t0.Add(time.Hour)), obs(k, day(1), kpi.Known(16), "children", "north"))
	late := run("caseload", t0)
	late.Err = errors.New("timed out")
	if _, err := s.SaveRun(ctx, late, nil); err != nil {
		t.Fatal(err)
	}
	hs, err := s.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || !hs[0].LastRunOK || hs[0].Runs != 2 || hs[0].Failures != 1 {
		t.Errorf("health %+v, want the later success as the latest run, 2 runs, 1 failure", hs)
	}
}
