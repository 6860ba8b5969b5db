package main

import (
	"database/sql"
	"math"
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
	fams := in.waitFor(t, "every collector to finish its first run", 60*time.Second, func(f map[string]*dto.MetricFamily) bool {
		for _, c := range []string{"healthy", "source_down", "query_errors", "query_times_out"} {
			if math.IsNaN(collectorValue(f, "carewatch_collector_last_run_success", c)) {
				return false
			}
		}
		return true
	})
	for c, want := range map[string]float64{"healthy": 1, "source_down": 0, "query_errors": 0, "query_times_out": 0} {
		if got := collectorValue(fams, "carewatch_collector_last_run_success", c); got != want {
			t.Errorf("collector %s: last run success %v, want %v", c, got, want)
		}
	}
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
