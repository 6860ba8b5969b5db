package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/kpi/kpitest"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// clock is a settable time source for the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var t0 = time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)

// openStore opens a migrated store on dsn, closed when t ends.
func openStore(t *testing.T, dsn string, c *clock) *store.Store {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, dsn, store.Options{
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// newStore returns a migrated store on a fresh database, its DSN and clock.
func newStore(t *testing.T) (*store.Store, string, *clock) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	c := &clock{t: t0}
	return openStore(t, dsn, c), dsn, c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// caseload is a KPI with thresholds and a per-team override.
func caseload() *kpi.KPI { return kpitest.Caseload() }

// headcount is a KPI without thresholds: it has no RAG status.
func headcount() *kpi.KPI {
	return &kpi.KPI{
		Name:      "children_sw_headcount",
		Help:      "Social workers in post.",
		Unit:      "people",
		Direction: kpi.HigherIsBetter,
		Labels:    []string{"service"},
	}
}

func day(n int) time.Time { return time.Date(2026, 3, n, 0, 0, 0, 0, time.UTC) }

func obs(k *kpi.KPI, period time.Time, v kpi.Value, labels ...string) kpi.Observation {
	return kpi.Observation{KPI: k, Labels: labels, Period: period, Value: v}
}

func run(collector string, at time.Time) kpi.Run {
	return kpi.Run{
		Collector:  collector,
		Source:     "cms",
		Query:      "SELECT team, caseload FROM caseloads",
		StartedAt:  at,
		FinishedAt: at.Add(1500 * time.Millisecond),
	}
}

func save(t *testing.T, s *store.Store, r kpi.Run, o ...kpi.Observation) kpi.RunResult {
	t.Helper()
	res, err := s.SaveRun(context.Background(), r, o)
	if err != nil {
		t.Fatalf("SaveRun: %v", err)
	}
	return res
}

// count returns the number of rows of query.
func count(t *testing.T, s *store.Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(context.Background(), "SELECT count(*) FROM "+query, args...).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", query, err)
	}
	return n
}

// counts is the number of rows of every table SaveRun writes.
type counts struct{ series, observations, revisions, statuses, events int }

func tableCounts(t *testing.T, s *store.Store) counts {
	t.Helper()
	return counts{
		series:       count(t, s, "series"),
		observations: count(t, s, "observations"),
		revisions:    count(t, s, "revisions"),
		statuses:     count(t, s, "series_status"),
		events:       count(t, s, "status_events"),
	}
}

func TestSaveRunTwiceStoresNothingNew(t *testing.T) {
	s, dsn, c := newStore(t)
	k, h := caseload(), headcount()
	batch := []kpi.Observation{
		obs(k, day(1), kpi.Known(16), "children", "north"),
		obs(k, day(1), kpi.Known(19.5), "children", "south"),
		obs(k, day(1), kpi.Missing, "children", "east"),
		obs(k, day(1), kpi.Known(14), "children", "all"),
		obs(h, day(1), kpi.Known(212), "children"),
	}
	first := save(t, s, run("caseload", t0), batch...)
	if first.Inserted != 5 || first.Revised != 0 || first.Unchanged != 0 || first.Observations != 5 {
		t.Errorf("first save: inserted %d, revised %d, unchanged %d of %d; want 5, 0, 0 of 5",
			first.Inserted, first.Revised, first.Unchanged, first.Observations)
	}
	if len(first.StatusChanges) != 4 {
		t.Errorf("first save: %d status changes, want 4 (one per series with thresholds)", len(first.StatusChanges))
	}
	want := tableCounts(t, s)
	if want != (counts{series: 5, observations: 5, statuses: 4, events: 4}) {
		t.Fatalf("after the first save: %+v", want)
	}

	t.Run("a second save changes nothing", func(t *testing.T) {
		c.Set(t0.Add(time.Hour))
		again := save(t, s, run("caseload", t0.Add(time.Hour)), batch...)
		if again.Inserted != 0 || again.Revised != 0 || again.Unchanged != 5 || len(again.StatusChanges) != 0 {
			t.Errorf("second save: inserted %d, revised %d, unchanged %d, %d status changes; want 0, 0, 5, 0",
				again.Inserted, again.Revised, again.Unchanged, len(again.StatusChanges))
		}
		if got := tableCounts(t, s); got != want {
			t.Errorf("row counts %+v, want %+v", got, want)
		}
	})
	t.Run("a restarted process saving again changes nothing", func(t *testing.T) {
		restarted := openStore(t, dsn, c)
		again := save(t, restarted, run("caseload", t0.Add(2*time.Hour)), batch...)
		if again.Inserted != 0 || again.Revised != 0 || again.Unchanged != 5 || len(again.StatusChanges) != 0 {
			t.Errorf("save after restart: inserted %d, revised %d, unchanged %d, %d status changes; want 0, 0, 5, 0",
				again.Inserted, again.Revised, again.Unchanged, len(again.StatusChanges))
		}
		if got := tableCounts(t, s); got != want {
			t.Errorf("row counts %+v, want %+v", got, want)
		}
	})
	t.Run("every run is recorded with its counts", func(t *testing.T) {
		type runRow struct {
			Status       string
			Observations int
			Inserted     int
			Revised      int
		}
		var rows []runRow
		if err := s.DB().SelectContext(context.Background(), &rows,
			`SELECT status, observations, inserted, revised FROM runs ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		want := []runRow{{"success", 5, 5, 0}, {"success", 5, 0, 0}, {"success", 5, 0, 0}}
		if len(rows) != len(want) {
			t.Fatalf("runs %+v, want %+v", rows, want)
		}
		for i := range want {
			if rows[i] != want[i] {
				t.Errorf("run %d: %+v, want %+v", i, rows[i], want[i])
			}
		}
	})
}

func TestSaveRunKeepsRevisions(t *testing.T) {
	s, _, c := newStore(t)
	k := caseload()
	r1 := save(t, s, run("caseload", t0), obs(k, day(1), kpi.Known(10), "children", "north"))
	c.Set(t0.Add(24 * time.Hour))
	r2 := save(t, s, run("caseload", t0.Add(24*time.Hour)),
		obs(k, day(1), kpi.Known(12.25), "children", "north"),
		obs(k, day(2), kpi.Known(13), "children", "north"),
	)
	if r2.Inserted != 1 || r2.Revised != 1 || r2.Unchanged != 0 {
		t.Errorf("inserted %d, revised %d, unchanged %d; want 1, 1, 0", r2.Inserted, r2.Revised, r2.Unchanged)
	}

	var rev struct {
		Old, New       float64
		OldRun, NewRun int64
		At             time.Time
	}
	if err := s.DB().QueryRowContext(context.Background(), `
		SELECT old_value, new_value, old_run_id, new_run_id, revised_at FROM revisions
		WHERE series_id = $1 AND period = $2`, kpi.SeriesID(k, []string{"children", "north"}), day(1),
	).Scan(&rev.Old, &rev.New, &rev.OldRun, &rev.NewRun, &rev.At); err != nil {
		t.Fatalf("the revision: %v", err)
	}
	if rev.Old != 10 || rev.New != 12.25 || rev.OldRun != r1.RunID || rev.NewRun != r2.RunID || !rev.At.Equal(t0.Add(24*time.Hour)) {
		t.Errorf("revision %+v, want 10 -> 12.25 by runs %d -> %d at %v", rev, r1.RunID, r2.RunID, t0.Add(24*time.Hour))
	}
	var v float64
	var runID int64
	if err := s.DB().QueryRowContext(context.Background(),
		`SELECT value, run_id FROM observations WHERE period = $1`, day(1)).Scan(&v, &runID); err != nil {
		t.Fatal(err)
	}
	if v != 12.25 || runID != r2.RunID {
		t.Errorf("stored value %g by run %d, want 12.25 by run %d", v, runID, r2.RunID)
	}
	if n := count(t, s, "observations"); n != 2 {
		t.Errorf("%d observations, want 2", n)
	}
}

func TestMissingValues(t *testing.T) {
	s, _, c := newStore(t)
	k := caseload()
	north := []string{"children", "north"}
	id := kpi.SeriesID(k, north)
	storedValue := func(t *testing.T, period time.Time) *float64 {
		t.Helper()
		var v *float64
		if err := s.DB().QueryRowContext(context.Background(),
			`SELECT value FROM observations WHERE series_id = $1 AND period = $2`, id, period).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	res := save(t, s, run("caseload", t0),
		obs(k, day(1), kpi.Missing, north...),
		obs(k, day(2), kpi.Known(math.NaN()), "children", "south"),
		obs(k, day(2), kpi.Known(0), "children", "east"),
	)
	t.Run("missing is stored as NULL", func(t *testing.T) {
		if v := storedValue(t, day(1)); v != nil {
			t.Errorf("stored %g, want NULL", *v)
		}
	})
	t.Run("NaN is stored as NULL and zero as zero", func(t *testing.T) {
		var nulls, zeros int
		if err := s.DB().QueryRowContext(context.Background(), `
			SELECT count(*) FILTER (WHERE value IS NULL), count(*) FILTER (WHERE value = 0)
			FROM observations WHERE period = $1`, day(2)).Scan(&nulls, &zeros); err != nil {
			t.Fatal(err)
		}
		if nulls != 1 || zeros != 1 {
			t.Errorf("%d NULLs and %d zeros, want 1 and 1", nulls, zeros)
		}
	})
	t.Run("missing has status unknown", func(t *testing.T) {
		var unknown []kpi.StatusChange
		for _, sc := range res.StatusChanges {
			if sc.To == kpi.StatusUnknown {
				unknown = append(unknown, sc)
			}
		}
		if len(unknown) != 2 {
			t.Errorf("%d series went to unknown, want 2 (north and south): %+v", len(unknown), res.StatusChanges)
		}
		var st string
		if err := s.DB().QueryRowContext(context.Background(),
			`SELECT status FROM series_status WHERE series_id = $1`, id).Scan(&st); err != nil {
			t.Fatal(err)
		}
		if st != "unknown" {
			t.Errorf("stored status %q, want unknown", st)
		}
	})
	t.Run("saving missing again is not a revision", func(t *testing.T) {
		again := save(t, s, run("caseload", t0.Add(time.Hour)), obs(k, day(1), kpi.Missing, north...))
		if again.Revised != 0 || again.Unchanged != 1 {
			t.Errorf("revised %d, unchanged %d; want 0, 1", again.Revised, again.Unchanged)
		}
		if n := count(t, s, "revisions"); n != 0 {
			t.Errorf("%d revisions, want 0", n)
		}
	})
	t.Run("a value replacing missing is a revision from NULL", func(t *testing.T) {
		c.Set(t0.Add(2 * time.Hour))
		again := save(t, s, run("caseload", t0.Add(2*time.Hour)), obs(k, day(1), kpi.Known(17), north...))
		if again.Revised != 1 {
			t.Errorf("revised %d, want 1", again.Revised)
		}
		var old, nw *float64
		if err := s.DB().QueryRowContext(context.Background(),
			`SELECT old_value, new_value FROM revisions WHERE series_id = $1 AND period = $2`, id, day(1)).Scan(&old, &nw); err != nil {
			t.Fatal(err)
		}
		if old != nil || nw == nil || *nw != 17 {
			t.Errorf("revision %v -> %v, want NULL -> 17", old, nw)
		}
	})
	t.Run("missing replacing a value is a revision to NULL", func(t *testing.T) {
		again := save(t, s, run("caseload", t0.Add(3*time.Hour)), obs(k, day(1), kpi.Missing, north...))
		if again.Revised != 1 {
			t.Errorf("revised %d, want 1", again.Revised)
		}
		if v := storedValue(t, day(1)); v != nil {
			t.Errorf("stored %g, want NULL", *v)
		}
		if n := count(t, s, "revisions WHERE new_value IS NULL"); n != 1 {
			t.Errorf("%d revisions to NULL, want 1", n)
		}
	})
}

func TestStatusEvents(t *testing.T) {
	s, _, c := newStore(t)
	k := caseload()
	north := []string{"children", "north"}
	th := kpi.Thresholds{Amber: kpi.At(18), Red: kpi.At(22)}
	steps := []struct {
		name  string
		day   int
		value float64
		from  kpi.Status
		to    kpi.Status
	}{
		{"a first amber value is a change from no status", 1, 19, kpi.StatusNone, kpi.StatusAmber},
		{"amber to red", 2, 23, kpi.StatusAmber, kpi.StatusRed},
		{"red to green", 3, 10, kpi.StatusRed, kpi.StatusGreen},
	}
	for i, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			at := t0.Add(time.Duration(i) * 24 * time.Hour)
			c.Set(at)
			res := save(t, s, run("caseload", at), obs(k, day(step.day), kpi.Known(step.value), north...))
			if len(res.StatusChanges) != 1 {
				t.Fatalf("status changes %+v, want one", res.StatusChanges)
			}
			got := res.StatusChanges[0]
			if got.From != step.from || got.To != step.to || got.Value != kpi.Known(step.value) ||
				got.Thresholds != th || !got.Period.Equal(day(step.day)) || !got.At.Equal(at) ||
				got.KPI != k || len(got.Labels) != 2 || got.Labels[1] != "north" {
				t.Errorf("status change %+v, want %v -> %v at %g, thresholds %+v", got, step.from, step.to, step.value, th)
			}
		})
	}

	t.Run("the events hold statuses, values and thresholds", func(t *testing.T) {
		type event struct {
			From  *string `db:"from_status"`
			To    string  `db:"to_status"`
			Value float64 `db:"value"`
			Amber float64 `db:"amber"`
			Red   float64 `db:"red"`
		}
		var events []event
		if err := s.DB().SelectContext(context.Background(), &events,
			`SELECT from_status, to_status, value, amber, red FROM status_events ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		if len(events) != 3 {
			t.Fatalf("%d events, want 3", len(events))
		}
		if events[0].From != nil {
			t.Errorf("the first event comes from %q, want NULL", *events[0].From)
		}
		wantFrom := []string{"", "amber", "red"}
		wantTo := []string{"amber", "red", "green"}
		for i, e := range events {
			if i > 0 && (e.From == nil || *e.From != wantFrom[i]) {
				t.Errorf("event %d comes from %v, want %s", i, e.From, wantFrom[i])
			}
			if e.To != wantTo[i] || e.Value != steps[i].value || e.Amber != 18 || e.Red != 22 {
				t.Errorf("event %d: %+v, want to %s at %g with 18/22", i, e, wantTo[i], steps[i].value)
			}
		}
	})
	t.Run("the current status is the last one", func(t *testing.T) {
		var st string
		var period time.Time
		if err := s.DB().QueryRowContext(context.Background(),
			`SELECT status, period FROM series_status WHERE series_id = $1`, kpi.SeriesID(k, north)).Scan(&st, &period); err != nil {
			t.Fatal(err)
		}
		if st != "green" || !period.Equal(day(3)) {
			t.Errorf("current status %s of %v, want green of %v", st, period, day(3))
		}
	})
	t.Run("saving the same runs again records no event", func(t *testing.T) {
		for i, step := range steps {
			res := save(t, s, run("caseload", t0.Add(time.Duration(10+i)*time.Hour)),
				obs(k, day(step.day), kpi.Known(step.value), north...))
			if len(res.StatusChanges) != 0 {
				t.Errorf("re-saving day %d: status changes %+v, want none", step.day, res.StatusChanges)
			}
		}
		if n := count(t, s, "status_events"); n != 3 {
			t.Errorf("%d events, want 3", n)
		}
	})
	t.Run("a revised older period does not change the status", func(t *testing.T) {
		res := save(t, s, run("caseload", t0.Add(20*time.Hour)), obs(k, day(2), kpi.Known(30), north...))
		if res.Revised != 1 || len(res.StatusChanges) != 0 {
			t.Errorf("revised %d with status changes %+v; want 1 and none", res.Revised, res.StatusChanges)
		}
	})
	t.Run("the override's thresholds apply to its series", func(t *testing.T) {
		res := save(t, s, run("caseload", t0.Add(21*time.Hour)), obs(k, day(3), kpi.Known(16), "children", "all"))
		want := kpi.Thresholds{Amber: kpi.At(15), Red: kpi.At(18)}
		if len(res.StatusChanges) != 1 || res.StatusChanges[0].To != kpi.StatusAmber || res.StatusChanges[0].Thresholds != want {
			t.Errorf("status changes %+v, want one to amber against %+v", res.StatusChanges, want)
		}
	})
	t.Run("a KPI without thresholds has no status", func(t *testing.T) {
		before := count(t, s, "series_status")
		res := save(t, s, run("headcount", t0.Add(22*time.Hour)), obs(headcount(), day(3), kpi.Known(200), "children"))
		if len(res.StatusChanges) != 0 {
			t.Errorf("status changes %+v, want none", res.StatusChanges)
		}
		if n := count(t, s, "series_status"); n != before {
			t.Errorf("%d statuses, want %d", n, before)
		}
	})
}

func TestStatusChangesAcrossReplicas(t *testing.T) {
	a, dsn, c := newStore(t)
	b := openStore(t, dsn, c)
	k := caseload()
	north := []string{"children", "north"}
	steps := []struct {
		name     string
		replica  *store.Store
		day      int
		value    float64
		from, to kpi.Status
		changed  bool
	}{
		{"the first replica records the first status", a, 1, 19, kpi.StatusNone, kpi.StatusAmber, true},
		{"the second replica sees it and records a change to red", b, 2, 23, kpi.StatusAmber, kpi.StatusRed, true},
		{"the first replica sees the red and records a change back to amber", a, 3, 19, kpi.StatusRed, kpi.StatusAmber, true},
		{"the second replica sees the amber and records nothing for the same value", b, 3, 19, 0, 0, false},
		{"the second replica records amber to red", b, 4, 23, kpi.StatusAmber, kpi.StatusRed, true},
		{"the first replica sees the red and records nothing for the same value", a, 4, 23, 0, 0, false},
	}
	for i, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			res := save(t, step.replica, run("caseload", t0.Add(time.Duration(i)*time.Hour)),
				obs(k, day(step.day), kpi.Known(step.value), north...))
			switch {
			case !step.changed && len(res.StatusChanges) != 0:
				t.Errorf("status changes %+v, want none", res.StatusChanges)
			case step.changed && (len(res.StatusChanges) != 1 || res.StatusChanges[0].From != step.from || res.StatusChanges[0].To != step.to):
				t.Errorf("status changes %+v, want %v -> %v", res.StatusChanges, step.from, step.to)
			}
		})
	}
	if n := count(t, a, "status_events"); n != 4 {
		t.Errorf("%d status events, want 4", n)
	}
}

