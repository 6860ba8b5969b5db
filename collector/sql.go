package collector

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/internal/sqlbound"
	"github.com/carewatch/carewatch/kpi"
)

// ApplicationName is the name every SQL source connection gives the
// server, so that a source's DBA can see carewatch: application_name in
// PostgreSQL's pg_stat_activity, the app name in SQL Server's
// sys.dm_exec_sessions, the program_name connection attribute in MySQL's and
// MariaDB's performance_schema.session_connect_attrs.
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
	// DefaultSQLConnectTimeout bounds opening a connection to a source
	// whose DSN sets no connect timeout.
	DefaultSQLConnectTimeout = 10 * time.Second
	// SQLConnMaxIdleTime closes a connection left idle this long: most
	// collectors run hourly or daily, and an idle session between runs
	// would only hold a slot on the source.
	SQLConnMaxIdleTime = 5 * time.Minute
)

// sqlDialect is what differs between the SQL servers a source may be; one
// file per dialect (sql_postgres.go, sql_mysql.go, sql_sqlserver.go) holds
// its value. Everything else, from the pool to the mapping, is shared.
type sqlDialect struct {
	// driverName is sqlx's name for the dialect's placeholders.
	driverName string
	// connector parses dsn and returns a connector that names carewatch to
	// the server, whose connections are bounded by o (package sqlbound;
	// a connect timeout the DSN sets takes the place of o's), and the
	// password, so that errors never quote it.
	connector func(dsn string, o sqlbound.Options) (c driver.Connector, password string, err error)
	// begin starts the run's session: read-only where the dialect can say so,
	// with the server ending a statement after timeout.
	begin func(ctx context.Context, db *sqlx.DB, timeout time.Duration) (*sqlx.Tx, error)
	// clientTimeout says that the server has no statement timeout of its own:
	// the query runs under a context cut at the timeout, whose end the driver
	// sends to the server to stop it.
	clientTimeout bool
	// checkQuery refuses a query before it is sent, when the server cannot.
	checkQuery func(query string) error
	// permanent reports a server error that the same query would meet again.
	permanent func(err error) bool
	// fixTime makes a time value of a column of database type dbType what
	// the Mapper expects: an instant keeps a zone, a calendar date or time
	// has the unnamed zero-offset zone.
	fixTime func(dbType string, t time.Time) time.Time
}

// dialectOf returns the dialect of a SQL source type.
func dialectOf(typ string) (*sqlDialect, error) {
	switch typ {
	case config.SourcePostgres:
		return &postgresDialect, nil
	case config.SourceMySQL, config.SourceMariaDB:
		return &mysqlDialect, nil
	case config.SourceSQLServer:
		return &sqlServerDialect, nil
	}
	return nil, fmt.Errorf("%q is not a SQL source type", typ)
}

// OpenSQL sets up a connection pool for a SQL source (PostgreSQL,
// MySQL/MariaDB or SQL Server, by src.Type) without connecting: a source
// that is down fails its collectors' runs, not the daemon's start. The
// connection always names itself ApplicationName. Errors never quote the
// DSN, which holds a password.
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
	set, err := sqlSettingsOf(src)
	if err != nil {
		return nil, "", err
	}
	connector, password, err := set.dialect.connector(dsn, sqlbound.Options{ConnectTimeout: DefaultSQLConnectTimeout})
	if err != nil {
		return nil, "", fmt.Errorf("source %q: %w", src.Name, err)
	}
	db := sqlx.NewDb(sql.OpenDB(connector), set.dialect.driverName)
	db.SetMaxOpenConns(set.maxOpenConns)
	db.SetMaxIdleConns(set.maxOpenConns)
	db.SetConnMaxLifetime(set.connMaxLifetime)
	db.SetConnMaxIdleTime(SQLConnMaxIdleTime)
	return db, password, nil
}

// sqlSettings are a SQL source's settings, its config's or the defaults.
type sqlSettings struct {
	dialect          *sqlDialect
	maxOpenConns     int
	connMaxLifetime  time.Duration
	statementTimeout time.Duration
}

// sqlSettingsOf sets the defaults of a SQL source whose config is silent:
// the one place they are set.
func sqlSettingsOf(src *config.SourceConfig) (sqlSettings, error) {
	typ := src.Type
	if typ == "" {
		typ = config.SourcePostgres
	}
	d, err := dialectOf(typ)
	if err != nil {
		return sqlSettings{}, fmt.Errorf("source %q: %w", src.Name, err)
	}
	set := sqlSettings{
		dialect:          d,
		maxOpenConns:     src.MaxOpenConns,
		connMaxLifetime:  time.Duration(src.ConnMaxLifetime),
		statementTimeout: time.Duration(src.StatementTimeout),
	}
	if set.maxOpenConns <= 0 {
		set.maxOpenConns = DefaultSQLMaxOpenConns
	}
	if set.connMaxLifetime <= 0 {
		set.connMaxLifetime = DefaultSQLConnMaxLifetime
	}
	if set.statementTimeout <= 0 {
		set.statementTimeout = DefaultSQLStatementTimeout
	}
	return set, nil
}

