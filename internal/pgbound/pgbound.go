// Package pgbound opens lib/pq connections on which no wait outlasts its
// context, even when the server hangs instead of refusing.
//
// lib/pq answers a cancelled context by asking the server, on a second
// connection, to cancel the statement, and goes on reading the first: a
// server that accepts connections but answers nothing (stopped, swapping, a
// network that drops packets silently) keeps the caller waiting for ever.
// The connections made here are closed for reading and writing as soon as
// the context of the call, statement, result set or transaction that uses
// them ends; such a connection is never used again. Connecting is bounded
// by a connect timeout, TCP keepalive notices a peer gone quiet, and on
// Linux TCP_USER_TIMEOUT ends a connection whose sent data stays
// unacknowledged.
package pgbound

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"time"

	"github.com/lib/pq"
)

// Defaults for the zero Options.
const (
	// DefaultConnectTimeout bounds opening a connection, its start-up
	// exchange included, and lib/pq's cancel requests.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultIdleTimeout bounds a call that no context watches (closing a
	// statement whose context is over, say).
	DefaultIdleTimeout = 30 * time.Second
	// DefaultKeepAlive is the idle time before TCP keepalive probes start;
	// three unanswered probes, DefaultKeepAlive/3 apart, end the connection.
	DefaultKeepAlive = 15 * time.Second
	// DefaultUserTimeout is how long sent data may stay unacknowledged
	// before the kernel ends the connection (Linux only).
	DefaultUserTimeout = 30 * time.Second
)

// Options bounds the connections of a Connector. Zero fields take the
// defaults above.
type Options struct {
	ConnectTimeout time.Duration
	IdleTimeout    time.Duration
	KeepAlive      time.Duration
	UserTimeout    time.Duration
}

func (o Options) withDefaults() Options {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.UserTimeout <= 0 {
		o.UserTimeout = DefaultUserTimeout
	}
	return o
}

// ErrInterrupted is what a call on a connection closed by its context's end
// fails with, wrapped with the context's error.
var ErrInterrupted = errors.New("the connection was closed because its context ended")

// Connector opens bounded lib/pq connections. It implements
// driver.Connector.
type Connector struct {
	cfg  pq.Config
	opts Options
}

var _ driver.Connector = (*Connector)(nil)

// NewConnector returns a Connector for cfg. The connect timeout is cfg's
// connect_timeout when set, else o.ConnectTimeout.
func NewConnector(cfg pq.Config, o Options) *Connector {
	o = o.withDefaults()
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = o.ConnectTimeout
	} else {
		o.ConnectTimeout = cfg.ConnectTimeout
	}
	return &Connector{cfg: cfg, opts: o}
}

// OpenDB returns a database handle whose connections are bounded.
func OpenDB(cfg pq.Config, o Options) *sql.DB {
	return sql.OpenDB(NewConnector(cfg, o))
}

// ListenerDialer returns a dialer for lib/pq's Listener, with the
// Connector's keepalive, TCP user timeout and connect timeout. Give the
// Listener a DSN with connect_timeout set, since the Listener bounds its
// start-up exchange only by that.
func (c *Connector) ListenerDialer() *ListenerDialer { return &ListenerDialer{opts: c.opts} }

// ListenerDialer is a pq.Dialer whose Interrupt ends every wait on the
// connection it dialled last. lib/pq's Listener reads its connection with
// no deadline and holds a lock while it waits for a Ping's answer, so that
// not even Close can end the wait; Interrupt can, and the Listener then
// reconnects.
type ListenerDialer struct {
	opts Options

	mu   sync.Mutex
	last net.Conn
}

