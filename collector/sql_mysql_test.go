package collector_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/mariadblocal/mdbtest"
)

// mariaDB creates a MariaDB database holding the synthetic caseload table
// the PostgreSQL tests use, and returns its DSN.
func mariaDB(t *testing.T) string {
	t.Helper()
	dsn := mdbtest.NewDatabase(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{
		`CREATE TABLE team_caseload (
			service varchar(20) NOT NULL,
			team char(12) NOT NULL,
			cases integer,
			fte decimal(6,2),
			snapshot date NOT NULL
		)`,
		`INSERT INTO team_caseload VALUES
			('children', 'north', 150, 10.00, '2025-09-30'),
			('children', 'south', 90, 0, '2025-09-30'),
			('children', 'east', NULL, 6.50, '2025-09-30')`,
	} {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("create the source table: %v", err)
		}
	}
	return dsn
}

func mariaSource(name string, timeout time.Duration) *config.SourceConfig {
	return &config.SourceConfig{Name: name, Type: config.SourceMariaDB, StatementTimeout: config.Duration(timeout)}
}

func TestMariaDBSourceMapsValuesAndNULLs(t *testing.T) {
	dsn := mariaDB(t)
	cc := sqlCollector(`
		SELECT service, team, snapshot AS period, cases / NULLIF(fte, 0) AS caseload
		FROM team_caseload ORDER BY team`)
	cc.PeriodColumn = "period"
	s := openSource(t, dsn, mariaSource("cms", 0), cc)
	obs, err := collect(t, s, 10*time.Second)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	period := time.Date(2025, 9, 30, 0, 0, 0, 0, london(t))
	want := map[string]kpi.Value{
		`{service="children",team="east"}`:  kpi.Missing,   // no case count: NULL
		`{service="children",team="north"}`: kpi.Known(15), // 150 / 10.00, a DECIMAL
		`{service="children",team="south"}`: kpi.Missing,   // no FTE: a division by zero is missing
	}
	if len(obs) != len(want) {
		t.Fatalf("got %d observations, want %d", len(obs), len(want))
	}
	for _, o := range obs {
		key := kpi.LabelString(o.KPI, o.Labels)
		if w, ok := want[key]; !ok || o.Value != w {
			t.Errorf("%s = %v, want %v (expected series %t)", key, o.Value, w, ok)
		}
		if !o.Period.Equal(period) {
			t.Errorf("%s period = %s, want %s", key, o.Period, period)
		}
	}
}

func TestMariaDBSourcePeriods(t *testing.T) {
	dsn := mariaDB(t)
	loc := london(t)
	for _, tt := range []struct {
		name, period string
		want         time.Time
	}{
		{"a DATE is midnight in London", `DATE '2025-09-30'`, time.Date(2025, 9, 30, 0, 0, 0, 0, loc)},
		{"a DATETIME is its wall clock in London", `TIMESTAMP '2025-12-01 09:30:00'`, time.Date(2025, 12, 1, 9, 30, 0, 0, loc)},
		{"a date as text is midnight in London", `'30/09/2025'`, time.Date(2025, 9, 30, 0, 0, 0, 0, loc)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cc := sqlCollector(`SELECT 'children' AS service, 'north' AS team, 14 AS caseload, ` + tt.period + ` AS period`)
			cc.PeriodColumn = "period"
			// parseTime=true in the DSN must not turn dates into UTC instants.
			s := openSource(t, dsn+"?parseTime=true", mariaSource("cms", 0), cc)
			obs, err := collect(t, s, 10*time.Second)
			if err != nil {
				t.Fatalf("Collect: %v", err)
			}
			if len(obs) != 1 || !obs[0].Period.Equal(tt.want) {
				t.Fatalf("observations = %+v, want one for period %s", obs, tt.want)
			}
		})
	}
}