// SQLSource is a collector's query on a SQL source. It implements
// kpi.Source.
type SQLSource struct {
	collector string
	source    string
	query     string
	// bound is query with its named parameters in the dialect's form, and
	// params their names in order.
	bound            string
	params           []string
	statementTimeout time.Duration
	dialect          *sqlDialect
	db               *sqlx.DB
	mapper           *Mapper
}

var _ kpi.Source = (*SQLSource)(nil)

// SQLSourceOptions is what a SQL source is built from.
type SQLSourceOptions struct {
	// Collector is the collector's config, whose query the source runs.
	Collector *config.CollectorConfig
	// Source is the SQL source's config: its type and statement timeout.
	Source *config.SourceConfig
	// DB is the source's connection pool, opened from Source by OpenSQL.
	DB *sqlx.DB
	// Mapper maps the query's rows.
	Mapper *Mapper
	// Name names the collector in errors; Collector.Name when empty.
	Name string
}

// NewSQLSource returns the source that runs o.Collector's query on o.DB and
// maps its rows with o.Mapper.
func NewSQLSource(o SQLSourceOptions) (*SQLSource, error) {
	if o.Collector == nil || o.Source == nil || o.DB == nil || o.Mapper == nil {
		return nil, errors.New("sql source: the collector, source, pool and mapper are all needed")
	}
	name := o.Name
	if name == "" {
		name = o.Collector.Name
	}
	set, err := sqlSettingsOf(o.Source)
	if err != nil {
		return nil, fmt.Errorf("collector %q: %w", name, err)
	}
	bound, params := bindPeriods(o.Collector.Query, sqlx.BindType(set.dialect.driverName))
	return &SQLSource{
		collector:        name,
		source:           o.Source.Name,
		query:            o.Collector.Query,
		bound:            bound,
		params:           params,
		statementTimeout: set.statementTimeout,
		dialect:          set.dialect,
		db:               o.DB,
		mapper:           o.Mapper,
	}, nil
}

// Describe returns the source's name and the query it runs, for the run record.
func (s *SQLSource) Describe() (source, query string) { return s.source, s.query }

// Collect runs the query in the dialect's read-only session under a
// statement timeout no longer than ctx allows, maps every row, and rolls
// back. Errors that retrying cannot mend (a syntax error, a write refused by
// the read-only session, a row that does not map) are marked Permanent.
func (s *SQLSource) Collect(ctx context.Context, run kpi.RunInfo) ([]kpi.Observation, error) {
	obs, err := s.collect(ctx, run)
	if err != nil {
		return nil, sourceError(ctx, s.collector, s.source, err, s.dialect.permanent)
	}
	return obs, nil
}

func (s *SQLSource) collect(ctx context.Context, run kpi.RunInfo) ([]kpi.Observation, error) {
	if s.dialect.checkQuery != nil {
		if err := s.dialect.checkQuery(s.query); err != nil {
			return nil, Permanent(fmt.Errorf("query: %w", err))
		}
	}
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
	run.Provenance.Add(kpi.Read{Kind: kpi.ReadSQL, Name: s.query})
	tx, err := s.dialect.begin(ctx, s.db, timeout)
	if err != nil {
		return nil, err
	}
	// The session is read only, or must be treated as such: rolling back is
	// how it ends.
	defer func() { _ = tx.Rollback() }()

	qctx := ctx
	if s.dialect.clientTimeout {
		var cancel context.CancelFunc
		qctx, cancel = context.WithTimeoutCause(ctx, timeout, errStatementTimeout)
		defer cancel()
	}
	// Preparing the query makes PostgreSQL and MySQL take it as a single
	// statement: "COMMIT; INSERT ..." cannot slip out of the read-only
	// transaction.
	stmt, err := tx.PrepareContext(qctx, s.bound)
	if err != nil {
		return nil, queryErr(qctx, err)
	}
	defer func() { _ = stmt.Close() }()
	rows, err := stmt.QueryContext(qctx, periodArgs(s.params, run)...)
	if err != nil {
		return nil, queryErr(qctx, err)
	}
	defer func() { _ = rows.Close() }()
	columns, err := rows.Columns()
	if err != nil {
		return nil, queryErr(qctx, err)
	}
	mr := s.mapper.NewRun()
	if err := mr.Bind("", columns); err != nil {
		return nil, &mappingError{err}
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, queryErr(qctx, err)
	}
	dbTypes := make([]string, len(types))
	for i, ct := range types {
		dbTypes[i] = strings.ToUpper(ct.DatabaseTypeName())
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
			if t, ok := v.(time.Time); ok {
				values[i] = s.dialect.fixTime(dbTypes[i], t)
			}
		}
		o, err := mr.Map("row "+strconv.Itoa(n), values, run)
		if err != nil {
			return nil, &mappingError{err}
		}
		obs = append(obs, o...)
	}
	if err := rows.Err(); err != nil {
		return nil, queryErr(qctx, err)
	}
	return obs, nil
}

// errStatementTimeout ends a query that a dialect bounds from the client.
var errStatementTimeout = errors.New("the statement timed out (statement_timeout)")

// queryErr wraps an error of the query, saying so when the client ended it
// at the statement timeout.
func queryErr(qctx context.Context, err error) error {
	if cause := context.Cause(qctx); errors.Is(cause, errStatementTimeout) {
		return fmt.Errorf("query: %w: %w", cause, err)
	}
	return fmt.Errorf("query: %w", err)
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
