package collector

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// ApplicationName is the application_name every SQL source connection
// carries, so that a source's DBA can see carewatch in pg_stat_activity.
const ApplicationName = "carewatch"

// Defaults for a SQL source whose config is silent. The pool is small on
// purpose: a KPI query is heavy, and the source is someone else's database.
const (
	// DefaultSQLMaxOpenConns is the size of a source's connection pool.
	DefaultSQLMaxOpenConns = 2
	// DefaultSQLConnMaxLifetime is how long a source connection is reused.
	DefaultSQLConnMaxLifetime = 30 * time.Minute
	// DefaultSQLStatementTimeout bounds one query on the source's server.
	DefaultSQLStatementTimeout = 30 * time.Second
	// SQLConnMaxIdleTime closes a connection left idle this long: most
	// collectors run hourly or daily, and an idle session between runs
	// would only hold a slot on the source.
	SQLConnMaxIdleTime = 5 * time.Minute
)

// OpenSQL sets up a connection pool for a PostgreSQL source without
// connecting: a source that is down fails its collectors' runs, not the
// daemon's start. dsn may be a postgres:// URL or key=value pairs; its
// application_name is always ApplicationName. Errors never quote the DSN,
// which holds a password.
func OpenSQL(src *config.SourceConfig, dsn string) (*sqlx.DB, error) {
	db, _, err := openSQL(src, dsn)
	return db, err
}

// ConnectSQL is OpenSQL followed by a ping within ctx, for checks that must
// know the source answers.
func ConnectSQL(ctx context.Context, src *config.SourceConfig, dsn string) (*sqlx.DB, error) {
	db, password, err := openSQL(src, dsn)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("source %q: cannot connect: %w", src.Name, redactPassword(err, password))
	}
	return db, nil
}

func openSQL(src *config.SourceConfig, dsn string) (*sqlx.DB, string, error) {
	if src == nil {
		return nil, "", errors.New("sql source: no source config")
	}
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return nil, "", fmt.Errorf("source %q: the DSN is not valid: %s", src.Name, redactDSN(err.Error(), dsn))
	}
	cfg.ApplicationName = ApplicationName
	connector, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("source %q: %w", src.Name, redactPassword(err, cfg.Password))
	}
	db := sqlx.NewDb(sql.OpenDB(connector), "postgres")
	conns := src.MaxOpenConns
	if conns <= 0 {
		conns = DefaultSQLMaxOpenConns
	}
	lifetime := time.Duration(src.ConnMaxLifetime)
	if lifetime <= 0 {
		lifetime = DefaultSQLConnMaxLifetime
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(lifetime)
	db.SetConnMaxIdleTime(SQLConnMaxIdleTime)
	return db, cfg.Password, nil
}

// SQLSource is a collector's query on a PostgreSQL source. It implements
// kpi.Source.
type SQLSource struct {
	collector        string
	source           string
	query            string
	statementTimeout time.Duration
	db               *sqlx.DB
	mapper           *Mapper

	// mu serialises runs, since the Mapper serves one run at a time.
	mu sync.Mutex
}

var _ kpi.Source = (*SQLSource)(nil)

// NewSQLSource returns the source of the collector called name (cc.Name if
// empty), running cc.Query on db, opened from src by OpenSQL, and mapping its
// rows with m.
func NewSQLSource(name string, cc *config.CollectorConfig, src *config.SourceConfig, db *sqlx.DB, m *Mapper) *SQLSource {
	if name == "" {
		name = cc.Name
	}
	timeout := time.Duration(src.StatementTimeout)
	if timeout <= 0 {
		timeout = DefaultSQLStatementTimeout
	}
	return &SQLSource{
		collector:        name,
		source:           src.Name,
		query:            cc.Query,
		statementTimeout: timeout,
		db:               db,
		mapper:           m,
	}
}

// Describe returns the source's name and the query it runs, for the run record.
func (s *SQLSource) Describe() (source, query string) { return s.source, s.query }

// Collect runs the query in a READ ONLY transaction under a statement
// timeout no longer than ctx allows, maps every row, and rolls back.
// Errors that retrying cannot mend (a syntax error, a write refused by the
// read-only transaction, a row that does not map) are marked Permanent.
func (s *SQLSource) Collect(ctx context.Context, run kpi.RunInfo) ([]kpi.Observation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	obs, err := s.collect(ctx, run)
	if err != nil {
		if IsPermanent(err) {
			return nil, err
		}
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w: %w", ctxErr, err)
		}
		err = fmt.Errorf("collector %q: source %q: %w", s.collector, s.source, err)
		if permanentSQL(err) {
			err = Permanent(err)
		}
		return nil, err
	}
	return obs, nil
}

