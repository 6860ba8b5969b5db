package collector_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/mariadblocal/mdbtest"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(mdbtest.Main(func() int { return pgtest.Main(m) })) }

// sourceDB creates a database holding a synthetic caseload table, and
// returns its DSN.
func sourceDB(t *testing.T) string {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.ExecContext(t.Context(), `
		CREATE TABLE team_caseload (
			service text NOT NULL,
			team char(12) NOT NULL,
			cases integer,
			fte numeric(6,2),
			snapshot date NOT NULL
		);
		INSERT INTO team_caseload VALUES
			('children', 'north', 150, 10.00, '2025-09-30'),
			('children', 'south', 90, 0, '2025-09-30'),
			('children', 'east', NULL, 6.50, '2025-09-30');`)
	if err != nil {
		t.Fatalf("create the source table: %v", err)
	}
	return dsn
}

func sqlCollector(query string) *config.CollectorConfig {
	cc := caseloadCollector()
	cc.Query = query
	return cc
}

// openSource opens src on dsn and builds the SQL source of cc.
func openSource(t *testing.T, dsn string, src *config.SourceConfig, cc *config.CollectorConfig) *collector.SQLSource {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	db, err := collector.ConnectSQL(ctx, src, dsn)
	if err != nil {
		t.Fatalf("OpenSQL: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	m, err := collector.NewMapper(cc, catalogue(), 100)
	if err != nil {
		t.Fatalf("NewMapper: %v", err)
	}
	return sqlSource(t, cc, src, db, m)
}

// unconnectedSource opens src on dsn without connecting, as the daemon
// does, and builds the source of the caseload collector running query.
func unconnectedSource(t *testing.T, src *config.SourceConfig, dsn, query string) *collector.SQLSource {
	t.Helper()
	db, err := collector.OpenSQL(src, dsn)
	if err != nil {
		t.Fatalf("OpenSQL = %v: a source that is down must not stop the daemon's start", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	cc := sqlCollector(query)
	m, err := collector.NewMapper(cc, catalogue(), 10)
	if err != nil {
		t.Fatal(err)
	}
	return sqlSource(t, cc, src, db, m)
}

// sqlSource builds the SQL source of cc on db, opened from src.
func sqlSource(t *testing.T, cc *config.CollectorConfig, src *config.SourceConfig, db *sqlx.DB, m *collector.Mapper) *collector.SQLSource {
	t.Helper()
	s, err := collector.NewSQLSource(collector.SQLSourceOptions{Collector: cc, Source: src, DB: db, Mapper: m})
	if err != nil {
		t.Fatalf("NewSQLSource: %v", err)
	}
	return s
}

func collect(t *testing.T, s *collector.SQLSource, timeout time.Duration) ([]kpi.Observation, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	return s.Collect(ctx, runAt(t, "2025-10-01T09:00:00Z"))
}

func TestSQLSourceMapsValuesAndNULLs(t *testing.T) {
	dsn := sourceDB(t)
	cc := sqlCollector(`
		SELECT service, team, snapshot AS period,
		       cases::numeric / NULLIF(fte, 0) AS caseload
		FROM team_caseload ORDER BY team`)
	cc.PeriodColumn = "period"
	s := openSource(t, dsn, &config.SourceConfig{Name: "cms", Type: "postgres"}, cc)

	obs, err := collect(t, s, 10*time.Second)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	period := time.Date(2025, 9, 30, 0, 0, 0, 0, london(t))
	want := map[string]kpi.Value{
		`{service="children",team="east"}`:  kpi.Missing,   // no case count: NULL
		`{service="children",team="north"}`: kpi.Known(15), // 150 / 10.00, a NUMERIC
		`{service="children",team="south"}`: kpi.Missing,   // no FTE: a division by zero is missing
	}
	if len(obs) != len(want) {
		t.Fatalf("got %d observations, want %d", len(obs), len(want))
	}
	for _, o := range obs {
		key := kpi.LabelString(o.KPI, o.Labels)
		w, ok := want[key]
		if !ok {
			t.Errorf("unexpected series %s", key)
			continue
		}
		if o.Value != w {
			t.Errorf("%s = %v (valid %t), want %v (valid %t)", key, o.Value, o.Value.Valid, w, w.Valid)
		}
		if !o.Period.Equal(period) {
			t.Errorf("%s period = %s, want %s", key, o.Period, period)
		}
	}
	if source, query := s.Describe(); source != "cms" || query != cc.Query {
		t.Errorf("Describe = %q, %q", source, query)
	}

	// A second run of the same query is a new run, not a duplicate.
	if _, err := collect(t, s, 10*time.Second); err != nil {
		t.Errorf("second Collect: %v", err)
	}
}

func TestSQLSourcePeriods(t *testing.T) {
	dsn := sourceDB(t)
	loc := london(t)
	tests := []struct {
		name   string
		dsn    string
		period string
		want   time.Time
	}{
		{"a DATE is midnight in London", dsn, `date '2025-09-30'`, time.Date(2025, 9, 30, 0, 0, 0, 0, loc)},
		{"a TIMESTAMP is its wall clock in London", dsn, `timestamp '2025-12-01 09:30'`, time.Date(2025, 12, 1, 9, 30, 0, 0, loc)},
		{"a TIMESTAMPTZ is its instant", dsn, `timestamptz '2025-09-30 12:00+00'`, time.Date(2025, 9, 30, 12, 0, 0, 0, time.UTC)},
		{"a TIMESTAMPTZ is its instant even when the driver cannot load the session's zone", dsn + "&TimeZone=ZZZ0",
			`timestamptz '2025-09-30 12:00+00'`, time.Date(2025, 9, 30, 12, 0, 0, 0, time.UTC)},
		{"a date as text is midnight in London", dsn, `'30/09/2025'::text`, time.Date(2025, 9, 30, 0, 0, 0, 0, loc)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := sqlCollector(`SELECT 'children' AS service, 'north' AS team, 14 AS caseload, ` + tt.period + ` AS period`)
			cc.PeriodColumn = "period"
			s := openSource(t, tt.dsn, &config.SourceConfig{Name: "cms"}, cc)
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

func TestSQLSourceFailures(t *testing.T) {
	dsn := sourceDB(t)
	tests := []struct {
		name          string
		query         string
		timeout       time.Duration // statement_timeout of the source
		ctxTimeout    time.Duration
		want          []string
		wantPermanent bool
	}{
		{"a syntax error fails with PostgreSQL's message",
			`SELEC service, team, cases AS caseload FROM team_caseload`, 0, 10 * time.Second,
			[]string{`collector "caseload": source "cms": query: pq: syntax error at or near "SELEC"`}, true},
		{"an unknown table fails with PostgreSQL's message",
			`SELECT service, team, cases AS caseload FROM no_such_table`, 0, 10 * time.Second,
			[]string{`collector "caseload"`, `relation "no_such_table" does not exist`}, true},
		{"a query slower than statement_timeout is cancelled by the server",
			`SELECT 'children' AS service, 'north' AS team, 1 AS caseload FROM pg_sleep(5)`, 200 * time.Millisecond, 10 * time.Second,
			[]string{`collector "caseload": source "cms"`, "canceling statement due to statement timeout"}, false},
		{"a statement_timeout longer than the run's deadline is cut to fit it",
			`SELECT 'children' AS service, 'north' AS team, 1 AS caseload FROM pg_sleep(5)`, time.Minute, 3 * time.Second,
			[]string{`collector "caseload": source "cms"`, "canceling statement due to statement timeout"}, false},
		{"an INSERT fails because the transaction is read only",
			`INSERT INTO team_caseload VALUES ('adults', 'west', 1, 1, '2025-09-30') RETURNING service, team, cases AS caseload`, 0, 10 * time.Second,
			[]string{`collector "caseload"`, "cannot execute INSERT in a read-only transaction"}, true},
		{"a CREATE fails because the transaction is read only",
			`CREATE TABLE stolen AS SELECT service, team, cases AS caseload FROM team_caseload`, 0, 10 * time.Second,
			[]string{`collector "caseload"`, "cannot execute CREATE TABLE AS in a read-only transaction"}, true},
		{"a COMMIT cannot smuggle a write out of the read-only transaction",
			`COMMIT; INSERT INTO team_caseload VALUES ('adults', 'west', 1, 1, '2025-09-30'); SELECT service, team, cases AS caseload FROM team_caseload`, 0, 10 * time.Second,
			[]string{`collector "caseload"`, "cannot insert multiple commands into a prepared statement"}, true},
		{"a division by zero in the query fails at once",
			`SELECT service, team, cases / 0 AS caseload FROM team_caseload`, 0, 10 * time.Second,
			[]string{`collector "caseload"`, "division by zero"}, true},
		{"a row that does not map fails naming its row and column",
			`SELECT service, team, 'many' AS caseload FROM team_caseload ORDER BY team`, 0, 10 * time.Second,
			[]string{`collector "caseload": row 1, column "caseload": value "many" is not a number`}, true},
		{"a missing column fails listing the columns present",
			`SELECT service, team, cases FROM team_caseload`, 0, 10 * time.Second,
			[]string{`collector "caseload": the rows have no column "caseload" (named by metrics[0].value_column); columns present: "service", "team", "cases"`}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &config.SourceConfig{Name: "cms", Type: "postgres", StatementTimeout: config.Duration(tt.timeout)}
			s := openSource(t, dsn, src, sqlCollector(tt.query))
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
		})
	}

	// Nothing the queries tried to write was written.
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM team_caseload`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 3 {
		t.Errorf("the source table has %d rows, want its 3: a write got through", rows)
	}
	var stolen sql.NullString
	if err := db.QueryRowContext(t.Context(), `SELECT to_regclass('stolen')::text`).Scan(&stolen); err != nil {
		t.Fatal(err)
	}
	if stolen.Valid {
		t.Error("the CREATE TABLE got through")
	}
}

// keywordDSN rewrites a postgres:// URL as key=value pairs.
func keywordDSN(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	kv := fmt.Sprintf("host=%s port=%s dbname=%s user=%s sslmode=disable", host, port, strings.TrimPrefix(u.Path, "/"), u.User.Username())
	if pw, ok := u.User.Password(); ok {
		kv += " password='" + pw + "'"
	}
	return kv
}

func TestSQLSourceShowsItsApplicationName(t *testing.T) {
	dsn := sourceDB(t)
	admin, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	forms := []struct{ name, dsn string }{
		{"a URL DSN", dsn + "&application_name=other"},
		{"a key=value DSN", keywordDSN(t, dsn) + " application_name=other"},
	}
	for _, form := range forms {
		t.Run("with "+form.name+" the running query is seen as carewatch in pg_stat_activity", func(t *testing.T) {
			marker := fmt.Sprintf("marker_%d", time.Now().UnixNano())
			s := openSource(t, form.dsn, &config.SourceConfig{Name: "cms", Type: "postgres"},
				sqlCollector(`SELECT 'children' AS service, 'north' AS team, 1 AS caseload, '`+marker+`' AS marker FROM pg_sleep(1)`))
			done := make(chan error, 1)
			go func() {
				_, err := collect(t, s, 10*time.Second)
				done <- err
			}()
			var seen string
			eventually(t, 5*time.Second, "the query never showed in pg_stat_activity", func() bool {
				err := admin.QueryRowContext(t.Context(),
					`SELECT application_name FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()`,
					marker).Scan(&seen)
				return err == nil
			})
			if seen != "carewatch" {
				t.Errorf("application_name = %q, want carewatch", seen)
			}
			if err := <-done; err != nil {
				t.Errorf("Collect: %v", err)
			}
		})
	}
}

func TestOpenSQLPool(t *testing.T) {
	dsn := sourceDB(t)
	tests := []struct {
		name string
		src  config.SourceConfig
		want int
	}{
		{"an unset pool holds two connections", config.SourceConfig{Name: "cms"}, 2},
		{"max_open_conns sets the pool", config.SourceConfig{Name: "cms", MaxOpenConns: 5, ConnMaxLifetime: config.Duration(time.Minute)}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := collector.ConnectSQL(t.Context(), &tt.src, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if got := db.Stats().MaxOpenConnections; got != tt.want {
				t.Errorf("MaxOpenConnections = %d, want %d", got, tt.want)
			}
		})
	}
}

// closedPort returns a local TCP port that nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestSQLSourceThatIsDown(t *testing.T) {
	dsn := "postgres://carewatch:s3cr3t-pw@" + closedPort(t) + "/cms?sslmode=disable"
	src := &config.SourceConfig{Name: "cms", Type: "postgres"}
	t.Run("OpenSQL does not connect, so a source that is down cannot stop the daemon's start", func(t *testing.T) {
		db, err := collector.OpenSQL(src, dsn)
		if err != nil {
			t.Fatalf("OpenSQL = %v", err)
		}
		db.Close()
	})
	t.Run("ConnectSQL fails naming the source and the refusal", func(t *testing.T) {
		_, err := collector.ConnectSQL(t.Context(), src, dsn)
		if err == nil || !strings.Contains(err.Error(), `source "cms": cannot connect`) || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("ConnectSQL = %v, want a refused connection naming the source", err)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error %q quotes the password", err)
		}
	})
	t.Run("Collect fails naming the collector and the refusal, and may be retried", func(t *testing.T) {
		db, err := sqlx.Open("postgres", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		m, err := collector.NewMapper(caseloadCollector(), catalogue(), 10)
		if err != nil {
			t.Fatal(err)
		}
		s := sqlSource(t, sqlCollector("SELECT 1"), src, db, m)
		_, err = collect(t, s, 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), `collector "caseload": source "cms"`) || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("Collect = %v, want a refused connection naming the collector", err)
		}
		if collector.IsPermanent(err) {
			t.Error("a refused connection is marked permanent; it should be retried")
		}
	})
}

func TestOpenSQLNeverQuotesTheDSN(t *testing.T) {
	tests := []struct{ name, dsn string }{
		{"a URL with a bad port", "postgres://carewatch:s3cr3t-pw@db.example:port/cms"},
		{"key=value pairs with a stray word", "host=db.example user=carewatch password=s3cr3t pw dbname=cms"},
		{"a bad parameter value", "host=db.example password=s3cr3t-pw sslmode=s3cr3t-mode"},
		{"an unterminated quote", "host=db.example password='s3cr3t-pw"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" fails without quoting the secret", func(t *testing.T) {
			_, err := collector.ConnectSQL(t.Context(), &config.SourceConfig{Name: "cms"}, tt.dsn)
			if err == nil {
				t.Fatal("OpenSQL succeeded")
			}
			if !strings.HasPrefix(err.Error(), `source "cms": the DSN is not valid`) {
				t.Errorf("error %q does not say the DSN is not valid", err)
			}
			for _, secret := range []string{"s3cr3t", "pw"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q quotes %q", err, secret)
				}
			}
		})
	}
}

func TestSQLSourceWithAScheduler(t *testing.T) {
	// The pieces meet as cmd will wire them: a job whose run collects.
	dsn := sourceDB(t)
	cc := sqlCollector(`SELECT service, team, cases AS caseload FROM team_caseload`)
	s := openSource(t, dsn, &config.SourceConfig{Name: "cms"}, cc)
	var got []kpi.Observation
	sched := collector.NewScheduler(london(t), nil, []collector.Job{{
		Name: cc.Name, Timeout: 10 * time.Second,
		Run: func(ctx context.Context, _ int) error {
			obs, err := s.Collect(ctx, kpi.RunInfo{Collector: cc.Name, At: time.Now(), Location: london(t)})
			got = obs
			return err
		},
	}})
	if err := sched.RunNow(t.Context(), cc.Name); err != nil {
		t.Fatalf("RunNow: %v", err)
	}
	if len(got) != 3 {
		t.Errorf("got %d observations, want 3", len(got))
	}
	if err := sched.Stop(t.Context()); err != nil {
		t.Error(err)
	}
}
