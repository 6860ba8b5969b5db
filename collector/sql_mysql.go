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

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/carewatch/carewatch/internal/sqlbound"
)

// mysqlDialect is MySQL's and MariaDB's: START TRANSACTION READ ONLY, in
// which the server refuses every write to a table (error 1792), with the
// session's statement timeout set before each run: max_statement_time
// (seconds) on MariaDB, max_execution_time (milliseconds, SELECT only) on
// MySQL. The connection carries program_name=carewatch as a connection
// attribute, never allows several statements in one query, and is bounded
// by package sqlbound.
var mysqlDialect = sqlDialect{
	driverName: "mysql",
	connector: func(dsn string, o sqlbound.Options) (driver.Connector, string, error) {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, "", fmt.Errorf("the DSN is not valid: %s", redactDSN(err.Error(), dsn))
		}
		// What the DSN cannot change: one statement per query, no file read
		// from the client by LOAD DATA LOCAL, and dates as the server writes
		// them (2025-09-30), for the Mapper to read in the run's time zone
		// rather than as UTC instants.
		cfg.MultiStatements = false
		cfg.AllowAllFiles = false
		cfg.ParseTime = false
		attrs := "program_name:" + ApplicationName
		if cfg.ConnectionAttributes != "" {
			attrs = cfg.ConnectionAttributes + "," + attrs
		}
		cfg.ConnectionAttributes = attrs
		// Every error the driver meets comes back to the run, which logs it
		// naming the collector; the driver's own log is unstructured text
		// on stderr.
		cfg.Logger = &mysql.NopLogger{}
		// Connecting is bounded by the DSN's timeout (the driver's own
		// bounds only dialling), and every later wait by its context.
		if cfg.Timeout > 0 {
			o.ConnectTimeout = cfg.Timeout
		}
		cfg.Timeout = o.ConnectTimeout
		if _, err := mysql.NewConnector(cfg.Clone()); err != nil {
			return nil, "", redactPassword(err, cfg.Passwd)
		}
		connect := func(ctx context.Context, d *sqlbound.Dialer) (driver.Conn, error) {
			c := cfg.Clone()
			c.DialFunc = d.DialContext
			mc, err := mysql.NewConnector(c)
			if err != nil {
				return nil, err
			}
			return mc.Connect(ctx)
		}
		return sqlbound.NewConnector(connect, &mysql.MySQLDriver{}, o), cfg.Passwd, nil
	},
	begin: func(ctx context.Context, db *sqlx.DB, timeout time.Duration) (*sqlx.Tx, error) {
		tx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("begin read-only transaction: %w", err)
		}
		var version string
		if err := tx.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("server version: %w", err)
		}
		set := "SET SESSION max_execution_time = " + strconv.FormatInt(max(timeout.Milliseconds(), 1), 10)
		if strings.Contains(strings.ToLower(version), "mariadb") {
			set = "SET SESSION max_statement_time = " + strconv.FormatFloat(max(timeout.Seconds(), 0.001), 'f', 3, 64)
		}
		if _, err := tx.ExecContext(ctx, set); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("set the statement timeout: %w", err)
		}
		return tx, nil
	},
	permanent: permanentMySQL,
	// With parseTime off the driver gives dates as text; a time.Time comes
	// only from a DSN's own choices, and is an instant.
	fixTime: func(_ string, t time.Time) time.Time { return t },
}

// mysqlPermanent are MySQL and MariaDB error numbers that the same query
// would meet again at once.
var mysqlPermanent = map[uint16]bool{
	1064: true, // syntax error
	1054: true, // unknown column
	1146: true, // no such table
	1049: true, // unknown database
	1305: true, // no such function
	1142: true, // command denied on a table
	1143: true, // command denied on a column
	1044: true, // access denied to a database
	1792: true, // a write in a READ ONLY transaction
	1290: true, // the server runs with --read-only
	1055: true, // not in GROUP BY
	1111: true, // invalid use of a group function
	1241: true, // operand should contain N columns
	1242: true, // subquery returns more than one row
	1365: true, // division by zero (strict mode)
	1292: true, // incorrect value
	1366: true, // incorrect value for a column
}

func permanentMySQL(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && mysqlPermanent[me.Number]
}