// Dial dials with keepalive and the TCP user timeout.
func (d *ListenerDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialTimeout is Dial within timeout.
func (d *ListenerDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

// DialContext is Dial within ctx.
func (d *ListenerDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	nc, err := netDial(ctx, d.opts, network, address)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.last = nc
	d.mu.Unlock()
	return nc, nil
}

// Interrupt ends every read and write on the connection dialled last.
func (d *ListenerDialer) Interrupt() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last != nil {
		_ = d.last.SetDeadline(time.Unix(1, 0))
	}
}

// netDial dials with keepalive, the TCP user timeout and the connect timeout.
func netDial(ctx context.Context, o Options, network, address string) (net.Conn, error) {
	nd := net.Dialer{
		Timeout: o.ConnectTimeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     o.KeepAlive,
			Interval: max(o.KeepAlive/3, time.Second),
			Count:    3,
		},
		Control: userTimeoutControl(o.UserTimeout),
	}
	return nd.DialContext(ctx, network, address)
}

// Connect opens one connection within ctx and the connect timeout.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	d := &dialer{opts: c.opts}
	pc, err := pq.NewConnectorConfig(c.cfg)
	if err != nil {
		return nil, err
	}
	pc.Dialer(d)
	// lib/pq uses the context only to dial; closing the connections being
	// set up ends a start-up exchange that the server does not answer.
	stop := context.AfterFunc(ctx, d.interrupt)
	inner, err := pc.Connect(ctx)
	stopped := stop()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return nil, err
	}
	nc := d.first()
	if !stopped || nc == nil {
		_ = inner.Close()
		if nc == nil {
			return nil, errors.New("pgbound: the driver connected without dialling")
		}
		return nil, fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx))
	}
	_ = nc.SetDeadline(time.Time{})
	return &conn{inner: inner, nc: nc, idle: c.opts.IdleTimeout}, nil
}

// Driver returns lib/pq's driver.
func (c *Connector) Driver() driver.Driver { return &pq.Driver{} }

// dialer dials with keepalive and the TCP user timeout, and remembers what
// it dialled so that Connect can close it when its context ends. Every
// connection it makes starts with the connect timeout as its deadline: the
// one that becomes the session has it lifted, whereas lib/pq's cancel
// requests, which read until the server hangs up, keep it.
type dialer struct {
	opts Options

	mu          sync.Mutex
	conns       []net.Conn
	interrupted bool
}

func (d *dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d *dialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	nc, err := netDial(ctx, d.opts, network, address)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(d.opts.ConnectTimeout))
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.interrupted {
		_ = nc.Close()
		return nil, ErrInterrupted
	}
	d.conns = append(d.conns, nc)
	return nc, nil
}

// interrupt ends every wait on the connections dialled so far.
func (d *dialer) interrupt() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.interrupted = true
	for _, nc := range d.conns {
		_ = nc.SetDeadline(time.Unix(1, 0))
	}
}

// first returns the connection that became the session: lib/pq dials once
// per host it tries and keeps the last one it dialled.
func (d *dialer) first() net.Conn {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.conns) == 0 {
		return nil
	}
	nc := d.conns[len(d.conns)-1]
	// Later dials are cancel requests: they are not this session.
	d.conns = nil
	return nc
}

// conn is a lib/pq connection that watches the contexts of its work: when
// one ends before the work does, the network connection's deadline is put
// in the past, which ends any read or write at once, and the connection is
// marked bad so the pool discards it.
type conn struct {
	inner driver.Conn
	nc    net.Conn
	idle  time.Duration

	mu      sync.Mutex
	watches int
	broken  error
}

// watch keeps the connection open for as long as ctx lasts, until the
// returned func is called.
func (c *conn) watch(ctx context.Context) (unwatch func()) {
	c.mu.Lock()
	c.watches++
	if c.watches == 1 && c.broken == nil {
		_ = c.nc.SetDeadline(time.Time{})
	}
	c.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { c.interrupt(context.Cause(ctx)) })
	var once sync.Once
	return func() {
		once.Do(func() {
			stop()
			c.mu.Lock()
			c.watches--
			c.mu.Unlock()
		})
	}
}

// unwatched bounds a call that no context watches by the idle timeout.
func (c *conn) unwatched() (done func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watches == 0 && c.broken == nil {
		_ = c.nc.SetDeadline(time.Now().Add(c.idle))
		return func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.watches == 0 && c.broken == nil {
				_ = c.nc.SetDeadline(time.Time{})
			}
		}
	}
	return func() {}
}

