package pgbound_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/carewatch/carewatch/internal/pgbound"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

func openBounded(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := pgbound.OpenDB(cfg, pgbound.Options{ConnectTimeout: 2 * time.Second})
	t.Cleanup(func() { db.Close() })
	return db
}

func TestEveryWaitOnAPausedServerEndsWithItsContext(t *testing.T) {
	srv := pgtest.NewServer(t)
	db := openBounded(t, srv.DSN("postgres"))
	db.SetMaxOpenConns(4)
	ctx := context.Background()

	// Sessions open before the pause: one idle in the pool, one inside a
	// transaction.
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	txCtx, txCancel := context.WithCancel(ctx)
	defer txCancel()
	txInCtx, err := db.BeginTx(txCtx, nil)
	if err != nil {
		t.Fatal(err)
	}

	// A session whose calls may go on for a second after their context
	// ends, for a server to answer a cancel.
	cfg, err := pq.NewConfig(srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	graced := pgbound.OpenDB(cfg, pgbound.Options{ConnectTimeout: 2 * time.Second, CancelGrace: time.Second})
	t.Cleanup(func() { graced.Close() })
	if err := graced.PingContext(ctx); err != nil {
		t.Fatal(err)
	}

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Resume() })

	timed := func(d time.Duration) (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, d)
	}
	t.Run("a query on a pooled session", func(t *testing.T) {
		qctx, cancel := timed(time.Second)
		defer cancel()
		err := pgtest.ReturnsWithin(t, 4*time.Second, "query", func() error {
			var one int
			return db.QueryRowContext(qctx, "SELECT 1").Scan(&one)
		})
		if err == nil {
			t.Fatal("a query on a paused server succeeded")
		}
	})
	t.Run("a query given a grace ends when the grace is over", func(t *testing.T) {
		qctx, cancel := timed(300 * time.Millisecond)
		defer cancel()
		start := time.Now()
		err := pgtest.ReturnsWithin(t, 3*time.Second, "query", func() error {
			var one int
			return graced.QueryRowContext(qctx, "SELECT 1").Scan(&one)
		})
		if err == nil {
			t.Fatal("a query on a paused server succeeded")
		}
		if elapsed := time.Since(start); elapsed < 1200*time.Millisecond {
			t.Errorf("the query ended after %s, before its grace was over", elapsed)
		}
	})
	t.Run("a statement in a transaction", func(t *testing.T) {
		qctx, cancel := timed(time.Second)
		defer cancel()
		err := pgtest.ReturnsWithin(t, 4*time.Second, "exec in transaction", func() error {
			_, err := tx.ExecContext(qctx, "SELECT 1")
			return err
		})
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, pgbound.ErrInterrupted) {
			t.Fatalf("err = %v, want the context's end", err)
		}
		pgtest.ReturnsWithin(t, 4*time.Second, "rollback", tx.Rollback)
	})
	t.Run("a transaction whose context ends", func(t *testing.T) {
		// database/sql rolls it back on the paused server.
		txCancel()
		pgtest.ReturnsWithin(t, 4*time.Second, "rollback", func() error {
			err := txInCtx.Rollback()
			if !errors.Is(err, sql.ErrTxDone) {
				return err
			}
			return nil
		})
	})
	t.Run("a new connection", func(t *testing.T) {
		fresh := openBounded(t, srv.DSN("postgres"))
		qctx, cancel := timed(30 * time.Second)
		defer cancel()
		// The connect timeout (2s) ends it, long before the context.
		if err := pgtest.ReturnsWithin(t, 5*time.Second, "connect", func() error { return fresh.PingContext(qctx) }); err == nil {
			t.Fatal("connecting to a paused server succeeded")
		}
	})
	t.Run("a new connection whose context ends first", func(t *testing.T) {
		fresh := openBounded(t, srv.DSN("postgres"))
		qctx, cancel := timed(300 * time.Millisecond)
		defer cancel()
		if err := pgtest.ReturnsWithin(t, time.Second+500*time.Millisecond, "connect", func() error { return fresh.PingContext(qctx) }); err == nil {
			t.Fatal("connecting to a paused server succeeded")
		}
	})

	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	// The interrupted sessions were thrown away; the pool serves again.
	qctx, cancel := timed(10 * time.Second)
	defer cancel()
	var one int
	if err := db.QueryRowContext(qctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("after the server resumed: %d, %v", one, err)
	}
}

func TestRowsAndCopyWorkThroughTheBoundedConnection(t *testing.T) {
	db := openBounded(t, pgtest.NewDatabase(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (n int, at timestamptz)"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := tx.PrepareContext(ctx, `COPY t (n, at) FROM STDIN`)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if _, err := st.ExecContext(ctx, i, time.Unix(int64(i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, "SELECT n, at FROM t ORDER BY n")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil || types[1].DatabaseTypeName() != "TIMESTAMPTZ" {
		t.Fatalf("column types lost: %v, %v", types, err)
	}
	n := 0
	for rows.Next() {
		var v int
		var at time.Time
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if err := rows.Err(); err != nil || n != 1000 {
		t.Fatalf("read %d rows, %v", n, err)
	}
}

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
