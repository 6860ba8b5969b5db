package collector_test

import (
	"context"
	"database/sql"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/mariadblocal/mdbtest"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

// endsAtItsDeadline runs s with a run of timeout and fails t unless the run
// fails within two seconds of its deadline, saying so.
func endsAtItsDeadline(t *testing.T, what string, s *collector.SQLSource, timeout time.Duration) error {
	t.Helper()
	err := pgtest.ReturnsWithin(t, timeout+2*time.Second, what, func() error {
		_, err := collect(t, s, timeout)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("%s: Collect = %v, want the run's deadline", what, err)
	}
	return err
}

// A MariaDB source whose server stops answering (SIGSTOP: connections
// accepted, nothing answered) fails the run at its deadline, whether the
// server stops between runs, mid-query or while a connection is being
// opened, and serves again once the server answers.
func TestMariaDBSourceThatStopsAnsweringFailsAtTheRunsDeadline(t *testing.T) {
	srv, dsn := mdbtest.NewServer(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE team_caseload (service varchar(20), team varchar(20), cases integer, snapshot date)`,
		`INSERT INTO team_caseload VALUES ('children', 'north', 150, '2025-09-30')`,
	} {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	src := mariaSource("cms", 0)
	s := openSource(t, dsn, src, sqlCollector(`SELECT service, team, cases AS caseload FROM team_caseload`))
	if _, err := collect(t, s, 10*time.Second); err != nil {
		t.Fatalf("before the pause: %v", err)
	}

	t.Cleanup(func() { _ = srv.Resume() })
	outer := t
	pause := func(t *testing.T) {
		t.Helper()
		if err := srv.Pause(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := srv.Resume(); err != nil {
				t.Fatal(err)
			}
			if _, err := collect(outer, s, 10*time.Second); err != nil {
				t.Fatalf("after the server answers again: %v", err)
			}
		})
	}
	t.Run("between runs", func(t *testing.T) {
		pause(t)
		endsAtItsDeadline(t, "on the pooled session", s, 1500*time.Millisecond)
		endsAtItsDeadline(t, "on a new session", s, 1500*time.Millisecond)
	})
	t.Run("mid-query", func(t *testing.T) {
		slow := openSource(t, dsn, src, sqlCollector(`SELECT service, team, cases + SLEEP(1) AS caseload FROM team_caseload`))
		go func() {
			time.Sleep(300 * time.Millisecond)
			_ = srv.Pause()
		}()
		defer pause(t) // for its cleanup; pausing twice is harmless
		endsAtItsDeadline(t, "mid-query", slow, 2*time.Second)
	})
	t.Run("connecting outlasts the connect timeout", func(t *testing.T) {
		pause(t)
		// Opening a connection is bounded by the DSN's connect timeout
		// (1s), whatever the context allows: carewatch check --connect
		// waits no longer.
		err := pgtest.ReturnsWithin(t, 3*time.Second, "ConnectSQL", func() error {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			db, err := collector.ConnectSQL(ctx, src, dsn+"?timeout=1s")
			if err == nil {
				db.Close()
			}
			return err
		})
		if err == nil {
			t.Fatal("ConnectSQL to a server that does not answer succeeded")
		}
	})
}

// silentServer listens on 127.0.0.1 and accepts connections; each is given
// to answer, then held open unanswered until the test ends.
func silentServer(t *testing.T, answer func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if answer != nil {
				go answer(c)
			}
		}
	}()
	return l.Addr().String()
}

// readTDS reads one TDS message (its packets up to the last) from c.
func readTDS(c net.Conn) error {
	for {
		var header [8]byte
		if _, err := io.ReadFull(c, header[:]); err != nil {
			return err
		}
		if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint16(header[2:4]))-8); err != nil {
			return err
		}
		if header[1]&1 != 0 {
			return nil
		}
	}
}

// writeTDS writes body to c as one TDS reply packet.
func writeTDS(c net.Conn, body []byte) error {
	packet := append([]byte{4, 1, 0, 0, 0, 0, 1, 0}, body...)
	binary.BigEndian.PutUint16(packet[2:4], uint16(len(packet)))
	_, err := c.Write(packet)
	return err
}

// tdsPrelogin answers a TDS pre-login as a server that offers no
// encryption, and then says nothing more.
func tdsPrelogin(c net.Conn) {
	if readTDS(c) != nil {
		return
	}
	// Options: VERSION (0) at offset 11, 6 bytes; ENCRYPTION (1) at 17, 1
	// byte (2: not supported); terminator.
	_ = writeTDS(c, []byte{0, 0, 11, 0, 6, 1, 0, 17, 0, 1, 0xff, 16, 0, 0, 0, 0, 0, 2})
}

// tdsLogin answers the pre-login and accepts the login, and then says
// nothing more: a server that stops answering once the session is open.
func tdsLogin(c net.Conn) {
	tdsPrelogin(c)
	if readTDS(c) != nil {
		return
	}
	// LOGINACK (interface 1, TDS 7.4, no program name, version 0), then
	// DONE (final, no row count).
	loginAck := []byte{0xad, 10, 0, 1, 0x74, 0, 0, 4, 0, 0, 0, 0, 0}
	done := []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	_ = writeTDS(c, append(loginAck, done...))
}

// A SQL Server that accepts connections and answers nothing, or answers
// the pre-login and then nothing, fails the run at its deadline with a
// clear error, as does a MySQL server that says nothing.
func TestSQLSourceOnAServerThatSaysNothingFailsAtTheRunsDeadline(t *testing.T) {
	for _, tt := range []struct {
		name, typ, dsn string
	}{
		{"SQL Server, silent", config.SourceSQLServer, "sqlserver://carewatch:s3cr3t-pw@" + silentServer(t, nil) + "?database=cms&encrypt=disable"},
		{"SQL Server, silent after the pre-login", config.SourceSQLServer, "sqlserver://carewatch:s3cr3t-pw@" + silentServer(t, tdsPrelogin) + "?database=cms&encrypt=disable"},
		{"SQL Server, silent once logged in", config.SourceSQLServer, "sqlserver://carewatch:s3cr3t-pw@" + silentServer(t, tdsLogin) + "?database=cms&encrypt=disable"},
		{"MySQL, silent", config.SourceMySQL, "carewatch:s3cr3t-pw@tcp(" + silentServer(t, nil) + ")/cms"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := unconnectedSource(t, &config.SourceConfig{Name: "warehouse", Type: tt.typ}, tt.dsn, "SELECT 1 AS caseload")
			err := endsAtItsDeadline(t, "Collect", s, 1500*time.Millisecond)
			if !strings.Contains(err.Error(), `collector "caseload": source "warehouse"`) || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("Collect = %v, want an error naming the collector and not the password", err)
			}
			if collector.IsPermanent(err) {
				t.Errorf("%v is marked permanent; a server that does not answer should be retried", err)
			}
		})
	}
}