func (s *SQLSource) collect(ctx context.Context, run kpi.RunInfo) ([]kpi.Observation, error) {
	timeout := s.statementTimeout
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return nil, fmt.Errorf("no time left to run the query: %w", context.DeadlineExceeded)
		}
		// Let the server end the statement a little before the deadline, so
		// that the error says the statement timed out and the connection
		// stays usable, rather than the driver cancelling it.
		timeout = min(timeout, left-min(left/10, time.Second))
	}
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("begin read-only transaction: %w", err)
	}
	// The transaction is read only: rolling back is how it ends.
	defer func() { _ = tx.Rollback() }()

	ms := max(timeout.Milliseconds(), 1)
	if _, err := tx.ExecContext(ctx, "SELECT set_config('statement_timeout', $1, true)", strconv.FormatInt(ms, 10)+"ms"); err != nil {
		return nil, fmt.Errorf("set statement_timeout: %w", err)
	}
	// Preparing the query makes PostgreSQL take it as a single statement
	// (extended protocol): "COMMIT; INSERT ..." cannot slip out of the
	// read-only transaction.
	stmt, err := tx.PrepareContext(ctx, s.query)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	defer func() { _ = stmt.Close() }()
	rows, err := stmt.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	defer func() { _ = rows.Close() }()
	columns, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	if err := s.mapper.Bind(columns); err != nil {
		return nil, Permanent(err)
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	// The Mapper reads a time without a zone as a local date or time. lib/pq
	// gives a TIMESTAMPTZ such a zone when it cannot load the session's
	// TimeZone, so those values are pinned to UTC: they are instants.
	instant := make([]bool, len(types))
	for i, ct := range types {
		instant[i] = ct.DatabaseTypeName() == "TIMESTAMPTZ"
	}
	values := make([]any, len(columns))
	dest := make([]any, len(columns))
	for i := range values {
		dest[i] = &values[i]
	}
	var obs []kpi.Observation
	for n := 1; rows.Next(); n++ {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("row %d: %w", n, err)
		}
		for i, v := range values {
			if t, ok := v.(time.Time); ok && instant[i] {
				values[i] = t.UTC()
			}
		}
		o, err := s.mapper.Map(n, values, run)
		if err != nil {
			return nil, Permanent(err)
		}
		obs = append(obs, o...)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return obs, nil
}

// permanentSQL reports whether err is a PostgreSQL error that the same query
// would meet again at once: a syntax or access rule error (class 42), a data
// exception such as a division by zero (class 22), a feature not supported
// (0A), or a write refused by the read-only transaction.
func permanentSQL(err error) bool {
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) {
		return false
	}
	code := string(pqErr.Code)
	switch {
	case code == "25006": // read_only_sql_transaction
		return true
	case strings.HasPrefix(code, "42"), strings.HasPrefix(code, "22"), strings.HasPrefix(code, "0A"):
		return true
	}
	return false
}

// redactPassword keeps err (for errors.Is) but takes the password out of its
// message, should a driver ever quote it.
func redactPassword(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), password, "[redacted]"), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// dsnKeywords are the connection parameter names that may stay in a message
// about a DSN that does not parse; any other fragment of the DSN (a host, a
// user, a password) is taken out.
var dsnKeywords = map[string]bool{
	"postgres": true, "postgresql": true, "host": true, "hostaddr": true, "port": true,
	"dbname": true, "user": true, "password": true, "passfile": true, "sslmode": true,
	"sslcert": true, "sslkey": true, "sslrootcert": true, "sslnegotiation": true,
	"sslsni": true, "connect_timeout": true, "application_name": true,
	"fallback_application_name": true, "options": true, "service": true,
	"target_session_attrs": true, "load_balance_hosts": true, "client_encoding": true,
	"datestyle": true, "disable": true, "require": true, "prefer": true, "allow": true,
	"verify-ca": true, "verify-full": true, "min_protocol_version": true, "max_protocol_version": true,
	"ssl_min_protocol_version": true, "ssl_max_protocol_version": true,
}

// redactDSN takes out of msg every fragment of dsn that is not a parameter name.
func redactDSN(msg, dsn string) string {
	fields := strings.FieldsFunc(dsn, func(r rune) bool {
		return strings.ContainsRune(" \t\r\n='\"\\:@/?&,", r)
	})
	// Longest first, so that a fragment inside another is not left behind.
	slices.SortFunc(fields, func(a, b string) int { return len(b) - len(a) })
	for _, f := range fields {
		if len(f) < 2 || dsnKeywords[strings.ToLower(f)] {
			continue
		}
		msg = strings.ReplaceAll(msg, f, "[redacted]")
	}
	return msg
}
