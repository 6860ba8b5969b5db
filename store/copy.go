package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/carewatch/carewatch/kpi"
)

// inTx runs fn in a transaction on one session of the pool. The store
// begins and ends the transaction itself rather than through a sql.Tx, so
// that fn can reach the driver's connection to stream COPY data (copyIn).
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Conn) error) (err error) {
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return err
	}
	ended := false
	defer func() {
		if !ended {
			// A panic, or a ROLLBACK that failed: a session that may still
			// be inside the transaction must not go back to the pool.
			discard(conn)
		}
		conn.Close()
	}()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return err
	}
	if err := fn(conn); err != nil {
		// The transaction's context may be over: roll back regardless.
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, rerr := conn.ExecContext(rctx, "ROLLBACK"); rerr == nil {
			ended = true
		}
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	ended = true
	return nil
}

// discard closes conn's session instead of returning it to the pool.
func discard(conn *sqlx.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}

// copyDataer is the part of lib/pq's COPY statement that takes raw data.
type copyDataer interface {
	CopyData(ctx context.Context, line string) (driver.Result, error)
}

// copyChunk is how much COPY data is handed to the driver at a time.
const copyChunk = 60 << 10

// copyIn copies n rows into the columns of table, in a transaction begun
// by inTx. line appends row i, in COPY's text format, to buf.
//
// The rows are encoded here and handed to the driver in chunks of many
// lines: going through database/sql and the driver's encoding for every
// value costs more client time than the server takes to store the rows.
func copyIn(ctx context.Context, tx *sqlx.Conn, table string, columns []string, n int, line func(buf []byte, i int) []byte) error {
	query := "COPY " + table + " (" + strings.Join(columns, ", ") + ") FROM STDIN"
	return tx.Raw(func(dc any) error {
		prep, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return errors.New("the database driver cannot prepare statements")
		}
		stmt, err := prep.PrepareContext(ctx, query)
		if err != nil {
			return err
		}
		cd, ok := stmt.(copyDataer)
		if !ok {
			stmt.Close()
			return errors.New("the database driver cannot stream COPY data")
		}
		buf := make([]byte, 0, copyChunk+4<<10)
		for i := range n {
			if len(buf) > 0 {
				buf = append(buf, '\n')
			}
			buf = line(buf, i)
			// The driver ends each piece with a newline.
			if len(buf) >= copyChunk || i == n-1 {
				if _, err := cd.CopyData(ctx, string(buf)); err != nil {
					stmt.Close()
					return err
				}
				buf = buf[:0]
			}
		}
		// Closing ends the COPY and reports any error from its rows.
		return stmt.Close()
	})
}

// copyEncoder appends values in COPY's text format. It remembers the text
// of the periods it has seen: a run holds few periods and many rows.
type copyEncoder struct {
	periods map[time.Time][]byte
}

func newCopyEncoder() *copyEncoder {
	return &copyEncoder{periods: make(map[time.Time][]byte)}
}

func (e *copyEncoder) int(buf []byte, v int64) []byte {
	return strconv.AppendInt(buf, v, 10)
}

func (e *copyEncoder) time(buf []byte, t time.Time) []byte {
	ts, ok := e.periods[t]
	if !ok {
		ts = pq.FormatTimestamp(t)
		if len(e.periods) < 4096 {
			e.periods[t] = ts
		}
	}
	return append(buf, ts...)
}

// value appends v as stored: missing (and NaN or infinite) is NULL.
func (e *copyEncoder) value(buf []byte, v kpi.Value) []byte {
	if value(v) == nil {
		return append(buf, `\N`...)
	}
	return strconv.AppendFloat(buf, v.V, 'g', -1, 64)
}

func (e *copyEncoder) threshold(buf []byte, t kpi.Threshold) []byte {
	if !t.Set {
		return append(buf, `\N`...)
	}
	return strconv.AppendFloat(buf, t.Value, 'g', -1, 64)
}

// text appends s with the characters COPY's text format reserves escaped.
func (e *copyEncoder) text(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			buf = append(buf, `\\`...)
		case '\n':
			buf = append(buf, `\n`...)
		case '\r':
			buf = append(buf, `\r`...)
		case '\t':
			buf = append(buf, `\t`...)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}
