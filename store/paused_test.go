package store_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/store"
)

// returnsWithin runs fn and fails t if it is still waiting after limit.
func returnsWithin(t *testing.T, limit time.Duration, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- fn() }()
	select {
	case err := <-done:
		t.Logf("%s returned after %s: %v", what, time.Since(start).Round(time.Millisecond), err)
		return err
	case <-time.After(limit):
		t.Fatalf("%s: still waiting after %s on a store that does not answer", what, limit)
		return nil
	}
}

// A store whose server stops answering (SIGSTOP: connections accepted,
// nothing answered) must fail every call at its deadline, not hang.
func TestEveryCallEndsAtItsDeadlineWhenTheStoreDoesNotAnswer(t *testing.T) {
	srv := pgtest.NewServer(t)
	ctx := context.Background()
	st, err := store.Open(ctx, srv.DSN("postgres"), store.Options{
		Logger:  slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	k := caseload()
	cat := kpi.Catalogue{k.Name: k}
	if err := st.SyncCatalogue(ctx, cat); err != nil {
		t.Fatal(err)
	}
	save(t, st, run("caseloads", t0), obs(k, day(1), kpi.Known(17), "children", "north"))
	lctx, stopListening := context.WithCancel(ctx)
	listening := make(chan error, 1)
	heard := make(chan struct{}, 1)
	go func() {
		listening <- st.Listen(lctx, func(store.Notification) {
			select {
			case heard <- struct{}{}:
			default:
			}
		})
	}()
	<-heard

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Resume() })

	deadline := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, 1500*time.Millisecond)
	}
	const limit = 4 * time.Second
	if returnsWithin(t, limit, "Ping", func() error { return st.Ping(ctx) }) == nil {
		t.Error("Ping succeeded on a store that does not answer")
	}
	c, cancel := deadline()
	defer cancel()
	if returnsWithin(t, limit, "Health", func() error { _, err := st.Health(c); return err }) == nil {
		t.Error("Health succeeded on a store that does not answer")
	}
	c, cancel = deadline()
	defer cancel()
	if returnsWithin(t, limit, "Latest", func() error { _, err := st.Latest(c, cat); return err }) == nil {
		t.Error("Latest succeeded on a store that does not answer")
	}
	c, cancel = deadline()
	defer cancel()
	if returnsWithin(t, limit, "SaveRun", func() error {
		_, err := st.SaveRun(c, run("caseloads", t0.Add(time.Hour)), []kpi.Observation{obs(k, day(2), kpi.Known(18), "children", "north")})
		return err
	}) == nil {
		t.Error("SaveRun succeeded on a store that does not answer")
	}
	c, cancel = deadline()
	defer cancel()
	returnsWithin(t, limit, "TryRunLock", func() error {
		release, ok, err := st.TryRunLock(c, "caseloads")
		if ok {
			release()
		}
		return err
	})
	stopListening()
	returnsWithin(t, limit, "Listen, its context over", func() error { return <-listening })
	returnsWithin(t, limit, "Close", st.Close)
}
