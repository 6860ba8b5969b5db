package collector

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	mssql "github.com/microsoft/go-mssqldb"
	"github.com/microsoft/go-mssqldb/msdsn"

	"github.com/carewatch/carewatch/internal/sqlbound"
)

// sqlServerDialect is SQL Server's. T-SQL has no read-only transaction and
// no server-side statement timeout, so carewatch does what it can from the
// client and says what the login must add:
//
//   - the query runs in a transaction that is always rolled back, with
//     SET LOCK_TIMEOUT at the statement timeout; what makes the session
//     read-only is the login, which should be a member of db_datareader and
//     nothing else (and a DSN with ApplicationIntent=ReadOnly sends it to a
//     readable secondary of an availability group, where there is one);
//   - the statement timeout is the query's context: at its end the driver
//     sends the server an attention, which stops the query;
//   - a query holding a ; before another statement, or a GO line, is refused
//     before it is sent (a batch may hold several statements);
//   - the connection's app name is carewatch (sys.dm_exec_sessions.program_name);
//   - connecting is bounded by a connect timeout, and every wait on the
//     server by its context (package sqlbound): a query whose context ends
//     has sqlServerCancelGrace for the server to confirm the attention
//     before its connection is closed.
var sqlServerDialect = sqlDialect{
	driverName: "sqlserver",
	connector: func(dsn string, o sqlbound.Options) (driver.Connector, string, error) {
		cfg, err := sqlServerConfig(dsn)
		if err != nil {
			return nil, "", err
		}
		// The driver reads its start-up exchange with no deadline, and
		// waits for the answer to an attention: both are bounded here. Its
		// "connection timeout", when set, bounds connecting as in ADO.
		o.CancelGrace = sqlServerCancelGrace
		if cfg.ConnTimeout > 0 {
			o.ConnectTimeout = cfg.ConnTimeout
		}
		connect := func(ctx context.Context, d *sqlbound.Dialer) (driver.Conn, error) {
			c := mssql.NewConnectorConfig(cfg)
			c.Dialer = d
			return c.Connect(ctx)
		}
		return sqlbound.NewConnector(connect, mssql.NewConnectorConfig(cfg).Driver(), o), cfg.Password, nil
	},
	begin: func(ctx context.Context, db *sqlx.DB, timeout time.Duration) (*sqlx.Tx, error) {
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("begin transaction: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "SET LOCK_TIMEOUT "+strconv.FormatInt(max(timeout.Milliseconds(), 1), 10)); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("set LOCK_TIMEOUT: %w", err)
		}
		return tx, nil
	},
	clientTimeout: true,
	checkQuery:    oneTSQLStatement,
	permanent:     permanentSQLServer,
	fixTime:       sqlServerTime,
}

// sqlServerCancelGrace is how long a statement whose context ended waits
// for the server to confirm the attention that stops it, so that a healthy
// server stops the query and the connection stays usable; a server that
// does not answer has its connection closed then.
const sqlServerCancelGrace = time.Second

// sqlServerConfig reads a SQL Server DSN (sqlserver://user:password@host/instance?database=db,
// or ADO's server=...;user id=...;password=...) and names carewatch as the
// application, whatever the DSN says. Errors never quote the DSN.
func sqlServerConfig(dsn string) (msdsn.Config, error) {
	cfg, err := msdsn.Parse(dsn)
	if err != nil {
		return msdsn.Config{}, fmt.Errorf("the DSN is not valid: %s", redactDSN(err.Error(), dsn))
	}
	cfg.AppName = ApplicationName
	return cfg, nil
}

// goLine is T-SQL's batch separator: a tool's, not the server's.
var goLine = regexp.MustCompile(`(?im)^\s*GO\s*(\d+\s*)?$`)

// oneTSQLStatement refuses a batch that visibly holds more than one
// statement.
func oneTSQLStatement(q string) error {
	if goLine.MatchString(q) {
		return errors.New("give one statement: GO separates batches in a query tool, not in a query")
	}
	return oneStatement(q)
}

// sqlServerPermanent are SQL Server error numbers that the same query would
// meet again at once.
var sqlServerPermanent = map[int32]bool{
	102:  true, // incorrect syntax
	156:  true, // incorrect syntax near a keyword
	207:  true, // invalid column name
	208:  true, // invalid object name
	229:  true, // permission denied on an object
	230:  true, // permission denied on a column
	245:  true, // conversion failed
	262:  true, // permission denied in the database
	3906: true, // the database is read-only
	8115: true, // arithmetic overflow
	8134: true, // divide by zero
}

func permanentSQLServer(err error) bool {
	var me mssql.Error
	if errors.As(err, &me) {
		return sqlServerPermanent[me.Number]
	}
	var pe *mssql.Error
	return errors.As(err, &pe) && sqlServerPermanent[pe.Number]
}

// sqlServerTime reads the driver's times: a DATETIMEOFFSET is an instant;
// DATE, DATETIME, DATETIME2 and SMALLDATETIME have no zone (the driver puts
// them in UTC), so they become calendar values for the Mapper to read in
// the run's time zone, as PostgreSQL's DATE is.
func sqlServerTime(dbType string, t time.Time) time.Time {
	if dbType == "DATETIMEOFFSET" {
		return t
	}
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return time.Date(y, mo, d, h, mi, s, t.Nanosecond(), time.FixedZone("", 0))
}
