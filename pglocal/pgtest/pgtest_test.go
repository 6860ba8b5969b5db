package pgtest_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"

	_ "github.com/lib/pq"

	"github.com/carewatch/carewatch/pglocal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func dbName(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("DSN %q: %v", dsn, err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	var exists bool
	err := open(t, pgtest.AdminDSN()).QueryRowContext(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		t.Fatal(err)
	}
	return exists
}

func TestNewDatabaseIsEmptyWritableAndDroppedAfterTheTest(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		dsn := pgtest.NewDatabase(t)
		name = dbName(t, dsn)
		db := open(t, dsn)
		ctx := context.Background()
		var tables int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("new database has %d tables, want 0", tables)
		}
		if _, err := db.ExecContext(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)"); err != nil {
			t.Fatal(err)
		}
		var v int
		if err := db.QueryRowContext(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != 42 {
			t.Fatalf("read back %d, %v; want 42", v, err)
		}
		if !databaseExists(t, name) {
			t.Fatalf("database %s does not exist during the test", name)
		}
		// An open session must not stop the drop at cleanup.
		if err := db.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if name == "" {
		t.Fatal("inner test did not run")
	}
	if databaseExists(t, name) {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestNewDatabaseGivesEachCallItsOwnDatabase(t *testing.T) {
	a, b := dbName(t, pgtest.NewDatabase(t)), dbName(t, pgtest.NewDatabase(t))
	if a == b {
		t.Fatalf("two calls returned the same database %s", a)
	}
	for _, n := range []string{a, b} {
		if !strings.HasPrefix(n, "t_testnewdatabasegiveseachcallitsowndatabase_") || len(n) > 63 {
			t.Errorf("database name %q: want the test's name, a random suffix, at most 63 bytes", n)
		}
	}
}

func TestNewDatabaseNameFitsPostgresLimitForLongTestNames(t *testing.T) {
	t.Run(strings.Repeat("very long subtest name ", 10), func(t *testing.T) {
		dsn := pgtest.NewDatabase(t)
		if n := dbName(t, dsn); len(n) > 63 {
			t.Errorf("database name %q is %d bytes, PostgreSQL keeps 63", n, len(n))
		}
		if err := open(t, dsn).PingContext(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}
