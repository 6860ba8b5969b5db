// Package sqlbound wraps database/sql drivers so that no wait on their
// connections outlasts its context, even when the server hangs instead of
// refusing.
//
// A driver that answers a cancelled context by asking the server to stop
// (lib/pq's cancel request, SQL Server's attention) and then goes on
// reading, or that reads its start-up exchange with no deadline at all,
// keeps its caller waiting for ever on a server that accepts connections but
// answers nothing (stopped, swapping, behind a network that drops packets
// silently). The connections made here are closed for reading and writing
// as soon as the context of the call, statement, result set or transaction
// that uses them ends (after Options.CancelGrace); such a connection is
// never used again. Connecting is bounded by a connect timeout, TCP
// keepalive notices a peer gone quiet, and on Linux TCP_USER_TIMEOUT ends a
// connection whose sent data stays unacknowledged.
//
// One rule for every driver: a driver's adapter (package pgbound for
// lib/pq, carewatch's SQL sources for the others) only tells the driver to
// dial with the Dialer it is given.
package sqlbound

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"time"
)

// Defaults for the zero Options.
const (
	// DefaultConnectTimeout bounds opening a connection, its start-up
	// exchange included.
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
	// CancelGrace is how long a call whose context has ended may go on
	// before its connection is closed: time for a driver that asks the
	// server to stop the statement, and waits for it to say so, to hear
	// the answer and keep the connection. Zero closes it at once.
	CancelGrace time.Duration
}

// WithDefaults returns o with its zero fields set to the defaults.
func (o Options) WithDefaults() Options {
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

// ConnectFunc opens one connection of a driver within ctx, dialling every
// network connection it makes with d.
type ConnectFunc func(ctx context.Context, d *Dialer) (driver.Conn, error)

// Connector opens bounded connections with a driver's ConnectFunc. It
// implements driver.Connector.
type Connector struct {
	connect ConnectFunc
	drv     driver.Driver
	opts    Options
}

var _ driver.Connector = (*Connector)(nil)

// NewConnector returns a Connector that opens connections with connect,
// for drv.
func NewConnector(connect ConnectFunc, drv driver.Driver, o Options) *Connector {
	return &Connector{connect: connect, drv: drv, opts: o.WithDefaults()}
}

// Options returns the Connector's options, defaults set.
func (c *Connector) Options() Options { return c.opts }

// Driver returns the driver.
func (c *Connector) Driver() driver.Driver { return c.drv }

// Connect opens one connection within ctx and the connect timeout.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.opts.ConnectTimeout,
		fmt.Errorf("no connection within the connect timeout (%s): %w", c.opts.ConnectTimeout, context.DeadlineExceeded))
	defer cancel()
	d := &Dialer{opts: c.opts}
	// Drivers use the context to dial, not always to read their start-up
	// exchange; closing the connections being set up ends one that the
	// server does not answer.
	stop := context.AfterFunc(ctx, d.interrupt)
	inner, err := c.connect(ctx, d)
	stopped := stop()
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			if err == ctx.Err() {
				err = cause
			} else {
				err = fmt.Errorf("%w: %w", cause, err)
			}
		}
		return nil, err
	}
	ncs := d.session()
	if !stopped || len(ncs) == 0 {
		_ = inner.Close()
		if len(ncs) == 0 {
			return nil, errors.New("sqlbound: the driver connected without dialling")
		}
		return nil, fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx))
	}
	nc := netConns(ncs)
	_ = nc.SetDeadline(time.Time{})
	return &conn{inner: inner, nc: nc, idle: c.opts.IdleTimeout, grace: c.opts.CancelGrace}, nil
}

// NetDial dials with keepalive, the TCP user timeout and the connect
// timeout of o (defaults set).
func NetDial(ctx context.Context, o Options, network, address string) (net.Conn, error) {
	o = o.WithDefaults()
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

// Dialer dials with keepalive and the TCP user timeout, and remembers what
// it dialled while its Connector's Connect lasts, so that Connect can close
// it when its context ends. Every connection it makes starts with the
// connect timeout as its deadline: those dialled during Connect become the
// session and have it lifted, whereas later ones (lib/pq's cancel requests,
// which read until the server hangs up) keep it.
type Dialer struct {
	opts Options

	mu          sync.Mutex
	conns       []net.Conn
	connected   bool
	interrupted bool
}

// Dial dials network and address.
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialTimeout is Dial within timeout.
func (d *Dialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

// DialContext is Dial within ctx.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	nc, err := NetDial(ctx, d.opts, network, address)
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
	if !d.connected {
		d.conns = append(d.conns, nc)
	}
	return nc, nil
}

// interrupt ends every wait on the connections dialled so far.
func (d *Dialer) interrupt() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.interrupted = true
	for _, nc := range d.conns {
		_ = nc.SetDeadline(time.Unix(1, 0))
	}
}

// session returns the connections dialled while connecting: the one the
// session uses, and any the driver tried and closed (another host, another
// address of an availability group listener), on which deadlines do no
// harm.
func (d *Dialer) session() []net.Conn {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.connected = true
	conns := d.conns
	d.conns = nil
	return conns
}

// netConns sets deadlines on, and closes, every connection dialled for a
// session.
type netConns []net.Conn

func (ncs netConns) SetDeadline(t time.Time) error {
	var err error
	for _, nc := range ncs {
		err = errors.Join(err, nc.SetDeadline(t))
	}
	return err
}

func (ncs netConns) Close() error {
	var err error
	for _, nc := range ncs {
		err = errors.Join(err, nc.Close())
	}
	return err
}

// conn is a driver's connection that watches the contexts of its work:
// when one ends before the work does (and the grace is over), the network
// connection's deadline is put in the past, which ends any read or write at
// once, and the connection is marked bad so the pool discards it.
type conn struct {
	inner driver.Conn
	nc    netConns
	idle  time.Duration
	grace time.Duration

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
	var (
		gmu   sync.Mutex
		done  bool
		timer *time.Timer
	)
	stop := context.AfterFunc(ctx, func() {
		if c.grace <= 0 {
			c.interrupt(context.Cause(ctx))
			return
		}
		gmu.Lock()
		defer gmu.Unlock()
		if !done {
			timer = time.AfterFunc(c.grace, func() { c.interrupt(context.Cause(ctx)) })
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			stop()
			gmu.Lock()
			done = true
			if timer != nil {
				timer.Stop()
			}
			gmu.Unlock()
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
		return nil, errors.New("sqlbound: the driver cannot begin transactions with options")
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

// CheckNamedValue lets the driver's statement convert its arguments (SQL
// Server's typed parameters), else its connection.
func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.inner.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

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
		// A statement that takes no context (lib/pq's COPY): the watch
		// bounds it.
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
			return nil, errors.New("sqlbound: the driver does not take named arguments")
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
		return nil, errors.New("sqlbound: the statement is not a COPY")
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
