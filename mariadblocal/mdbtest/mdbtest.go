// Package mdbtest gives tests a real MariaDB server: one per test binary,
// started when a test first asks for it, with a fresh database and a login
// of its own for each test.
//
// Wrap the tests' run in TestMain, so that the server is stopped after them:
//
//	func TestMain(m *testing.M) { os.Exit(mdbtest.Main(m.Run)) }
//
// and call NewDatabase in each test that needs a database. Tests that need
// MariaDB fail, never skip, when it cannot be had.
package mdbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/carewatch/carewatch/mariadblocal"
)

// AdminDSNEnv names the environment variable that, when set, points the
// tests at an existing server instead of a private one: a go-sql-driver/mysql
// DSN of a login that may create databases and users.
const AdminDSNEnv = "CAREWATCH_TEST_MARIADB_DSN"

// startTimeout bounds starting the private server, including installing
// MariaDB on a fresh CI machine.
const startTimeout = 10 * time.Minute

// The state of the test binary. Package state is unavoidable here: TestMain
// is the only hook shared by all tests of a package.
var (
	once     sync.Once
	startErr error
	server   *mariadblocal.Server
	dir      string
	adminDB  *sql.DB
	tcpAddr  string
)

// Main runs the tests (run is m.Run, or a function that calls it) and then
// stops the server, if a test started one. It returns the exit code for
// os.Exit.
func Main(run func() int) int {
	code := run()
	if server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := server.Stop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "mdbtest: stopping the test server: %v\n", err)
			code = 1
		}
		cancel()
	}
	if adminDB != nil {
		_ = adminDB.Close()
	}
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	return code
}

func setup() error {
	dsn := os.Getenv(AdminDSNEnv)
	if dsn == "" {
		var err error
		if dir, err = os.MkdirTemp("", "carewatch-mdbtest-"); err != nil {
			return fmt.Errorf("temporary folder: %w", err)
		}
		// The server may run as another user (we may be root), who must be
		// able to enter this folder.
		if err := os.Chmod(dir, 0o755); err != nil {
			return fmt.Errorf("temporary folder: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		server, err = mariadblocal.Start(ctx, mariadblocal.Options{DataDir: filepath.Join(dir, "data"), Logger: logger})
		if err != nil {
			return fmt.Errorf("no MariaDB server for the tests (set $%s to use an existing one): %w", AdminDSNEnv, err)
		}
		dsn = server.AdminDSN("")
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("$%s: %w", AdminDSNEnv, err)
	}
	tcpAddr = cfg.Addr
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	adminDB = sql.OpenDB(connector)
	adminDB.SetMaxOpenConns(2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return adminDB.PingContext(ctx)
}

// NewDatabase creates an empty database and a login (with a password) that
// owns it, both dropped when the test ends, and returns the login's DSN over
// TCP. The first call starts the server.
func NewDatabase(t testing.TB) string {
	t.Helper()
	once.Do(func() { startErr = setup() })
	if startErr != nil {
		t.Fatalf("mdbtest: %v", startErr)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "cw_" + hex.EncodeToString(b)
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	password := "pw-" + hex.EncodeToString(pw)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, stmt := range []string{
		"CREATE DATABASE " + name,
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", name, password),
		fmt.Sprintf("GRANT ALL ON %s.* TO '%s'@'%%'", name, name),
		// For tests that look at the sessions of the server.
		fmt.Sprintf("GRANT PROCESS ON *.* TO '%s'@'%%'", name),
		fmt.Sprintf("GRANT SELECT ON performance_schema.* TO '%s'@'%%'", name),
	} {
		if _, err := adminDB.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("mdbtest: %s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = adminDB.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name)
		_, _ = adminDB.ExecContext(ctx, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", name))
	})
	return fmt.Sprintf("%s:%s@tcp(%s)/%s", name, password, tcpAddr, name)
}

// Addr is the server's TCP address, once a test has asked for a database.
func Addr() string { return tcpAddr }

// NewServer starts a private MariaDB server for tb alone, for tests that do
// to a server what others must not see (pause it, stop it), with an empty
// database "cms", and returns the server and root's DSN for that database.
// The server is stopped when tb ends. Any failure is fatal to tb.
func NewServer(tb testing.TB) (*mariadblocal.Server, string) {
	tb.Helper()
	dir, err := os.MkdirTemp("", "carewatch-mdbserver-")
	if err != nil {
		tb.Fatalf("mdbtest: %v", err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	// The server may run as another user (we may be root).
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatalf("mdbtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := mariadblocal.Start(ctx, mariadblocal.Options{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		tb.Fatalf("mdbtest: a private MariaDB server: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A server a test left paused could not take the signal to stop.
		_ = srv.Resume()
		if err := srv.Stop(ctx); err != nil {
			tb.Errorf("mdbtest: stopping the private server: %v", err)
		}
	})
	db, err := sql.Open("mysql", srv.AdminDSN(""))
	if err != nil {
		tb.Fatalf("mdbtest: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE cms"); err != nil {
		tb.Fatalf("mdbtest: %v", err)
	}
	return srv, srv.AdminDSN("cms")
}