// The faults PostgreSQL's source is tested with, against a real MariaDB:
// each fails its own run only, with the server's message, and nothing the
// queries tried to write is written.
func TestMariaDBSourceFailures(t *testing.T) {
	dsn := mariaDB(t)
	tests := []struct {
		name          string
		query         string
		timeout       time.Duration // statement_timeout of the source
		ctxTimeout    time.Duration
		want          []string
		wantPermanent bool
	}{
		{"a syntax error fails with MariaDB's message",
			`SELEC service, team, cases AS caseload FROM team_caseload`, 0, 10 * time.Second,
			[]string{`collector "caseload": source "cms": query: Error 1064`, "SQL syntax"}, true},
		{"an unknown table fails with MariaDB's message",
			`SELECT service, team, cases AS caseload FROM no_such_table`, 0, 10 * time.Second,
			[]string{`collector "caseload"`, "Error 1146", "no_such_table' doesn't exist"}, true},
		{"a query slower than statement_timeout is stopped by the server",
			`SELECT 'children' AS service, 'north' AS team, SLEEP(5) AS caseload`, 200 * time.Millisecond, 10 * time.Second,
			[]string{`collector "caseload": source "cms"`, "max_statement_time exceeded"}, false},
		{"a statement_timeout longer than the run's deadline is cut to fit it",
			`SELECT 'children' AS service, 'north' AS team, SLEEP(5) AS caseload`, time.Minute, 3 * time.Second,
			[]string{`collector "caseload": source "cms"`, "max_statement_time exceeded"}, false},
		{"an INSERT fails because the transaction is read only",
			`INSERT INTO team_caseload VALUES ('adults', 'west', 1, 1, '2025-09-30')`, 0, 10 * time.Second,
			[]string{`collector "caseload"`, "Error 1792", "READ ONLY transaction"}, true},
		{"a CREATE fails because the session is read only",
			`CREATE TABLE stolen AS SELECT service, team, cases AS caseload FROM team_caseload`, 0, 10 * time.Second,
			[]string{`collector "caseload"`, "READ ONLY transaction"}, true},
		{"a COMMIT cannot smuggle a write out of the read-only transaction",
			`COMMIT; INSERT INTO team_caseload VALUES ('adults', 'west', 1, 1, '2025-09-30'); SELECT service, team, cases AS caseload FROM team_caseload`, 0, 10 * time.Second,
			[]string{`collector "caseload"`, "Error 1064"}, true},
		{"a row that does not map fails naming its row and column",
			`SELECT service, team, 'many' AS caseload FROM team_caseload ORDER BY team`, 0, 10 * time.Second,
			[]string{`collector "caseload": row 1, column "caseload": value "many" is not a number`}, true},
		{"a time where a number belongs fails naming its row and column",
			`SELECT service, team, snapshot AS caseload FROM team_caseload ORDER BY team`, 0, 10 * time.Second,
			[]string{`collector "caseload": row 1, column "caseload": value "2025-09-30" is not a number`}, true},
		{"a missing column fails listing the columns present",
			`SELECT service, team, cases FROM team_caseload`, 0, 10 * time.Second,
			[]string{`collector "caseload": the rows have no column "caseload" (named by metrics[0].value_column); columns present: "service", "team", "cases"`}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSource(t, dsn, mariaSource("cms", tt.timeout), sqlCollector(tt.query))
			start := time.Now()
			obs, err := collect(t, s, tt.ctxTimeout)
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("Collect took %s", elapsed)
			}
			if err == nil {
				t.Fatalf("Collect succeeded with %d observations", len(obs))
			}
			t.Log(err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if got := collector.IsPermanent(err); got != tt.wantPermanent {
				t.Errorf("IsPermanent = %t, want %t", got, tt.wantPermanent)
			}
			if strings.Contains(err.Error(), "pw-") {
				t.Errorf("error %q quotes the password", err)
			}
		})
	}

	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows int
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM team_caseload`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 3 {
		t.Errorf("the source table has %d rows, want its 3: a write got through", rows)
	}
	var stolen int
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'stolen'`).Scan(&stolen); err != nil {
		t.Fatal(err)
	}
	if stolen != 0 {
		t.Error("the CREATE TABLE got through")
	}
}

// A DBA sees carewatch by its program_name among the server's sessions.
func TestMariaDBSourceShowsItsProgramName(t *testing.T) {
	dsn := mariaDB(t)
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	marker := fmt.Sprintf("marker_%d", time.Now().UnixNano())
	s := openSource(t, dsn+"?connectionAttributes=program_name:other", mariaSource("cms", 0),
		sqlCollector(`SELECT 'children' AS service, 'north' AS team, SLEEP(1) AS caseload, '`+marker+`' AS marker`))
	done := make(chan error, 1)
	go func() {
		_, err := collect(t, s, 10*time.Second)
		done <- err
	}()
	var seen string
	eventually(t, 5*time.Second, "the query never showed among the sessions", func() bool {
		err := admin.QueryRowContext(t.Context(), `
			SELECT a.ATTR_VALUE
			  FROM information_schema.PROCESSLIST p
			  JOIN performance_schema.threads th ON th.PROCESSLIST_ID = p.ID
			  JOIN performance_schema.session_connect_attrs a ON a.PROCESSLIST_ID = p.ID AND a.ATTR_NAME = 'program_name'
			 WHERE p.INFO LIKE CONCAT('%', ?, '%') AND p.ID <> CONNECTION_ID()
			 ORDER BY a.ORDINAL_POSITION DESC LIMIT 1`, marker).Scan(&seen)
		return err == nil
	})
	if seen != collector.ApplicationName {
		t.Errorf("program_name = %q, want %s", seen, collector.ApplicationName)
	}
	if err := <-done; err != nil {
		t.Errorf("Collect: %v", err)
	}
}