func (c *conn) interrupt(cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken == nil {
		c.broken = fmt.Errorf("%w: %w", ErrInterrupted, cause)
	}
	_ = c.nc.SetDeadline(time.Unix(1, 0))
}

// check returns the connection's error, if it was interrupted.
func (c *conn) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// wrapErr says why a call failed when its connection was interrupted.
func (c *conn) wrapErr(err error) error {
	if err == nil {
		return nil
	}
	if b := c.check(); b != nil && !errors.Is(err, ErrInterrupted) {
		return fmt.Errorf("%w (%w)", b, err)
	}
	return err
}

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if err := c.check(); err != nil {
		return nil, driver.ErrBadConn
	}
	unwatch := c.watch(ctx)
	defer unwatch()
	var (
		st  driver.Stmt
		err error
	)
	if p, ok := c.inner.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.inner.Prepare(query)
	}
	if err != nil {
		return nil, c.wrapErr(err)
	}
	return &stmt{inner: st, c: c, ctx: ctx}, nil
}

func (c *conn) Close() error {
	// Closing says goodbye to the server: not for longer than a second if
	// it does not take it.
	c.mu.Lock()
	_ = c.nc.SetDeadline(time.Now().Add(time.Second))
	c.mu.Unlock()
	err := c.inner.Close()
	_ = c.nc.Close()
	return err
}

func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if err := c.check(); err != nil {
		return nil, driver.ErrBadConn
	}
	unwatch := c.watch(ctx)
	b, ok := c.inner.(driver.ConnBeginTx)
	if !ok {
		unwatch()
		return nil, errors.New("pgbound: the driver cannot begin transactions with options")
	}
	dtx, err := b.BeginTx(ctx, opts)
	if err != nil {
		unwatch()
		return nil, c.wrapErr(err)
	}
	// The transaction's context watches the connection until it ends:
	// database/sql rolls back a transaction whose context ends, and that
	// rollback must not wait on a server that does not answer.
	return &tx{inner: dtx, c: c, unwatch: unwatch}, nil
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.check(); err != nil {
		return nil, driver.ErrBadConn
	}
	q, ok := c.inner.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	unwatch := c.watch(ctx)
	r, err := q.QueryContext(ctx, query, args)
	if err != nil {
		unwatch()
		return nil, c.wrapErr(err)
	}
	return &rows{inner: r, c: c, unwatch: unwatch}, nil
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.check(); err != nil {
		return nil, driver.ErrBadConn
	}
	e, ok := c.inner.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	unwatch := c.watch(ctx)
	defer unwatch()
	res, err := e.ExecContext(ctx, query, args)
	return res, c.wrapErr(err)
}

func (c *conn) Ping(ctx context.Context) error {
	if err := c.check(); err != nil {
		return driver.ErrBadConn
	}
	p, ok := c.inner.(driver.Pinger)
	if !ok {
		return nil
	}
	unwatch := c.watch(ctx)
	defer unwatch()
	if err := p.Ping(ctx); err != nil {
		if b := c.check(); b != nil {
			return b
		}
		return err
	}
	return nil
}

