package dashboards_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/store"
)

// readerScript is the SQL the Compose stack's store runs, on first start, to
// create the role Grafana's PostgreSQL datasource logs in as.
const readerScript = "../deploy/compose/postgres/initdb/reader.psql"

// psqlVar matches psql's variable interpolations :'name' (a literal) and
// :"name" (an identifier).
var psqlVar = regexp.MustCompile(`:'([A-Za-z_][A-Za-z0-9_]*)'|:"([A-Za-z_][A-Za-z0-9_]*)"`)

// runPsqlScript runs a psql script with variables on db, interpolating
// them as psql -v does. The script must use nothing but SQL and these
// interpolations: no backslash commands.
func runPsqlScript(ctx context.Context, db *sqlx.DB, file string, vars map[string]string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), `\`) {
			return fmt.Errorf("%s: psql meta-command %q: keep the script plain SQL", file, line)
		}
	}
	var missing []string
	sql := psqlVar.ReplaceAllStringFunc(string(data), func(m string) string {
		sm := psqlVar.FindStringSubmatch(m)
		if sm[1] != "" {
			v, ok := vars[sm[1]]
			if !ok {
				missing = append(missing, sm[1])
			}
			return pq.QuoteLiteral(v)
		}
		v, ok := vars[sm[2]]
		if !ok {
			missing = append(missing, sm[2])
		}
		return pq.QuoteIdentifier(v)
	})
	if len(missing) > 0 {
		return fmt.Errorf("%s: variables %v not given", file, missing)
	}
	if _, err := db.ExecContext(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// storeWithReader is a migrated store and a connection to it as the
// read-only role the Compose stack gives Grafana.
type storeWithReader struct {
	dsn       string // the owner's: carewatch's store DSN
	owner     *sqlx.DB
	reader    *sqlx.DB
	readerDSN string
}

// newStoreWithReader creates an empty database, runs the Compose stack's
// reader script on it as the Compose stack would (before carewatch's first
// migration), then migrates it as carewatch does, and connects as the
// reader.
func newStoreWithReader(t *testing.T) *storeWithReader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn := pgtest.NewDatabase(t)
	owner, err := sqlx.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Close() })

	var b [6]byte
	_, _ = rand.Read(b[:])
	role := "grafana_reader_" + hex.EncodeToString(b[:])
	password := hex.EncodeToString(b[:]) + "pw"
	var ownerRole, database string
	if err := owner.QueryRowxContext(ctx, `SELECT current_user, current_database()`).Scan(&ownerRole, &database); err != nil {
		t.Fatal(err)
	}
	if err := runPsqlScript(ctx, owner, readerScript, map[string]string{
		"reader": role, "reader_password": password, "owner": ownerRole, "database": database,
	}); err != nil {
		t.Fatal(err)
	}
	// Roles belong to the server, not the database: drop this one before
	// pgtest drops the database (cleanups run last first).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, stmt := range []string{"DROP OWNED BY " + pq.QuoteIdentifier(role), "DROP ROLE " + pq.QuoteIdentifier(role)} {
			if _, err := owner.ExecContext(ctx, stmt); err != nil {
				t.Errorf("%s: %v", stmt, err)
			}
		}
	})

	st, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, password)
	reader, err := sqlx.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	return &storeWithReader{dsn: dsn, owner: owner, reader: reader, readerDSN: u.String()}
}

// sqlQuery returns a panel's SQL as Grafana sends it for the time range
// [from, to], with the plausible variable values.
func sqlQuery(q query, from, to time.Time) (string, error) {
	s, err := interpolate(q.target.RawSQL, "sql", plausibleValues)
	if err != nil {
		return "", err
	}
	return expandSQLMacros(s, from, to)
}

func TestSQLQueriesRunOnTheStoreAsTheGrafanaRole(t *testing.T) {
	s := newStoreWithReader(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	to := time.Now()
	from := to.AddDate(-10, 0, 0)
	n := 0
	for _, q := range queries(loadDashboards(t)) {
		if q.dsType != postgresType {
			continue
		}
		n++
		t.Run(q.String(), func(t *testing.T) {
			if q.target.Format != "table" && q.target.Format != "time_series" {
				t.Errorf("format %q: want table or time_series", q.target.Format)
			}
			for _, v := range plainRefs(q.target.RawSQL) {
				if dv := q.dashboard.variable(v); dv != nil && dv.Multi && q.panel.Repeat != v {
					t.Errorf("$%s is referred to without a format: use ${%s:sqlstring}", v, v)
				}
			}
			sql, err := sqlQuery(q, from, to)
			if err != nil {
				t.Fatal(err)
			}
			// EXPLAIN plans the query without running it: every table, view,
			// column and function must exist, and the reader must be allowed
			// to read them.
			if _, err := s.reader.ExecContext(ctx, "EXPLAIN "+sql); err != nil {
				t.Fatalf("PostgreSQL refuses the query: %v\n%s", err, sql)
			}
			rows, err := s.reader.QueryxContext(ctx, sql)
			if err != nil {
				t.Fatalf("running the query on an empty store: %v", err)
			}
			defer rows.Close()
			cols, err := rows.Columns()
			if err != nil {
				t.Fatal(err)
			}
			if q.target.Format == "time_series" && (len(cols) < 2 || cols[0] != "time") {
				t.Errorf("a time series query's first column must be time, got %v", cols)
			}
			for rows.Next() {
			}
			if err := rows.Err(); err != nil {
				t.Errorf("running the query on an empty store: %v", err)
			}
		})
	}
	if n == 0 {
		t.Fatal("no SQL query found")
	}
}

func TestTheGrafanaRoleCanOnlyRead(t *testing.T) {
	s := newStoreWithReader(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range []struct {
		name, sql string
		allowed   bool
	}{
		{"reads a view", `SELECT count(*) FROM kpi_latest`, true},
		{"reads a table", `SELECT count(*) FROM runs`, true},
		{"cannot insert", `INSERT INTO kpis (name, metric, help, unit, direction, labels, updated_at) VALUES ('x', 'carewatch_x', 'x', 'x', 'lower_is_better', '{}', now())`, false},
		{"cannot delete", `DELETE FROM runs`, false},
		{"cannot create a table", `CREATE TABLE grafana_scratch (x int)`, false},
		// A session may turn its read-only default off; its privileges still
		// stop it.
		{"cannot write after leaving read-only mode", `SET default_transaction_read_only = off; DELETE FROM runs`, false},
		{"cannot create after leaving read-only mode", `SET default_transaction_read_only = off; CREATE TABLE grafana_scratch (x int)`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A connection of its own, closed after: a SET must not leak
			// into the other cases through the pool.
			db, err := sqlx.Open("postgres", s.readerDSN)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			_, err = db.ExecContext(ctx, c.sql)
			if c.allowed && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !c.allowed && err == nil {
				t.Error("allowed")
			}
		})
	}
	t.Run("its sessions are read-only and time-limited, and compile no query", func(t *testing.T) {
		var ro, timeout, jit string
		if err := s.reader.QueryRowxContext(ctx, `SELECT current_setting('default_transaction_read_only'), current_setting('statement_timeout'), current_setting('jit')`).Scan(&ro, &timeout, &jit); err != nil {
			t.Fatal(err)
		}
		if ro != "on" || timeout == "0" || jit != "off" {
			t.Errorf("default_transaction_read_only = %s, statement_timeout = %s, jit = %s", ro, timeout, jit)
		}
	})
}
