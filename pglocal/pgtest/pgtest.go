// Package pgtest gives tests a real PostgreSQL server: one per test binary,
// with a fresh empty database per test.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// and call NewDatabase in each test that needs a database. Tests that need
// PostgreSQL fail, never skip, when it cannot be had.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/carewatch/carewatch/pglocal"
)

// URLEnv names the environment variable that, when set, points the tests at
// an existing server instead of a private one: a postgres:// URL of its
// maintenance database, as a role that may CREATE DATABASE.
const URLEnv = "CAREWATCH_TEST_DATABASE_URL"

// startTimeout bounds starting the private server.
const startTimeout = 5 * time.Minute

// The state of the test binary, set by Main. Package state is unavoidable
// here: TestMain is the only hook shared by all tests of a package.
var (
	adminURL *url.URL
	adminDB  *sql.DB
)

// Main runs the tests of m with a PostgreSQL server available to
// NewDatabase, and returns the exit code for os.Exit. It uses the server at
// $CAREWATCH_TEST_DATABASE_URL when set; otherwise it starts a private
// server (from the binaries .ci/run installs) in a fresh temporary
// folder, and stops and removes it after the tests. If no server can be had
// it says why and returns 1: the tests fail rather than skip.
func Main(m *testing.M) int {
	code, err := run(m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	return code
}

func run(m *testing.M) (code int, err error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	dsn := os.Getenv(URLEnv)
	if dsn == "" {
		// No := below: the deferred Stop reports through the named err.
		var dir string
		if dir, err = os.MkdirTemp("", "carewatch-pgtest-"); err != nil {
			return 1, fmt.Errorf("temporary folder: %w", err)
		}
		defer os.RemoveAll(dir)
		// The server may run as another user (we may be root), who must be
		// able to enter this folder.
		if err := os.Chmod(dir, 0o755); err != nil {
			return 1, fmt.Errorf("temporary folder: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		var srv *pglocal.Server
		srv, err = pglocal.Start(ctx, pglocal.Options{
			DataDir: filepath.Join(dir, "data"),
			Fast:    true,
			Logger:  logger,
		})
		cancel()
		if err != nil {
			return 1, fmt.Errorf("no PostgreSQL server for the tests (set $%s to use an existing one): %w", URLEnv, err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if serr := srv.Stop(ctx); serr != nil && err == nil {
				err = fmt.Errorf("stopping the test server: %w", serr)
			}
		}()
		dsn = srv.DSN("postgres")
	}

	if adminURL, err = url.Parse(dsn); err != nil || (adminURL.Scheme != "postgres" && adminURL.Scheme != "postgresql") {
		return 1, fmt.Errorf("$%s must be a postgres:// URL", URLEnv)
	}
	if adminDB, err = sql.Open("postgres", dsn); err != nil {
		return 1, fmt.Errorf("opening %s: %w", adminURL.Redacted(), err)
	}
	defer adminDB.Close()
	adminDB.SetMaxOpenConns(4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = adminDB.PingContext(ctx)
	cancel()
	if err != nil {
		return 1, fmt.Errorf("connecting to %s: %w", adminURL.Redacted(), err)
	}
	return m.Run(), nil
}

// AdminDSN returns the DSN of the server's maintenance database, for tests
// that need to act on the server itself. It is empty outside Main.
func AdminDSN() string {
	if adminURL == nil {
		return ""
	}
	return adminURL.String()
}

// invalidName matches what we keep out of database names built from test
// names.
var invalidName = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase creates a uniquely named empty database and returns its DSN;
// the database is dropped (closing any open session) when tb ends. Any
// failure is fatal to tb.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	if adminDB == nil {
		tb.Fatal("pgtest: NewDatabase needs TestMain to run the tests through pgtest.Main")
	}
	name := uniqueName(tb.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := adminDB.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := adminDB.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u := *adminURL
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// uniqueName builds a database name from the test name (to find it when
// debugging) and a random suffix, within PostgreSQL's 63-byte limit.
func uniqueName(testName string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	base := strings.Trim(invalidName.ReplaceAllString(strings.ToLower(testName), "_"), "_")
	const maxBase = 63 - len("t__") - 12
	if len(base) > maxBase {
		base = base[:maxBase]
	}
	return "t_" + base + "_" + hex.EncodeToString(b[:])
}

// NewServer starts a private PostgreSQL server for tb alone, for tests that
// do to a server what others must not see (pause it, stop it); it is
// stopped when tb ends. Any failure is fatal to tb.
func NewServer(tb testing.TB) *pglocal.Server {
	tb.Helper()
	dir, err := os.MkdirTemp("", "carewatch-pgserver-")
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	// The server may run as another user (we may be root).
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := pglocal.Start(ctx, pglocal.Options{DataDir: filepath.Join(dir, "data"), Fast: true})
	if err != nil {
		tb.Fatalf("pgtest: a private PostgreSQL server: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			tb.Errorf("pgtest: stopping the private server: %v", err)
		}
	})
	return srv
}

// ReturnsWithin runs fn and fails t if it is still waiting after limit, as a
// call to a server that does not answer (one stopped by Pause) would be if
// nothing bounded it. It logs how long fn took and returns its error.
func ReturnsWithin(t testing.TB, limit time.Duration, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- fn() }()
	select {
	case err := <-done:
		t.Logf("%s: returned after %s: %v", what, time.Since(start).Round(time.Millisecond), err)
		return err
	case <-time.After(limit):
		t.Fatalf("%s: still waiting after %s on a server that does not answer", what, limit)
		return nil
	}
}