func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.inner.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c *conn) ResetSession(ctx context.Context) error {
	if c.check() != nil {
		return driver.ErrBadConn
	}
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *conn) IsValid() bool {
	if c.check() != nil {
		return false
	}
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// tx is a transaction whose context watches its connection until it ends.
type tx struct {
	inner   driver.Tx
	c       *conn
	unwatch func()
}

func (t *tx) Commit() error {
	defer t.unwatch()
	return t.c.wrapErr(t.inner.Commit())
}

func (t *tx) Rollback() error {
	defer t.unwatch()
	return t.c.wrapErr(t.inner.Rollback())
}

// stmt is a prepared statement; each of its calls is watched by its own
// context, and closing it by the context it was prepared with, or the idle
// timeout once that is over.
type stmt struct {
	inner driver.Stmt
	c     *conn
	ctx   context.Context
}

func (s *stmt) Close() error {
	if s.ctx.Err() == nil {
		unwatch := s.c.watch(s.ctx)
		defer unwatch()
	} else {
		defer s.c.unwatched()()
	}
	return s.c.wrapErr(s.inner.Close())
}

func (s *stmt) NumInput() int { return s.inner.NumInput() }

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	defer s.c.unwatched()()
	//lint:ignore SA1019 the driver's own fallback, for statements without contexts
	res, err := s.inner.Exec(args) //nolint:staticcheck
	return res, s.c.wrapErr(err)
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	done := s.c.unwatched()
	//lint:ignore SA1019 the driver's own fallback, for statements without contexts
	r, err := s.inner.Query(args) //nolint:staticcheck
	if err != nil {
		done()
		return nil, s.c.wrapErr(err)
	}
	return &rows{inner: r, c: s.c, unwatch: done}, nil
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := s.c.check(); err != nil {
		return nil, driver.ErrBadConn
	}
	unwatch := s.c.watch(ctx)
	defer unwatch()
	var (
		res driver.Result
		err error
	)
	if e, ok := s.inner.(driver.StmtExecContext); ok {
		res, err = e.ExecContext(ctx, args)
	} else {
		// lib/pq's COPY statement takes no context; the watch bounds it.
		var vals []driver.Value
		if vals, err = values(args); err == nil {
			//lint:ignore SA1019 the statement has nothing else
			res, err = s.inner.Exec(vals) //nolint:staticcheck
		}
	}
	return res, s.c.wrapErr(err)
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if err := s.c.check(); err != nil {
		return nil, driver.ErrBadConn
	}
	unwatch := s.c.watch(ctx)
	var (
		r   driver.Rows
		err error
	)
	if q, ok := s.inner.(driver.StmtQueryContext); ok {
		r, err = q.QueryContext(ctx, args)
	} else {
		var vals []driver.Value
		if vals, err = values(args); err == nil {
			//lint:ignore SA1019 the statement has nothing else
			r, err = s.inner.Query(vals) //nolint:staticcheck
		}
	}
	if err != nil {
		unwatch()
		return nil, s.c.wrapErr(err)
	}
	return &rows{inner: r, c: s.c, unwatch: unwatch}, nil
}

// values turns named arguments into the positional ones of a statement
// without contexts, as database/sql does.
func values(args []driver.NamedValue) ([]driver.Value, error) {
	vals := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, errors.New("pgbound: the driver does not take named arguments")
		}
		vals[i] = a.Value
	}
	return vals, nil
}

// copyDataer is lib/pq's COPY statement's way to take raw data.
type copyDataer interface {
	CopyData(ctx context.Context, line string) (driver.Result, error)
}

// CopyData passes raw COPY data to lib/pq's COPY statement.
func (s *stmt) CopyData(ctx context.Context, line string) (driver.Result, error) {
	cd, ok := s.inner.(copyDataer)
	if !ok {
		return nil, errors.New("pgbound: the statement is not a COPY")
	}
	if err := s.c.check(); err != nil {
		return nil, err
	}
	unwatch := s.c.watch(ctx)
	defer unwatch()
	res, err := cd.CopyData(ctx, line)
	return res, s.c.wrapErr(err)
}

// rows is a result set; the context of the query that opened it watches
// its connection until it is closed.
type rows struct {
	inner   driver.Rows
	c       *conn
	unwatch func()
}

func (r *rows) Columns() []string { return r.inner.Columns() }

func (r *rows) Close() error {
	defer r.unwatch()
	return r.c.wrapErr(r.inner.Close())
}

func (r *rows) Next(dest []driver.Value) error {
	err := r.inner.Next(dest)
	if err == nil || err == io.EOF {
		return err
	}
	return r.c.wrapErr(err)
}

func (r *rows) HasNextResultSet() bool {
	if n, ok := r.inner.(driver.RowsNextResultSet); ok {
		return n.HasNextResultSet()
	}
	return false
}

func (r *rows) NextResultSet() error {
	if n, ok := r.inner.(driver.RowsNextResultSet); ok {
		return r.c.wrapErr(n.NextResultSet())
	}
	return io.EOF
}

func (r *rows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.inner.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *rows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.inner.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *rows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	if t, ok := r.inner.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

func (r *rows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.inner.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}