func TestMariaDBSourceThatIsDown(t *testing.T) {
	dsn := "carewatch:s3cr3t-pw@tcp(" + closedPort(t) + ")/cms"
	src := mariaSource("cms", 0)
	s := unconnectedSource(t, src, dsn, "SELECT 1")
	_, err := collect(t, s, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), `collector "caseload": source "cms"`) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Collect = %v, want a refused connection naming the collector", err)
	}
	if collector.IsPermanent(err) {
		t.Error("a refused connection is marked permanent; it should be retried")
	}
	if _, err := collector.ConnectSQL(t.Context(), src, dsn); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("ConnectSQL = %v, want a refusal that does not quote the password", err)
	}
	for _, bad := range []string{"carewatch:s3cr3t-pw@tcp(db.example:3306)/cms?parseTime=s3cr3t", "carewatch:s3cr3t-pw@db.example/cms"} {
		_, err := collector.OpenSQL(src, bad)
		if err == nil || !strings.Contains(err.Error(), `source "cms": the DSN is not valid`) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("OpenSQL(bad DSN) = %v, want a refusal that does not quote the secret", err)
		}
	}
}

// A SQL Server that is down fails its collector's run only, and may be
// retried; a batch of several statements is refused before it is sent.
func TestSQLServerSourceThatIsDown(t *testing.T) {
	dsn := "sqlserver://carewatch:s3cr3t-pw@" + closedPort(t) + "?database=cms&dial+timeout=2"
	src := &config.SourceConfig{Name: "warehouse", Type: config.SourceSQLServer}
	s := unconnectedSource(t, src, dsn, "SELECT 1 AS caseload")
	_, err := collect(t, s, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), `collector "caseload": source "warehouse"`) || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("Collect = %v, want a failure naming the collector and not the password", err)
	}
	if collector.IsPermanent(err) {
		t.Errorf("%v is marked permanent; a server that is down should be retried", err)
	}

	s = unconnectedSource(t, src, dsn, "DELETE FROM dbo.cases; SELECT 1 AS caseload")
	_, err = collect(t, s, 5*time.Second)
	if err == nil || !collector.IsPermanent(err) || !strings.Contains(err.Error(), `collector "caseload": source "warehouse": query: give one statement`) {
		t.Fatalf("Collect = %v, want a permanent refusal of the second statement", err)
	}
}

// The factory builds every kind of source from a loaded config, one pool
// per SQL source shared by its collectors, and closes what it opened.
func TestSourcesBuildsEveryKindAndClosesItsPools(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CW_TEST_WAREHOUSE_DSN", "sqlserver://carewatch:s3cr3t@"+closedPort(t)+"?database=cms")
	t.Setenv("CW_TEST_HR_DSN", "carewatch:s3cr3t@tcp("+closedPort(t)+")/hr")
	text := `
kpis: [{name: caseload_average, help: h, direction: lower_is_better, labels: [team]}]
sources:
  - {name: warehouse, type: sqlserver, dsn_env: CW_TEST_WAREHOUSE_DSN}
  - {name: hr, type: mariadb, dsn_env: CW_TEST_HR_DSN}
  - {name: files, type: file, directory: ` + dir + `}
  - {name: api, type: http, base_url: "http://` + closedPort(t) + `/"}
collectors:
  - {name: a, source: warehouse, schedule: "@daily", query: "SELECT 1 AS v, 'x' AS team", metrics: [{kpi: caseload_average, value_column: v, labels: {team: team}}]}
  - {name: b, source: warehouse, schedule: "@daily", query: "SELECT 2 AS v, 'x' AS team", metrics: [{kpi: caseload_average, value_column: v, labels: {team: team}}]}
  - {name: c, source: hr, schedule: "@daily", query: "SELECT 3 AS v, 'x' AS team", metrics: [{kpi: caseload_average, value_column: v, labels: {team: team}}]}
  - {name: d, source: files, schedule: "@daily", file: {path: a.csv}, metrics: [{kpi: caseload_average, value_column: v, labels: {team: team}}]}
  - {name: e, source: api, schedule: "@daily", http: {url: /x, rows: "$[*]"}, metrics: [{kpi: caseload_average, value_column: v, labels: {team: team}}]}
`
	cfg, err := config.Parse([]byte(text), filepath.Join(dir, "c.yml"))
	if err != nil {
		t.Fatal(err)
	}
	sources := collector.NewSources(cfg)
	for i := range cfg.Collectors {
		s, err := sources.Source(&cfg.Collectors[i])
		if err != nil {
			t.Fatalf("collector %s: %v", cfg.Collectors[i].Name, err)
		}
		if name, _ := s.Describe(); name != cfg.Collectors[i].Source {
			t.Errorf("collector %s: source %q", cfg.Collectors[i].Name, name)
		}
	}
	if err := sources.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	t.Setenv("CW_TEST_HR_DSN", "")
	if _, err := collector.NewSources(cfg).Source(&cfg.Collectors[2]); err == nil || !strings.Contains(err.Error(), `collector "c": source "hr": environment variable CW_TEST_HR_DSN is not set`) {
		t.Errorf("a missing DSN: %v", err)
	}
}
