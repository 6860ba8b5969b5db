package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"
)

// runLockKey is the advisory lock key of a collector's runs.
func runLockKey(collector string) int64 {
	h := fnv.New64a()
	h.Write([]byte("carewatch collector run\xff"))
	h.Write([]byte(collector))
	return int64(h.Sum64())
}

// TryRunLock takes the lock on the collector's runs without waiting, so
// that of several replicas sharing the database exactly one runs it. ok is
// false if another session holds it. The lock lives in a session of its own,
// outside the pool SaveRun uses; release unlocks it and closes that session,
// and is safe to call more than once.
//
// If the session is lost while the run goes on (a network failure, a server
// restart), so is the lock and another replica may run the collector too;
// SaveRun's writes are idempotent, so that costs work, not correctness.
func (s *Store) TryRunLock(ctx context.Context, collector string) (release func(), ok bool, err error) {
	conn, err := s.lockDB.Connx(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("store: run lock of collector %q: %w", collector, err)
	}
	key := runLockKey(collector)
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("store: run lock of collector %q: %w", collector, err)
	}
	if !ok {
		conn.Close()
		return nil, false, nil
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.locks, &once)
			s.mu.Unlock()
			// The run's context may be over by now; Close ends the wait.
			ctx, cancel := context.WithTimeout(s.closing, s.timeout)
			defer cancel()
			if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
				// Closing the session below releases it all the same.
				s.logger.Warn("releasing a run lock", "collector", collector, "err", err)
			}
			conn.Close()
		})
	}
	s.mu.Lock()
	s.locks[&once] = release
	s.mu.Unlock()
	return release, true, nil
}

// releaseLocks releases the run locks still held, for Close: the pool
// would otherwise keep their sessions open until their holders let go.
func (s *Store) releaseLocks() {
	s.mu.Lock()
	held := make([]func(), 0, len(s.locks))
	for _, release := range s.locks {
		held = append(held, release)
	}
	s.mu.Unlock()
	for _, release := range held {
		release()
	}
}

// Notification is a run another process (or this one) recorded.
type Notification struct {
	Collector string
	RunID     int64
	// Own is true for a run this store recorded itself.
	Own bool
}

// parseNotification reads a NotifyChannel payload. A payload it cannot
// read (another version's) names the collector and no run.
func (s *Store) parseNotification(payload string) Notification {
	instance, rest, ok := strings.Cut(payload, " ")
	if ok {
		id, collector, ok := strings.Cut(rest, " ")
		if runID, err := strconv.ParseInt(id, 10, 64); ok && err == nil && runID > 0 {
			return Notification{Collector: collector, RunID: runID, Own: instance == s.instance}
		}
	}
	return Notification{Collector: payload}
}

// Listen calls fn for each run saved, by this or any other process sharing
// the database, until ctx ends; then it returns nil. fn is also called with
// the zero Notification once listening has begun and after every
// reconnection, when notifications may have been missed: the caller should
// then refresh everything. fn is called from one goroutine at a time.
//
// The connection is checked every ListenPingInterval; one that does not
// answer within the store's timeout is dropped and made again, retrying
// every few seconds at most, so a store that comes back is heard from
// again within seconds.
func (s *Store) Listen(ctx context.Context, fn func(Notification)) error {
	dialer := s.connector.ListenerDialer()
	l := pq.NewDialListener(dialer, s.dsn, 250*time.Millisecond, ListenMaxReconnect, func(ev pq.ListenerEventType, err error) {
		switch ev {
		case pq.ListenerEventConnectionAttemptFailed, pq.ListenerEventDisconnected:
			s.logger.Warn("notification listener", "event", ev.String(), "err", err)
		default:
			s.logger.Debug("notification listener", "event", ev.String())
		}
	})
	// lib/pq's Close waits for a Ping in flight, which only the dialer's
	// interruption ends when the server does not answer.
	defer func() {
		dialer.Interrupt()
		l.Close()
	}()

	// Listen waits for a connection however long that takes; Close ends
	// the wait when ctx ends first.
	listening := make(chan error, 1)
	go func() { listening <- l.Listen(NotifyChannel) }()
	select {
	case err := <-listening:
		if err != nil {
			return fmt.Errorf("store: listen on %s: %w", NotifyChannel, err)
		}
	case <-ctx.Done():
		l.Close()
		<-listening
		return nil
	}
	fn(Notification{})

	// A ping now and then notices a dead connection that would otherwise
	// wait for notifications forever. It runs beside the loop, which goes
	// on taking notifications meanwhile.
	ping := time.NewTicker(ListenPingInterval)
	defer ping.Stop()
	var (
		pinged      chan error
		pingTimeout <-chan time.Time
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case n, open := <-l.Notify:
			if !open {
				return fmt.Errorf("store: listen on %s: the listener closed", NotifyChannel)
			}
			if n == nil {
				fn(Notification{})
			} else {
				fn(s.parseNotification(n.Extra))
			}
		case <-ping.C:
			if pinged != nil {
				continue
			}
			pinged = make(chan error, 1)
			go func(c chan<- error) { c <- l.Ping() }(pinged)
			pingTimeout = time.After(s.timeout)
		case err := <-pinged:
			pinged, pingTimeout = nil, nil
			if err != nil {
				s.logger.Warn("notification listener ping", "err", err)
			}
		case <-pingTimeout:
			pingTimeout = nil
			s.logger.Warn("notification listener: the store did not answer in time; reconnecting", "timeout", s.timeout)
			dialer.Interrupt()
		}
	}
}

// ListenPingInterval is how often Listen checks its connection, and
// ListenMaxReconnect the longest wait between its attempts to connect again.
const (
	ListenPingInterval = 10 * time.Second
	ListenMaxReconnect = 5 * time.Second
)

// ClaimTick claims the scheduled tick of a collector for this process: ok
// is true for the first claim of (collector, tick) ever made in the store,
// false for every later one, by whichever replica. A run for a tick goes
// ahead only with the claim, so each tick runs once across replicas. A
// claimed tick whose run fails is not run again by another replica.
func (s *Store) ClaimTick(ctx context.Context, collector string, tick time.Time) (ok bool, err error) {
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO run_claims (collector, tick) VALUES ($1, $2) ON CONFLICT DO NOTHING`, collector, tick)
	if err != nil {
		return false, fmt.Errorf("store: claiming the tick %s of collector %q: %w", tick.UTC().Format(time.RFC3339), collector, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: claiming the tick of collector %q: %w", collector, err)
	}
	return n == 1, nil
}

// PruneClaims deletes the tick claims made for ticks before before.
func (s *Store) PruneClaims(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM run_claims WHERE tick < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("store: pruning tick claims: %w", err)
	}
	return res.RowsAffected()
}
