package main

import (
	"context"
	"database/sql"
	"net"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	dto "github.com/prometheus/client_model/go"

	"github.com/carewatch/carewatch/mariadblocal/mdbtest"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

// Through the daemon, against a real MariaDB: a source that is down, a query
// that errors and a query that times out each fail only their own
// collector; the healthy one is stored and served with what it read; once
// its own table is gone its runs fail and its last good values stay served.
func TestMariaDBCollectorsFailOnlyThemselvesAndKeepTheLastGoodValues(t *testing.T) {
	storeDSN := pgtest.NewDatabase(t)
	t.Setenv("CAREWATCH_DATABASE_URL", storeDSN)
	dsn := mdbtest.NewDatabase(t)
	src, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, stmt := range []string{
		`CREATE TABLE team_caseload (team varchar(20) NOT NULL, open_cases integer, snapshot date NOT NULL)`,
		`INSERT INTO team_caseload VALUES ('north', 41, '2026-03-31'), ('south', NULL, '2026-03-31'), ('east', 0, '2026-03-31')`,
	} {
		if _, err := src.ExecContext(t.Context(), stmt); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	t.Setenv("CW_MARIADB_DSN", dsn)
	t.Setenv("CW_MARIADB_DOWN_DSN", "carewatch:pw@tcp("+down+")/cms")
	in := startDaemon(t, writeConfig(t, `
global: {default_retries: 1, default_retry_backoff: 100ms}
kpis:
  - {name: children_open_cases, help: Open children's cases., direction: lower_is_better, labels: [team]}
sources:
  - {name: hr, type: mariadb, dsn_env: CW_MARIADB_DSN, statement_timeout: 1s}
  - {name: down, type: mariadb, dsn_env: CW_MARIADB_DOWN_DSN}
collectors:
  - name: healthy
    source: hr
    schedule: "@every 1h"
    run_on_start: true
    query: &q SELECT team, open_cases AS open, snapshot AS period FROM team_caseload
    period_column: period
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]
  - name: source_down
    source: down
    schedule: "@every 1h"
    run_on_start: true
    timeout: 5s
    query: *q
    period_column: period
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]
  - name: query_errors
    source: hr
    schedule: "@every 1h"
    run_on_start: true
    query: SELECT team, 1 AS open FROM no_such_table
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]
  - name: query_times_out
    source: hr
    schedule: "@every 1h"
    run_on_start: true
    timeout: 10s
    query: SELECT 'x' AS team, SLEEP(5) AS open
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]
`))
	fams := waitForFirstRuns(t, in)
	logs := in.logs.String()
	for _, want := range []string{"connection refused", "no_such_table' doesn't exist", "max_statement_time exceeded"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log does not say %q", want)
		}
	}
	if strings.Contains(logs, "pw-") {
		t.Error("the log quotes a source's password")
	}
	served := map[string]float64{}
	for _, m := range fams["carewatch_children_open_cases"].GetMetric() {
		served[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
	}
	if served["north"] != 41 || served["east"] != 0 || len(served) != 2 {
		t.Errorf("served %v: want north 41 and east 0 (a real zero), south missing (NULL)", served)
	}
	store := sqlx.MustOpen("postgres", storeDSN)
	defer store.Close()
	var reads string
	if err := store.QueryRowContext(t.Context(), `SELECT reads::text FROM runs WHERE collector = 'healthy' AND status = 'success'`).Scan(&reads); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reads, `"kind": "sql"`) || !strings.Contains(reads, "FROM team_caseload") {
		t.Errorf("the run's reads %s do not record the query", reads)
	}

	if _, err := src.ExecContext(t.Context(), `RENAME TABLE team_caseload TO team_caseload_gone`); err != nil {
		t.Fatal(err)
	}
	if err := in.d.runNow(t.Context(), "healthy"); err == nil {
		t.Fatal("a run against the broken source succeeded")
	}
	after, _ := in.scrape(t)
	if got := collectorValue(after, "carewatch_collector_last_run_success", "healthy"); got != 0 {
		t.Errorf("healthy collector's last run success %v after its table went, want 0", got)
	}
	if got := len(after["carewatch_children_open_cases"].GetMetric()); got != len(served) {
		t.Errorf("%d values served after the failed run, %d before", got, len(served))
	}
}

// Through the daemon, with a collector's MariaDB frozen (SIGSTOP:
// connections accepted, nothing answered): the collector's run fails at its
// deadline and is recorded as failed, its last good values stay served, and
// a collector on another source runs meanwhile as before.
func TestFrozenMariaDBFailsItsOwnRunAtTheDeadline(t *testing.T) {
	storeDSN := pgtest.NewDatabase(t)
	t.Setenv("CAREWATCH_DATABASE_URL", storeDSN)
	srv, frozenDSN := mdbtest.NewServer(t)
	otherDSN := mdbtest.NewDatabase(t)
	for _, dsn := range []string{frozenDSN, otherDSN} {
		src, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		for _, stmt := range []string{
			`CREATE TABLE team_caseload (team varchar(20) NOT NULL, open_cases integer, snapshot date NOT NULL)`,
			`INSERT INTO team_caseload VALUES ('north', 41, '2026-03-31'), ('east', 7, '2026-03-31')`,
		} {
			if _, err := src.ExecContext(t.Context(), stmt); err != nil {
				t.Fatal(err)
			}
		}
		src.Close()
	}
	t.Setenv("CW_FROZEN_DSN", frozenDSN)
	t.Setenv("CW_OTHER_DSN", otherDSN)
	const timeout = 3 * time.Second
	in := startDaemon(t, writeConfig(t, `
global: {default_retries: 1, default_retry_backoff: 100ms}
kpis:
  - {name: children_open_cases, help: Open children's cases., direction: lower_is_better, labels: [team]}
  - {name: adults_open_cases, help: Open adults' cases., direction: lower_is_better, labels: [team]}
sources:
  - {name: frozen, type: mariadb, dsn_env: CW_FROZEN_DSN}
  - {name: other, type: mariadb, dsn_env: CW_OTHER_DSN}
collectors:
  - name: frozen
    source: frozen
    schedule: "@every 1h"
    run_on_start: true
    timeout: 3s
    query: &q SELECT team, open_cases AS open, snapshot AS period FROM team_caseload
    period_column: period
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]
  - name: other
    source: other
    schedule: "@every 1h"
    run_on_start: true
    timeout: 3s
    query: *q
    period_column: period
    metrics: [{kpi: adults_open_cases, value_column: open, labels: {team: team}}]
`))
	before := in.waitFor(t, "both collectors to succeed", 60*time.Second, func(f map[string]*dto.MetricFamily) bool {
		return collectorSucceeded("frozen")(f) && collectorSucceeded("other")(f)
	})
	served := func(f map[string]*dto.MetricFamily) map[string]float64 {
		v := map[string]float64{}
		for _, m := range f["carewatch_children_open_cases"].GetMetric() {
			v[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
		return v
	}
	want := served(before)
	if want["north"] != 41 || want["east"] != 7 {
		t.Fatalf("served %v before the freeze", want)
	}

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Resume() })
	frozen := make(chan error, 1)
	start := time.Now()
	go func() { frozen <- in.d.runNow(context.Background(), "frozen") }()
	// Meanwhile the other source's collector runs as before.
	if err := pgtest.ReturnsWithin(t, timeout, "the other collector's run", func() error {
		return in.d.runNow(t.Context(), "other")
	}); err != nil {
		t.Errorf("the other collector's run failed while one source was frozen: %v", err)
	}
	var err error
	select {
	case err = <-frozen:
	case <-time.After(timeout + 2*time.Second):
		t.Fatalf("the frozen source's run still going %s into a %s run", time.Since(start).Round(time.Millisecond), timeout)
	}
	t.Logf("the frozen source's run failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "run timed out after 3s") {
		t.Fatalf("run error = %v, want the run's deadline", err)
	}
	after, _ := in.scrape(t)
	if got := collectorValue(after, "carewatch_collector_last_run_success", "frozen"); got != 0 {
		t.Errorf("frozen collector's last run success %v, want 0", got)
	}
	if got := collectorValue(after, "carewatch_collector_last_run_success", "other"); got != 1 {
		t.Errorf("other collector's last run success %v, want 1", got)
	}
	if got := served(after); len(got) != len(want) || got["north"] != want["north"] || got["east"] != want["east"] {
		t.Errorf("served %v after the failed run, %v before", got, want)
	}
	store := sqlx.MustOpen("postgres", storeDSN)
	defer store.Close()
	var recorded string
	if err := store.GetContext(t.Context(), &recorded, `SELECT error FROM runs WHERE collector = 'frozen' AND status = 'failed' ORDER BY id DESC LIMIT 1`); err != nil {
		t.Fatalf("no failed run recorded: %v", err)
	}
	if !strings.Contains(recorded, "run timed out after 3s") {
		t.Errorf("the run's record says %q, want the run's deadline", recorded)
	}

	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := in.d.runNow(t.Context(), "frozen"); err != nil {
		t.Errorf("once the source answers again: %v", err)
	}
}
