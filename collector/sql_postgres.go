package collector

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/carewatch/carewatch/internal/pgbound"
	"github.com/carewatch/carewatch/internal/sqlbound"
)

// postgresDialect is PostgreSQL's: a READ ONLY transaction, which refuses
// every write, with statement_timeout set for it alone (set_config's
// is_local), and application_name set on the connection.
var postgresDialect = sqlDialect{
	driverName: "postgres",
	connector: func(dsn string, o sqlbound.Options) (driver.Connector, string, error) {
		cfg, err := pq.NewConfig(dsn)
		if err != nil {
			return nil, "", fmt.Errorf("the DSN is not valid: %s", redactDSN(err.Error(), dsn))
		}
		cfg.ApplicationName = ApplicationName
		// Bounded connections: a source that stops answering fails its run
		// at the run's deadline instead of holding it for ever.
		return pgbound.NewConnector(cfg, o), cfg.Password, nil
	},
	begin: func(ctx context.Context, db *sqlx.DB, timeout time.Duration) (*sqlx.Tx, error) {
		tx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("begin read-only transaction: %w", err)
		}
		ms := max(timeout.Milliseconds(), 1)
		if _, err := tx.ExecContext(ctx, "SELECT set_config('statement_timeout', $1, true)", strconv.FormatInt(ms, 10)+"ms"); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("set statement_timeout: %w", err)
		}
		return tx, nil
	},
	permanent: permanentPostgres,
	// lib/pq gives DATE and TIMESTAMP the unnamed zero-offset zone the
	// Mapper reads as local calendar values; a TIMESTAMPTZ, when lib/pq
	// cannot load the session's TimeZone, may come the same way, so those
	// are pinned to UTC: they are instants.
	fixTime: func(dbType string, t time.Time) time.Time {
		if dbType == "TIMESTAMPTZ" {
			return t.UTC()
		}
		return t
	},
}

// permanentPostgres reports whether err is a PostgreSQL error that the same
// query would meet again at once: a syntax or access rule error (class 42),
// a data exception such as a division by zero (class 22), a feature not
// supported (0A), or a write refused by the read-only transaction.
func permanentPostgres(err error) bool {
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

// redactDSN takes out of msg every fragment of dsn that is not a parameter
// name.
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
