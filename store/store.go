// Package store is carewatch's system of record: a PostgreSQL database that
// keeps the KPI catalogue, every series and every observation with its
// revisions, the record of every collector run, and each series' RAG status
// with the history of its changes.
//
// The tables are meant to be read directly by Grafana's PostgreSQL data
// source: timestamps are timestamptz, numbers are double precision (NULL is
// a missing value, never 0), label sets are jsonb objects ({"team": "north"}),
// and statuses are the words green, amber, red and unknown. They are kpis,
// series, runs, observations, revisions, series_status and status_events,
// with two views for panels: kpi_observations (every stored value with its
// KPI, labels and collection time) and kpi_latest (every series' latest
// value with its stored status). migrations/ holds their definitions.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/carewatch/carewatch/internal/pgbound"
	"github.com/carewatch/carewatch/kpi"
)

// ApplicationName is the application_name the store's sessions show in
// pg_stat_activity, unless the DSN sets another.
const ApplicationName = "carewatch"

// NotifyChannel is the PostgreSQL notification channel on which SaveRun
// announces every recorded run. The payload is the writing store's
// instance ID, the run's ID and the collector's name, separated by spaces.
const NotifyChannel = "carewatch_runs"

// Options configures Open. The zero value is usable.
type Options struct {
	// MaxOpenConns bounds the pool used for reads and writes (default 4).
	// Run locks and the notification listener hold connections of their own
	// outside this pool, so a long run never starves the writers.
	MaxOpenConns int
	// ConnMaxLifetime recycles pooled connections (default 30 minutes).
	ConnMaxLifetime time.Duration
	// Logger receives debug and warning messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock for the times the store records itself (revisions,
	// status changes, first sightings); nil is time.Now.
	Now func() time.Time
	// Timeout bounds connecting, Ping and the notification listener's
	// checks (default 10 seconds). Every other call is bounded by its
	// context: a connection whose context ends is closed, even when the
	// server has stopped answering.
	Timeout time.Duration
}

// Store is carewatch's PostgreSQL store. It is safe for concurrent use.
type Store struct {
	db *sqlx.DB
	// lockDB opens the sessions that hold run locks. It keeps no idle
	// connections, so a session is closed, and any lock it holds released,
	// as soon as its holder lets go of it.
	lockDB *sqlx.DB
	// dsn is the listener's DSN, with the connect timeout in it.
	dsn     string
	timeout time.Duration
	// connector makes the store's connections; Listen dials with it too.
	connector *pgbound.Connector
	// instance tells this store's notifications from other processes'.
	instance string
	logger   *slog.Logger
	now      func() time.Time

	// closing ends when Close is called, and with it any wait to release
	// a run lock: closing the session releases it all the same.
	closing       context.Context
	cancelClosing context.CancelFunc

	// mu guards locks and known.
	mu sync.Mutex
	// locks holds the release functions of the run locks held.
	locks map[*sync.Once]func()
	// known holds the IDs (kpi.SeriesID) of the series this process has
	// seen stored. Series are never deleted, so an entry never goes stale;
	// it spares each run a lookup per series.
	known idMap[struct{}]

	// statusMu guards statuses and statusSeen, and is held through the part
	// of SaveRun that records status changes (see updateStatus).
	statusMu sync.Mutex
	// statuses holds the stored status of the series (by stored ID) this
	// process has looked at; StatusNone stands for no stored status.
	statuses idMap[kpi.Status]
	// statusSeen is the ID of the last status event statuses reflects.
	statusSeen int64

	// mergeOnly makes SaveRun store new series and their first statuses
	// the way it stores them for runs that meet stored series (staged and
	// merged), never copied straight in: tests compare the two.
	mergeOnly bool
}

// Open connects to the PostgreSQL database at dsn (a postgres:// URL or a
// key=value connection string) and checks that it answers. It does not
// migrate the schema: call Migrate.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	if o.MaxOpenConns <= 0 {
		o.MaxOpenConns = 4
	}
	if o.ConnMaxLifetime <= 0 {
		o.ConnMaxLifetime = 30 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	dsn, err := withApplicationName(dsn)
	if err != nil {
		return nil, err
	}
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return nil, errors.New("store: the database connection string cannot be parsed")
	}
	connector := pgbound.NewConnector(cfg, pgbound.Options{ConnectTimeout: o.Timeout})
	db := sqlx.NewDb(sql.OpenDB(connector), "postgres")
	db.SetMaxOpenConns(o.MaxOpenConns)
	db.SetMaxIdleConns(o.MaxOpenConns)
	db.SetConnMaxLifetime(o.ConnMaxLifetime)
	s := &Store{
		db:        db,
		lockDB:    sqlx.NewDb(sql.OpenDB(connector), "postgres"),
		dsn:       withConnectTimeout(dsn, o.Timeout),
		timeout:   o.Timeout,
		connector: connector,
		logger:    o.Logger,
		now:       o.Now,
		locks:     make(map[*sync.Once]func()),
	}
	s.lockDB.SetMaxIdleConns(0)
	s.closing, s.cancelClosing = context.WithCancel(context.Background())
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: instance ID: %w", err)
	}
	s.instance = hex.EncodeToString(id[:])
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	return s, nil
}

// Ping makes one round trip to the store, within ctx and the store's
// timeout.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.db.PingContext(ctx)
}

// Timeout returns the store's timeout (Options.Timeout).
func (s *Store) Timeout() time.Duration { return s.timeout }

// withConnectTimeout adds connect_timeout to dsn, unless it has one: lib/pq
// then bounds the notification listener's connection attempts too.
func withConnectTimeout(dsn string, d time.Duration) string {
	secs := strconv.Itoa(max(int(d.Round(time.Second)/time.Second), 1))
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn // withApplicationName parsed it already
		}
		q := u.Query()
		if q.Get("connect_timeout") == "" {
			q.Set("connect_timeout", secs)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	if strings.Contains(dsn, "connect_timeout") {
		return dsn
	}
	return dsn + " connect_timeout=" + secs
}

// withApplicationName adds fallback_application_name to dsn, so sessions are
// named carewatch unless the DSN names them itself. A DSN that cannot be
// parsed is reported without its text, which may hold a password.
func withApplicationName(dsn string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", errors.New("store: the database URL cannot be parsed")
		}
		q := u.Query()
		q.Set("fallback_application_name", ApplicationName)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	if _, err := pq.NewConnector(dsn); err != nil {
		return "", errors.New("store: the database connection string cannot be parsed")
	}
	return strings.TrimSpace(dsn) + " fallback_application_name=" + ApplicationName, nil
}

// Close releases the run locks still held and closes the store's
// connections.
func (s *Store) Close() error {
	s.cancelClosing()
	s.releaseLocks()
	return errors.Join(s.db.Close(), s.lockDB.Close())
}

// DB returns the store's connection pool, for tests and maintenance commands.
func (s *Store) DB() *sqlx.DB { return s.db }