func TestFailedRun(t *testing.T) {
	s, _, c := newStore(t)
	k := caseload()
	good := save(t, s, run("caseload", t0), obs(k, day(1), kpi.Known(16), "children", "north"),
		obs(k, day(1), kpi.Known(17), "children", "south"))
	before := tableCounts(t, s)

	c.Set(t0.Add(time.Hour))
	failed := run("caseload", t0.Add(time.Hour))
	failed.FinishedAt = failed.StartedAt.Add(3 * time.Second)
	failed.Err = errors.New("source cms: connection refused")
	res, err := s.SaveRun(context.Background(), failed, []kpi.Observation{
		obs(k, day(1), kpi.Known(99), "children", "north"),
		obs(k, day(2), kpi.Known(99), "children", "north"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.RunID == 0 || res.RunID == good.RunID || res.Inserted != 0 || len(res.StatusChanges) != 0 {
		t.Errorf("result %+v, want a new run ID and nothing else", res)
	}
	t.Run("stored data is untouched", func(t *testing.T) {
		if got := tableCounts(t, s); got != before {
			t.Errorf("row counts %+v, want %+v", got, before)
		}
		if n := count(t, s, "observations WHERE value = 99"); n != 0 {
			t.Errorf("%d observations hold the failed run's value", n)
		}
	})
	t.Run("the run is recorded as failed with its error", func(t *testing.T) {
		var status, msg string
		if err := s.DB().QueryRowContext(context.Background(),
			`SELECT status, error FROM runs WHERE id = $1`, res.RunID).Scan(&status, &msg); err != nil {
			t.Fatal(err)
		}
		if status != "failed" || msg != failed.Err.Error() {
			t.Errorf("run %s with error %q, want failed with %q", status, msg, failed.Err)
		}
	})
	t.Run("health counts the failure", func(t *testing.T) {
		save(t, s, run("vacancies", t0), obs(headcount(), day(1), kpi.Known(5), "adults"))
		hs, err := s.Health(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) != 2 || hs[0].Collector != "caseload" || hs[1].Collector != "vacancies" {
			t.Fatalf("health %+v, want caseload and vacancies", hs)
		}
		want := kpi.CollectorHealth{
			Collector:        "caseload",
			Runs:             2,
			Failures:         1,
			LastRunOK:        false,
			LastRunAt:        failed.FinishedAt,
			LastRunDuration:  3 * time.Second,
			LastSuccessAt:    t0.Add(1500 * time.Millisecond),
			LastObservations: 2,
			LastError:        failed.Err.Error(),
		}
		if !sameHealth(hs[0], want) {
			t.Errorf("health %+v, want %+v", hs[0], want)
		}
		want = kpi.CollectorHealth{
			Collector:        "vacancies",
			Runs:             1,
			LastRunOK:        true,
			LastRunAt:        t0.Add(1500 * time.Millisecond),
			LastRunDuration:  1500 * time.Millisecond,
			LastSuccessAt:    t0.Add(1500 * time.Millisecond),
			LastObservations: 1,
		}
		if !sameHealth(hs[1], want) {
			t.Errorf("health %+v, want %+v", hs[1], want)
		}
	})
}

func sameHealth(a, b kpi.CollectorHealth) bool {
	return a.Collector == b.Collector && a.Runs == b.Runs && a.Failures == b.Failures &&
		a.LastRunOK == b.LastRunOK && a.LastRunAt.Equal(b.LastRunAt) &&
		a.LastRunDuration == b.LastRunDuration && a.LastSuccessAt.Equal(b.LastSuccessAt) &&
		a.LastObservations == b.LastObservations && a.LastError == b.LastError
}

func TestSaveRunRejectsBadInput(t *testing.T) {
	s, _, _ := newStore(t)
	k := caseload()
	for _, tc := range []struct {
		name string
		run  kpi.Run
		obs  []kpi.Observation
	}{
		{"a run without a collector is rejected", kpi.Run{}, nil},
		{"an observation without a KPI is rejected", run("caseload", t0),
			[]kpi.Observation{{Labels: []string{"x"}, Period: day(1), Value: kpi.Known(1)}}},
		{"an observation with too few label values is rejected", run("caseload", t0),
			[]kpi.Observation{obs(k, day(1), kpi.Known(1), "children")}},
		{"an observation without a period is rejected", run("caseload", t0),
			[]kpi.Observation{obs(k, time.Time{}, kpi.Known(1), "children", "north")}},
		{"a label value that is not UTF-8 is rejected", run("caseload", t0),
			[]kpi.Observation{obs(k, day(1), kpi.Known(1), "children", "north \xff")}},
		{"two values for one series and period are rejected", run("caseload", t0),
			[]kpi.Observation{
				obs(k, day(1), kpi.Known(1), "children", "north"),
				obs(k, day(1), kpi.Known(2), "children", "north"),
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.SaveRun(context.Background(), tc.run, tc.obs); err == nil {
				t.Error("SaveRun succeeded")
			} else {
				t.Log(err)
			}
			if got := tableCounts(t, s); got != (counts{}) {
				t.Errorf("row counts %+v after a rejected run, want none", got)
			}
			if n := count(t, s, "runs"); n != 0 {
				t.Errorf("%d runs recorded, want 0", n)
			}
		})
	}
}

func TestValuesAndLabelsRoundTrip(t *testing.T) {
	s, _, _ := newStore(t)
	k := caseload()
	labels := [][]string{
		{"children", `back\slash`},
		{"children", "tab\there"},
		{"children", "new\nline\r\n"},
		{"children", `"quoted" 'single' {braces} [x]`},
		{"children", "Żółć – Ynys Môn"},
		{"", "empty service"},
		{`\N`, "null marker"},
	}
	values := []float64{0.1, 0, 1e300, -1e-300, 123456789.123456789, 18, math.MaxFloat64, 2.5e-8}
	var batch []kpi.Observation
	for i, l := range labels {
		for j, v := range values {
			batch = append(batch, obs(k, day(1+j), kpi.Known(v+float64(i)), l...))
		}
	}
	res := save(t, s, run("caseload", t0), batch...)
	if res.Inserted != len(batch) {
		t.Fatalf("inserted %d of %d", res.Inserted, len(batch))
	}
	t.Run("saving again finds every value unchanged", func(t *testing.T) {
		again := save(t, s, run("caseload", t0.Add(time.Hour)), batch...)
		if again.Unchanged != len(batch) {
			t.Errorf("unchanged %d of %d: inserted %d, revised %d", again.Unchanged, len(batch), again.Inserted, again.Revised)
		}
	})
	t.Run("values are stored exactly", func(t *testing.T) {
		for _, o := range batch {
			var got float64
			if err := s.DB().QueryRowContext(context.Background(),
				`SELECT value FROM observations WHERE series_id = $1 AND period = $2`,
				kpi.SeriesID(k, o.Labels), o.Period).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != o.Value.V {
				t.Errorf("%v at %v: stored %v, want %v", o.Labels, o.Period, got, o.Value.V)
			}
		}
	})
	t.Run("labels come back exactly", func(t *testing.T) {
		states, err := s.Latest(context.Background(), kpi.Catalogue{k.Name: k})
		if err != nil {
			t.Fatal(err)
		}
		got := make(map[string]bool)
		for _, st := range states {
			got[st.Labels[0]+"|"+st.Labels[1]] = true
		}
		for _, l := range labels {
			if !got[l[0]+"|"+l[1]] {
				t.Errorf("labels %q not returned; got %v", l, got)
			}
		}
		if len(states) != len(labels) {
			t.Errorf("%d series, want %d", len(states), len(labels))
		}
	})
}

func TestSeriesSurvivesLabelReorder(t *testing.T) {
	s, _, _ := newStore(t)
	k := caseload()
	save(t, s, run("caseload", t0), obs(k, day(1), kpi.Known(16), "children", "north"))

	reordered := caseload()
	reordered.Labels = []string{"team", "service"}
	res := save(t, s, run("caseload", t0.Add(time.Hour)),
		obs(reordered, day(1), kpi.Known(16), "north", "children"),
		obs(reordered, day(2), kpi.Known(17), "north", "children"),
	)
	if res.Inserted != 1 || res.Unchanged != 1 {
		t.Errorf("inserted %d, unchanged %d; want 1, 1", res.Inserted, res.Unchanged)
	}
	if n := count(t, s, "series"); n != 1 {
		t.Errorf("%d series, want 1", n)
	}
	states, err := s.Latest(context.Background(), kpi.Catalogue{reordered.Name: reordered})
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || states[0].Value != kpi.Known(17) || states[0].Labels[0] != "north" {
		t.Errorf("latest %+v, want north's 17", states)
	}

	t.Run("both orders in one run are one series", func(t *testing.T) {
		res := save(t, s, run("caseload", t0.Add(2*time.Hour)),
			obs(k, day(3), kpi.Known(23), "children", "north"),
			obs(reordered, day(4), kpi.Known(19), "north", "children"),
		)
		if res.Inserted != 2 || len(res.StatusChanges) != 1 || res.StatusChanges[0].To != kpi.StatusAmber {
			t.Errorf("inserted %d with status changes %+v; want 2 and one to amber (day 4)", res.Inserted, res.StatusChanges)
		}
		if n := count(t, s, "series"); n != 1 {
			t.Errorf("%d series, want 1", n)
		}
	})
	t.Run("both orders for one period in one run are rejected", func(t *testing.T) {
		_, err := s.SaveRun(context.Background(), run("caseload", t0.Add(3*time.Hour)), []kpi.Observation{
			obs(k, day(5), kpi.Known(1), "children", "north"),
			obs(reordered, day(5), kpi.Known(2), "north", "children"),
		})
		if err == nil {
			t.Error("SaveRun accepted two values for one period")
		}
	})
}

func TestLatest(t *testing.T) {
	s, _, _ := newStore(t)
	k, h := caseload(), headcount()
	r1 := save(t, s, run("caseload", t0),
		obs(k, day(1), kpi.Known(19), "children", "north"),
		obs(k, day(1), kpi.Known(12), "children", "south"),
		obs(h, day(1), kpi.Known(200), "children"),
	)
	r2 := save(t, s, run("caseload", t0.Add(24*time.Hour)),
		obs(k, day(2), kpi.Known(21), "children", "north"),
		obs(k, day(2), kpi.Missing, "children", "south"),
	)
	ctx := context.Background()

	t.Run("each series' latest period is returned with its status", func(t *testing.T) {
		states, err := s.Latest(ctx, kpi.Catalogue{k.Name: k, h.Name: h})
		if err != nil {
			t.Fatal(err)
		}
		sortStates(states)
		if len(states) != 3 {
			t.Fatalf("%d states, want 3: %+v", len(states), states)
		}
		th := kpi.Thresholds{Amber: kpi.At(18), Red: kpi.At(22)}
		want := []kpi.SeriesState{
			{KPI: k, Labels: []string{"children", "north"}, Period: day(2), Value: kpi.Known(21),
				Status: kpi.StatusAmber, Thresholds: th, RunID: r2.RunID, CollectedAt: t0.Add(24*time.Hour + 1500*time.Millisecond)},
			{KPI: k, Labels: []string{"children", "south"}, Period: day(2), Value: kpi.Missing,
				Status: kpi.StatusUnknown, Thresholds: th, RunID: r2.RunID, CollectedAt: t0.Add(24*time.Hour + 1500*time.Millisecond)},
			{KPI: h, Labels: []string{"children"}, Period: day(1), Value: kpi.Known(200),
				Status: kpi.StatusNone, RunID: r1.RunID, CollectedAt: t0.Add(1500 * time.Millisecond)},
		}
		for i := range want {
			if !sameState(states[i], want[i]) {
				t.Errorf("state %d: %+v, want %+v", i, states[i], want[i])
			}
		}
	})
	t.Run("changed thresholds are applied", func(t *testing.T) {
		stricter := caseload()
		stricter.Thresholds = kpi.Thresholds{Amber: kpi.At(15), Red: kpi.At(20)}
		states, err := s.Latest(ctx, kpi.Catalogue{stricter.Name: stricter})
		if err != nil {
			t.Fatal(err)
		}
		sortStates(states)
		if len(states) != 2 || states[0].Status != kpi.StatusRed || states[0].Thresholds != stricter.Thresholds {
			t.Errorf("states %+v, want north red against %+v", states, stricter.Thresholds)
		}
	})
	t.Run("series of KPIs not in the catalogue are left out", func(t *testing.T) {
		states, err := s.Latest(ctx, kpi.Catalogue{h.Name: h})
		if err != nil {
			t.Fatal(err)
		}
		if len(states) != 1 || states[0].KPI != h {
			t.Errorf("states %+v, want only the headcount", states)
		}
	})
	t.Run("series whose labels are no longer the KPI's are left out", func(t *testing.T) {
		relabelled := caseload()
		relabelled.Labels = []string{"service", "team", "age_band"}
		states, err := s.Latest(ctx, kpi.Catalogue{relabelled.Name: relabelled, h.Name: h})
		if err != nil {
			t.Fatal(err)
		}
		if len(states) != 1 || states[0].KPI != h {
			t.Errorf("states %+v, want only the headcount", states)
		}
	})
	t.Run("an empty catalogue has no series", func(t *testing.T) {
		states, err := s.Latest(ctx, kpi.Catalogue{})
		if err != nil || len(states) != 0 {
			t.Errorf("states %+v, err %v; want none", states, err)
		}
	})
}

func TestRunLatestReadsTheSeriesTheRunWrote(t *testing.T) {
	s, _, _ := newStore(t)
	k, h := caseload(), headcount()
	cat := kpi.Catalogue{k.Name: k, h.Name: h}
	ctx := context.Background()
	save(t, s, run("caseload", t0),
		obs(k, day(2), kpi.Known(19), "children", "north"),
		obs(k, day(2), kpi.Known(12), "children", "south"),
		obs(h, day(2), kpi.Known(200), "children"),
	)
	// north unchanged, south revised, east new, an earlier period of the
	// headcount backfilled.
	r2 := save(t, s, run("caseload", t0.Add(time.Hour)),
		obs(k, day(2), kpi.Known(19), "children", "north"),
		obs(k, day(2), kpi.Known(23), "children", "south"),
		obs(k, day(2), kpi.Known(5), "children", "east"),
		obs(h, day(1), kpi.Known(150), "children"),
	)
	got, err := s.RunLatest(ctx, cat, r2.RunID)
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.Latest(ctx, cat)
	if err != nil {
		t.Fatal(err)
	}
	sortStates(got)
	sortStates(all)
	var want []kpi.SeriesState
	for _, st := range all {
		if !(st.KPI == k && st.Labels[1] == "north") {
			want = append(want, st)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("RunLatest = %+v, want %+v", got, want)
	}
	for i := range want {
		if !sameState(got[i], want[i]) {
			t.Errorf("state %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if got[len(got)-1].Value != kpi.Known(200) {
		t.Errorf("the backfilled series' latest value is %v, want the later period's 200", got[len(got)-1].Value)
	}

	unchanged := save(t, s, run("caseload", t0.Add(2*time.Hour)), obs(k, day(2), kpi.Known(19), "children", "north"))
	if got, err := s.RunLatest(ctx, cat, unchanged.RunID); err != nil || len(got) != 0 {
		t.Errorf("a run that changed nothing: RunLatest = %+v, %v; want none", got, err)
	}
}

// sortStates orders states by KPI name, then label values.
func sortStates(states []kpi.SeriesState) {
	slices.SortFunc(states, func(a, b kpi.SeriesState) int {
		if c := strings.Compare(a.KPI.Name, b.KPI.Name); c != 0 {
			return c
		}
		return slices.Compare(a.Labels, b.Labels)
	})
}

func sameState(a, b kpi.SeriesState) bool {
	if a.KPI != b.KPI || !a.Period.Equal(b.Period) || a.Value != b.Value || a.Status != b.Status ||
		a.Thresholds != b.Thresholds || !a.CollectedAt.Equal(b.CollectedAt) || a.RunID != b.RunID ||
		len(a.Labels) != len(b.Labels) {
		return false
	}
	for i := range a.Labels {
		if a.Labels[i] != b.Labels[i] {
			return false
		}
	}
	return true
}

func TestSyncCatalogue(t *testing.T) {
	s, _, c := newStore(t)
	ctx := context.Background()
	k, h := caseload(), headcount()
	if err := s.SyncCatalogue(ctx, kpi.Catalogue{k.Name: k, h.Name: h}); err != nil {
		t.Fatal(err)
	}
	type row struct {
		Name      string     `db:"name"`
		Metric    string     `db:"metric"`
		Direction string     `db:"direction"`
		Labels    string     `db:"labels"`
		Amber     *float64   `db:"amber"`
		Red       *float64   `db:"red"`
		Overrides string     `db:"overrides"`
		MaxAge    *float64   `db:"max_age"`
		UpdatedAt time.Time  `db:"updated_at"`
		RetiredAt *time.Time `db:"retired_at"`
	}
	rows := func(t *testing.T) map[string]row {
		t.Helper()
		var rs []row
		if err := s.DB().SelectContext(ctx, &rs, `
			SELECT name, metric, direction, labels::text AS labels, amber, red, overrides::text AS overrides,
			       extract(epoch FROM max_age)::float8 AS max_age, updated_at, retired_at
			FROM kpis`); err != nil {
			t.Fatal(err)
		}
		m := make(map[string]row)
		for _, r := range rs {
			m[r.Name] = r
		}
		return m
	}

	t.Run("definitions are stored", func(t *testing.T) {
		got := rows(t)[k.Name]
		if got.Metric != "carewatch_children_sw_caseload_average" || got.Direction != "lower_is_better" ||
			got.Labels != "{service,team}" || got.Amber == nil || *got.Amber != 18 || got.Red == nil || *got.Red != 22 ||
			got.Overrides != `[{"red": 18, "amber": 15, "match": {"team": "all"}}]` ||
			got.MaxAge == nil || *got.MaxAge != 36*3600 || !got.UpdatedAt.Equal(t0) || got.RetiredAt != nil {
			t.Errorf("stored %+v", got)
		}
		if hc := rows(t)[h.Name]; hc.Amber != nil || hc.Red != nil || hc.MaxAge != nil || hc.Overrides != "[]" {
			t.Errorf("stored %+v, want no thresholds, no overrides and no max age", hc)
		}
	})
	t.Run("an unchanged definition keeps its updated_at", func(t *testing.T) {
		c.Set(t0.Add(time.Hour))
		if err := s.SyncCatalogue(ctx, kpi.Catalogue{k.Name: caseload(), h.Name: headcount()}); err != nil {
			t.Fatal(err)
		}
		if got := rows(t)[k.Name]; !got.UpdatedAt.Equal(t0) {
			t.Errorf("updated_at %v, want %v", got.UpdatedAt, t0)
		}
	})
	t.Run("a changed definition is updated and a dropped KPI retired", func(t *testing.T) {
		c.Set(t0.Add(2 * time.Hour))
		changed := caseload()
		changed.Thresholds.Red = kpi.At(25)
		if err := s.SyncCatalogue(ctx, kpi.Catalogue{changed.Name: changed}); err != nil {
			t.Fatal(err)
		}
		got := rows(t)
		if r := got[k.Name]; *r.Red != 25 || !r.UpdatedAt.Equal(t0.Add(2*time.Hour)) || r.RetiredAt != nil {
			t.Errorf("stored %+v, want red 25 updated at %v", r, t0.Add(2*time.Hour))
		}
		if r := got[h.Name]; r.RetiredAt == nil || !r.RetiredAt.Equal(t0.Add(2*time.Hour)) {
			t.Errorf("stored %+v, want retired at %v", r, t0.Add(2*time.Hour))
		}
	})
	t.Run("a KPI back in the catalogue is no longer retired", func(t *testing.T) {
		if err := s.SyncCatalogue(ctx, kpi.Catalogue{h.Name: h}); err != nil {
			t.Fatal(err)
		}
		if r := rows(t)[h.Name]; r.RetiredAt != nil {
			t.Errorf("stored %+v, want not retired", r)
		}
	})
}

func TestRunLockExcludesASecondHolder(t *testing.T) {
	a, dsn, c := newStore(t)
	b := openStore(t, dsn, c)
	ctx := context.Background()

	release, ok, err := a.TryRunLock(ctx, "caseload")
	if err != nil || !ok {
		t.Fatalf("first lock: ok %v, err %v", ok, err)
	}
	t.Run("another replica cannot take it", func(t *testing.T) {
		_, ok, err := b.TryRunLock(ctx, "caseload")
		if err != nil || ok {
			t.Errorf("second lock: ok %v, err %v; want not ok", ok, err)
		}
	})
	t.Run("the same process cannot take it twice", func(t *testing.T) {
		_, ok, err := a.TryRunLock(ctx, "caseload")
		if err != nil || ok {
			t.Errorf("second lock: ok %v, err %v; want not ok", ok, err)
		}
	})
	t.Run("another collector's lock is free", func(t *testing.T) {
		rel, ok, err := b.TryRunLock(ctx, "vacancies")
		if err != nil || !ok {
			t.Fatalf("other lock: ok %v, err %v", ok, err)
		}
		rel()
	})
	t.Run("a run can be saved while the lock is held", func(t *testing.T) {
		save(t, a, run("caseload", t0), obs(caseload(), day(1), kpi.Known(1), "children", "north"))
	})
	release()
	release()
	t.Run("after release another replica takes it", func(t *testing.T) {
		rel, ok, err := b.TryRunLock(ctx, "caseload")
		if err != nil || !ok {
			t.Fatalf("lock after release: ok %v, err %v", ok, err)
		}
		rel()
	})
	t.Run("closing the store releases its locks", func(t *testing.T) {
		d := openStore(t, dsn, c)
		if _, ok, err := d.TryRunLock(ctx, "caseload"); err != nil || !ok {
			t.Fatalf("lock: ok %v, err %v", ok, err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		// The server notices the closed session at once, but give it time.
		deadline := time.Now().Add(10 * time.Second)
		for {
			rel, ok, err := b.TryRunLock(ctx, "caseload")
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				rel()
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the lock of a closed store is still held")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestListenHearsSavedRuns(t *testing.T) {
	writer, dsn, c := newStore(t)
	reader := openStore(t, dsn, c)
	ctx, cancel := context.WithCancel(context.Background())
	heard := make(chan store.Notification, 16)
	done := make(chan error, 1)
	go func() { done <- reader.Listen(ctx, func(n store.Notification) { heard <- n }) }()

	wait := func(t *testing.T, want string) store.Notification {
		t.Helper()
		select {
		case got := <-heard:
			if got.Collector != want {
				t.Errorf("heard %q, want %q", got.Collector, want)
			}
			return got
		case err := <-done:
			t.Fatalf("Listen returned early: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("heard nothing, want %q", want)
		}
		return store.Notification{}
	}
	t.Run("listening begins with a refresh of everything", func(t *testing.T) {
		if n := wait(t, ""); n != (store.Notification{}) {
			t.Errorf("first notification %+v, want the zero one", n)
		}
	})
	t.Run("a successful run is heard with its ID, as another's", func(t *testing.T) {
		res := save(t, writer, run("caseload", t0), obs(caseload(), day(1), kpi.Known(1), "children", "north"))
		if n := wait(t, "caseload"); n.RunID != res.RunID || n.Own {
			t.Errorf("heard %+v, want run %d of another store", n, res.RunID)
		}
	})
	t.Run("a store's own run is heard as its own", func(t *testing.T) {
		res := save(t, reader, run("caseload", t0), obs(caseload(), day(2), kpi.Known(1), "children", "north"))
		if n := wait(t, "caseload"); n.RunID != res.RunID || !n.Own {
			t.Errorf("heard %+v, want run %d as its own", n, res.RunID)
		}
	})
	t.Run("a failed run is heard", func(t *testing.T) {
		failed := run("vacancies", t0)
		failed.Err = errors.New("timeout")
		if _, err := writer.SaveRun(context.Background(), failed, nil); err != nil {
			t.Fatal(err)
		}
		wait(t, "vacancies")
	})
	t.Run("a rejected run is not heard", func(t *testing.T) {
		if _, err := writer.SaveRun(context.Background(), run("caseload", t0),
			[]kpi.Observation{obs(caseload(), day(2), kpi.Known(1), "children")}); err == nil {
			t.Fatal("SaveRun accepted a bad observation")
		}
		save(t, writer, run("headcount", t0), obs(headcount(), day(1), kpi.Known(1), "children"))
		wait(t, "headcount")
	})
	t.Run("Listen returns nil when its context ends", func(t *testing.T) {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Listen: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Listen did not return")
		}
	})
}

func TestConcurrentMigrate(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	c := &clock{t: t0}
	ctx := context.Background()
	stores := make([]*store.Store, 4)
	for i := range stores {
		s, err := store.Open(ctx, dsn, store.Options{Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	errs := make(chan error, len(stores))
	start := make(chan struct{})
	for _, s := range stores {
		go func() {
			<-start
			errs <- s.Migrate(ctx)
		}()
	}
	close(start)
	for range stores {
		if err := <-errs; err != nil {
			t.Errorf("Migrate: %v", err)
		}
	}
	var versions, total int
	if err := stores[0].DB().QueryRowContext(ctx,
		`SELECT count(DISTINCT version), count(*) FROM schema_migrations`).Scan(&versions, &total); err != nil {
		t.Fatal(err)
	}
	if versions == 0 || total != versions {
		t.Errorf("%d migrations recorded for %d versions, want each once", total, versions)
	}
	t.Run("migrating again changes nothing", func(t *testing.T) {
		if err := stores[0].Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if n := count(t, stores[0], "schema_migrations"); n != total {
			t.Errorf("%d migrations recorded, want %d", n, total)
		}
	})
	t.Run("the schema works", func(t *testing.T) {
		save(t, stores[1], run("caseload", t0), obs(caseload(), day(1), kpi.Known(1), "children", "north"))
	})
}

func TestSessionsAreNamedCarewatch(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	keyValue := fmt.Sprintf("host=%s port=%s user=%s password='%s' dbname=%s sslmode=disable",
		u.Hostname(), u.Port(), u.User.Username(), pw, strings.TrimPrefix(u.Path, "/"))
	named := *u
	q := named.Query()
	q.Set("application_name", "carewatch-replica-2")
	named.RawQuery = q.Encode()
	for _, tc := range []struct{ name, dsn, want string }{
		{"a URL gets the name", dsn, "carewatch"},
		{"a key=value string gets the name", keyValue, "carewatch"},
		{"a name in the DSN is kept", named.String(), "carewatch-replica-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(context.Background(), tc.dsn, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var got string
			if err := s.DB().QueryRowContext(context.Background(), `SELECT current_setting('application_name')`).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("application_name %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRunWithoutObservations(t *testing.T) {
	s, _, _ := newStore(t)
	res := save(t, s, run("caseload", t0))
	if res.RunID == 0 || res.Observations != 0 || res.Inserted != 0 || len(res.StatusChanges) != 0 {
		t.Errorf("result %+v, want a run ID and nothing else", res)
	}
	hs, err := s.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || !hs[0].LastRunOK || hs[0].LastObservations != 0 || hs[0].Runs != 1 {
		t.Errorf("health %+v, want one successful run of no observations", hs)
	}
}

func TestOpenFailsWithoutServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct{ name, dsn string }{
		{"an unreachable server is an error", "postgres://carewatch@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"},
		{"an unparsable URL is an error", "postgres://%zz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(ctx, tc.dsn, store.Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

// A run records exactly what it read, failed or not: each file with its
// size, modification time and SHA-256.
func TestRunRecordsWhatItRead(t *testing.T) {
	s, _, _ := newStore(t)
	k := caseload()
	modified := time.Date(2026, 2, 27, 16, 4, 5, 0, time.UTC)
	r := run("establishment", t0)
	r.Reads = []kpi.Read{
		{Kind: kpi.ReadFile, Name: "hr/establishment_2026-02.xlsx", Size: 18234, ModTime: modified, SHA256: strings.Repeat("ab", 32)},
		{Kind: kpi.ReadHTTP, Name: "https://api.example.org/v1/teams", Size: 120, SHA256: strings.Repeat("cd", 32)},
	}
	res := save(t, s, r, obs(k, day(1), kpi.Known(16), "children", "north"))
	failed := run("establishment", t0.Add(time.Hour))
	failed.Reads = r.Reads[:1]
	failed.Err = errors.New("file: row 3: not a number")
	resFailed := save(t, s, failed)
	for _, c := range []struct {
		id   int64
		want []kpi.Read
	}{{res.RunID, r.Reads}, {resFailed.RunID, failed.Reads}} {
		var raw []byte
		if err := s.DB().QueryRowContext(t.Context(), `SELECT reads FROM runs WHERE id = $1`, c.id).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var got []kpi.Read
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("reads %s: %v", raw, err)
		}
		if len(got) != len(c.want) {
			t.Fatalf("run %d: reads %+v, want %+v", c.id, got, c.want)
		}
		for i := range got {
			if got[i].Name != c.want[i].Name || got[i].SHA256 != c.want[i].SHA256 || got[i].Size != c.want[i].Size || !got[i].ModTime.Equal(c.want[i].ModTime) {
				t.Errorf("run %d: read %+v, want %+v", c.id, got[i], c.want[i])
			}
		}
	}
	var sha string
	if err := s.DB().QueryRowContext(t.Context(), `SELECT reads->0->>'sha256' FROM runs WHERE id = $1`, res.RunID).Scan(&sha); err != nil || sha != strings.Repeat("ab", 32) {
		t.Errorf("the file's SHA-256 in SQL: %q, %v", sha, err)
	}
}
