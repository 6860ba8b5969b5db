package pglocal_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/carewatch/carewatch/pglocal"
)

// tempDir returns a fresh folder that the server's user can enter: when we
// are root the server runs as another user, and t.TempDir's parents are
// private to us.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "carewatch-pglocal-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func start(t *testing.T, o pglocal.Options) *pglocal.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	s, err := pglocal.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

func stop(t *testing.T, s *pglocal.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func show(t *testing.T, db *sql.DB, setting string) string {
	t.Helper()
	var v string
	if err := db.QueryRowContext(context.Background(), "SHOW "+setting).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDataSurvivesStopAndRestartOnTheSameDataDir(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dataDir := filepath.Join(tempDir(t), "data")

	s := start(t, pglocal.Options{DataDir: dataDir})
	for range 2 { // the second call finds the database and does nothing
		if err := s.CreateDatabase(ctx, "kpis"); err != nil {
			t.Fatal(err)
		}
	}
	db := open(t, s.DSN("kpis"))
	if got := show(t, db, "fsync"); got != "on" {
		t.Errorf("fsync = %s without Fast, want on", got)
	}
	if got := show(t, db, "listen_addresses"); got != "127.0.0.1" {
		t.Errorf("listen_addresses = %s, want 127.0.0.1", got)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE obs (kpi text, value float8); INSERT INTO obs VALUES ('caseload', 17.5)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	stop(t, s)
	if _, err := os.Stat(filepath.Join(dataDir, pglocal.LogFileName)); err != nil {
		t.Errorf("server log: %v", err)
	}

	s = start(t, pglocal.Options{DataDir: dataDir, Fast: true})
	db = open(t, s.DSN("kpis"))
	var v float64
	if err := db.QueryRowContext(ctx, "SELECT value FROM obs WHERE kpi = 'caseload'").Scan(&v); err != nil {
		t.Fatalf("row written before the restart: %v", err)
	}
	if v != 17.5 {
		t.Errorf("value = %v after restart, want 17.5", v)
	}
	for _, setting := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
		if got := show(t, db, setting); got != "off" {
			t.Errorf("%s = %s with Fast, want off", setting, got)
		}
	}
	db.Close()
	stop(t, s)
}

func TestStartOnTheGivenPortAndDSNPointsAtIt(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	s := start(t, pglocal.Options{DataDir: filepath.Join(tempDir(t), "data"), Port: port})
	if s.Port() != port {
		t.Errorf("Port() = %d, want %d", s.Port(), port)
	}
	want := fmt.Sprintf("postgres://carewatch@127.0.0.1:%d/my%%20db?sslmode=disable", port)
	if got := s.DSN("my db"); got != want {
		t.Errorf("DSN = %s, want %s", got, want)
	}
	if err := s.CreateDatabase(context.Background(), "my db"); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := open(t, s.DSN("my db")).QueryRow("SELECT current_database()").Scan(&name); err != nil || name != "my db" {
		t.Errorf("connected to %q (%v), want \"my db\"", name, err)
	}
}

func TestStartFailsClearly(t *testing.T) {
	ctx := context.Background()

	t.Run("when a server already runs on the data dir", func(t *testing.T) {
		dataDir := filepath.Join(tempDir(t), "data")
		start(t, pglocal.Options{DataDir: dataDir, Fast: true})
		_, err := pglocal.Start(ctx, pglocal.Options{DataDir: dataDir, Fast: true})
		if err == nil || !strings.Contains(err.Error(), "already running") {
			t.Fatalf("second Start: error %v, want one saying a server is already running", err)
		}
	})

	t.Run("with the server log when the port is taken", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		port := l.Addr().(*net.TCPAddr).Port
		_, err = pglocal.Start(ctx, pglocal.Options{DataDir: filepath.Join(tempDir(t), "data"), Port: port, Fast: true})
		if err == nil {
			t.Fatal("Start on a taken port succeeded")
		}
		for _, want := range []string{"postgres exited", pglocal.LogFileName, "could not", strconv.Itoa(port)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
	})

	t.Run("when the binaries folder given holds no server", func(t *testing.T) {
		t.Setenv(pglocal.BinDirEnv, tempDir(t))
		_, err := pglocal.Start(ctx, pglocal.Options{DataDir: filepath.Join(tempDir(t), "data")})
		if err == nil || !strings.Contains(err.Error(), pglocal.BinDirEnv) {
			t.Fatalf("error %v, want one naming $%s", err, pglocal.BinDirEnv)
		}
	})

	t.Run("when the data dir is not given", func(t *testing.T) {
		if _, err := pglocal.Start(ctx, pglocal.Options{}); err == nil || !strings.Contains(err.Error(), "DataDir") {
			t.Fatalf("error %v, want one naming DataDir", err)
		}
	})
}

func TestStopWithNoTimeLeftKillsTheServerAndItStartsAgain(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(tempDir(t), "data")
	// Not Fast: its asynchronous commits may be lost by a kill.
	s := start(t, pglocal.Options{DataDir: dataDir})
	db := open(t, s.DSN("postgres"))
	if _, err := db.Exec("CREATE TABLE t (v int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Stop(ctx); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Stop with an ended context: error %v, want one saying the server was killed", err)
	}
	if err := open(t, s.DSN("postgres")).Ping(); err == nil {
		t.Fatal("server still answers after Stop")
	}

	s = start(t, pglocal.Options{DataDir: dataDir, Fast: true})
	var v int
	if err := open(t, s.DSN("postgres")).QueryRow("SELECT v FROM t").Scan(&v); err != nil || v != 1 {
		t.Fatalf("after restart read %d, %v; want 1 (committed before the kill)", v, err)
	}
	stop(t, s)
}

func TestStartWhenThePidFileNamesAnotherLiveProgram(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(tempDir(t), "data")
	s := start(t, pglocal.Options{DataDir: dataDir, Fast: true})
	stop(t, s)

	// After a crash and a reboot, the pid may belong to another program.
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Process.Kill(); _ = other.Wait() }()
	pidFile := filepath.Join(dataDir, "postmaster.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(other.Process.Pid)+"\n"+dataDir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	s = start(t, pglocal.Options{DataDir: dataDir, Fast: true})
	if err := open(t, s.DSN("postgres")).Ping(); err != nil {
		t.Fatal(err)
	}
	stop(t, s)
}
