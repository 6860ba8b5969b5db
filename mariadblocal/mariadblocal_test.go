package mariadblocal_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/carewatch/carewatch/mariadblocal"
)

func TestDataSurvivesStopAndRestartOnTheSameDataDir(t *testing.T) {
	dir, err := os.MkdirTemp("", "carewatch-mariadblocal-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the server may run as mysql
		t.Fatal(err)
	}
	opts := mariadblocal.Options{DataDir: filepath.Join(dir, "data")}
	query := func(s *mariadblocal.Server, stmts ...string) (n int) {
		t.Helper()
		db, err := sql.Open("mysql", s.AdminDSN(""))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, q := range stmts[:len(stmts)-1] {
			if _, err := db.ExecContext(t.Context(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if err := db.QueryRowContext(t.Context(), stmts[len(stmts)-1]).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	s, err := mariadblocal.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := query(s, "CREATE DATABASE kept", "CREATE TABLE kept.t (n int)", "INSERT INTO kept.t VALUES (42)", "SELECT n FROM kept.t"); n != 42 {
		t.Fatalf("read %d", n)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err = mariadblocal.Start(ctx, opts); err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer s.Stop(context.Background())
	if n := query(s, "SELECT n FROM kept.t"); n != 42 {
		t.Errorf("after a restart, read %d, want 42", n)
	}
}

func TestStartFailsClearlyWithoutADataDir(t *testing.T) {
	if _, err := mariadblocal.Start(t.Context(), mariadblocal.Options{}); err == nil || err.Error() != "mariadblocal: Options.DataDir is required" {
		t.Errorf("Start = %v", err)
	}
}
