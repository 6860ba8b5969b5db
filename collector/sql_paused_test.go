package collector_test

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

// A source whose server stops answering (SIGSTOP: connections accepted,
// nothing answered) fails the run at its deadline instead of holding it.
func TestSQLSourceThatStopsAnsweringFailsAtTheRunsDeadline(t *testing.T) {
	srv := pgtest.NewServer(t)
	dsn := srv.DSN("postgres")
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.ExecContext(t.Context(), `
		CREATE TABLE team_caseload (service text, team text, cases integer, fte numeric, snapshot date);
		INSERT INTO team_caseload VALUES ('children', 'north', 150, 10.00, '2025-09-30');`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	src := &config.SourceConfig{Name: "cms", Type: "postgres"}
	s := openSource(t, dsn, src, sqlCollector(`SELECT service, team, cases AS caseload, snapshot AS period FROM team_caseload`))
	if _, err := collect(t, s, 10*time.Second); err != nil {
		t.Fatalf("before the pause: %v", err)
	}

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Resume() })
	for _, what := range []string{"on the pooled session", "on a new session"} {
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			_, err := collect(t, s, 1500*time.Millisecond)
			done <- err
		}()
		select {
		case err := <-done:
			t.Logf("%s: failed after %s: %v", what, time.Since(start).Round(time.Millisecond), err)
			if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
				t.Fatalf("%s: Collect = %v, want the run's deadline", what, err)
			}
		case <-time.After(4 * time.Second):
			t.Fatalf("%s: Collect still waiting 4s into a 1.5s run on a source that does not answer", what)
		}
	}

	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := collect(t, s, 10*time.Second); err != nil {
		t.Fatalf("after the source answers again: %v", err)
	}
}
