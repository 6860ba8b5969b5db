// Package pgbound opens lib/pq connections on which no wait outlasts its
// context, even when the server hangs instead of refusing: package
// sqlbound's rule, for lib/pq.
//
// lib/pq answers a cancelled context by asking the server, on a second
// connection, to cancel the statement, and goes on reading the first: a
// server that accepts connections but answers nothing keeps the caller
// waiting for ever. The connections made here are closed as soon as the
// context of the work that uses them ends.
package pgbound

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"net"
	"sync"
	"time"

	"github.com/lib/pq"

	"github.com/carewatch/carewatch/internal/sqlbound"
)

// Options bounds the connections of a Connector; see sqlbound.Options.
type Options = sqlbound.Options

// ErrInterrupted is what a call on a connection closed by its context's end
// fails with, wrapped with the context's error.
var ErrInterrupted = sqlbound.ErrInterrupted

// Connector opens bounded lib/pq connections. It implements
// driver.Connector.
type Connector struct {
	*sqlbound.Connector
}

var _ driver.Connector = Connector{}

// NewConnector returns a Connector for cfg. The connect timeout is cfg's
// connect_timeout when set, else o.ConnectTimeout.
func NewConnector(cfg pq.Config, o Options) *Connector {
	o = o.WithDefaults()
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = o.ConnectTimeout
	} else {
		o.ConnectTimeout = cfg.ConnectTimeout
	}
	connect := func(ctx context.Context, d *sqlbound.Dialer) (driver.Conn, error) {
		pc, err := pq.NewConnectorConfig(cfg)
		if err != nil {
			return nil, err
		}
		pc.Dialer(d)
		return pc.Connect(ctx)
	}
	return &Connector{sqlbound.NewConnector(connect, &pq.Driver{}, o)}
}

// OpenDB returns a database handle whose connections are bounded.
func OpenDB(cfg pq.Config, o Options) *sql.DB {
	return sql.OpenDB(NewConnector(cfg, o))
}

// ListenerDialer returns a dialer for lib/pq's Listener, with the
// Connector's keepalive, TCP user timeout and connect timeout. Give the
// Listener a DSN with connect_timeout set, since the Listener bounds its
// start-up exchange only by that.
func (c *Connector) ListenerDialer() *ListenerDialer {
	return &ListenerDialer{opts: c.Options()}
}

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
	nc, err := sqlbound.NetDial(ctx, d.opts, network, address)
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
