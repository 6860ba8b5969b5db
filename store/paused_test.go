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
	if pgtest.ReturnsWithin(t, limit, "Ping", func() error { return st.Ping(ctx) }) == nil {
		t.Error("Ping succeeded on a store that does not answer")
	}
	c, cancel := deadline()
	defer cancel()
	if pgtest.ReturnsWithin(t, limit, "Health", func() error { _, err := st.Health(c); return err }) == nil {
		t.Error("Health succeeded on a store that does not answer")
	}
	c, cancel = deadline()
	defer cancel()
	if pgtest.ReturnsWithin(t, limit, "Latest", func() error { _, err := st.Latest(c, cat); return err }) == nil {
		t.Error("Latest succeeded on a store that does not answer")
	}
	c, cancel = deadline()
	defer cancel()
	if pgtest.ReturnsWithin(t, limit, "SaveRun", func() error {
		_, err := st.SaveRun(c, run("caseloads", t0.Add(time.Hour)), []kpi.Observation{obs(k, day(2), kpi.Known(18), "children", "north")})
		return err
	}) == nil {
		t.Error("SaveRun succeeded on a store that does not answer")
	}
	c, cancel = deadline()
	defer cancel()
	pgtest.ReturnsWithin(t, limit, "TryRunLock", func() error {
		release, ok, err := st.TryRunLock(c, "caseloads")
		if ok {
			release()
		}
		return err
	})
	stopListening()
	pgtest.ReturnsWithin(t, limit, "Listen, its context over", func() error { return <-listening })
	pgtest.ReturnsWithin(t, limit, "Close", st.Close)
}
