package collector_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
)

// every is a cron.Schedule firing at a fixed interval, finer than cron's own
// one-second floor, so that the tests are quick.
type every time.Duration

func (e every) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

// logRecorder is a slog.Handler keeping every record with its attributes.
type logRecorder struct {
	mu      *sync.Mutex
	records *[]logRecord
	attrs   []slog.Attr
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newLogRecorder() *logRecorder {
	return &logRecorder{mu: new(sync.Mutex), records: new([]logRecord)}
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.records = append(*h.records, rec)
	return nil
}

func (h *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logRecorder{mu: h.mu, records: h.records, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...)}
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// find returns the records whose message contains msg.
func (h *logRecorder) find(msg string) []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRecord
	for _, r := range *h.records {
		if strings.Contains(r.msg, msg) {
			out = append(out, r)
		}
	}
	return out
}

// eventually fails t unless cond becomes true within d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newScheduler(t *testing.T, jobs ...collector.Job) (*collector.Scheduler, *logRecorder) {
	t.Helper()
	logs := newLogRecorder()
	s := collector.NewScheduler(london(t), slog.New(logs), jobs)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return s, logs
}

func TestSchedulerRunsOnStart(t *testing.T) {
	ran := make(chan struct{}, 1)
	s, logs := newScheduler(t,
		collector.Job{Name: "caseload", RunOnStart: true, Timeout: time.Second, Run: func(context.Context, int) error {
			ran <- struct{}{}
			return nil
		}},
		collector.Job{Name: "vacancies", Timeout: time.Second, Run: func(context.Context, int) error {
			t.Error("a job without run_on_start and without a schedule ran")
			return nil
		}},
	)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("the run_on_start job did not run")
	}
	eventually(t, 5*time.Second, "no success logged", func() bool { return len(logs.find("collector run succeeded")) == 1 })
	rec := logs.find("collector run succeeded")[0]
	if rec.level != slog.LevelInfo || rec.attrs["collector"] != "caseload" || rec.attrs["duration"] == "" || rec.attrs["trigger"] != "start" {
		t.Errorf("success record = %+v, want info with collector, duration and trigger start", rec)
	}
}

func TestSchedulerRunsOnSchedule(t *testing.T) {
	var runs atomic.Int32
	s, _ := newScheduler(t, collector.Job{Name: "caseload", Schedule: every(20 * time.Millisecond), Timeout: time.Second,
		Run: func(context.Context, int) error { runs.Add(1); return nil }})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the job did not run three times on its schedule", func() bool { return runs.Load() >= 3 })
}

func TestSchedulerRetries(t *testing.T) {
	errSource := errors.New("source unavailable")
	tests := []struct {
		name         string
		retries      int
		failures     int   // attempts that fail before one succeeds
		failWith     error // the error failing attempts return
		wantAttempts int
		wantErr      bool
	}{
		{"a run that fails then succeeds is retried until it succeeds", 2, 2, errSource, 3, false},
		{"a run that keeps failing stops after its retries with the last error", 2, 10, errSource, 3, true},
		{"a run with no retries fails at once", 0, 10, errSource, 1, true},
		{"a permanent failure is not retried", 5, 10, collector.Permanent(errSource), 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts []int
			var mu sync.Mutex
			s, logs := newScheduler(t, collector.Job{
				Name: "caseload", Timeout: 5 * time.Second, Retries: tt.retries, Backoff: 10 * time.Millisecond,
				Run: func(_ context.Context, attempt int) error {
					mu.Lock()
					defer mu.Unlock()
					attempts = append(attempts, attempt)
					if len(attempts) <= tt.failures {
						return tt.failWith
					}
					return nil
				},
			})
			start := time.Now()
			err := s.RunNow(t.Context(), "caseload")
			elapsed := time.Since(start)
			if tt.wantErr {
				if !errors.Is(err, errSource) {
					t.Fatalf("RunNow = %v, want the source's error", err)
				}
				if recs := logs.find("collector run failed"); len(recs) != 1 || recs[0].level != slog.LevelError || !strings.Contains(recs[0].attrs["err"], "source unavailable") {
					t.Errorf("failure records = %+v, want one error record with the cause", recs)
				}
			} else if err != nil {
				t.Fatalf("RunNow = %v, want success", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(attempts) != tt.wantAttempts {
				t.Fatalf("attempts = %v, want %d", attempts, tt.wantAttempts)
			}
			for i, a := range attempts {
				if a != i+1 {
					t.Errorf("attempt %d was numbered %d", i+1, a)
				}
			}
			// Backoff doubles: 10ms, then 20ms, ...
			minWait := time.Duration(0)
			for i := 1; i < tt.wantAttempts; i++ {
				minWait += 10 * time.Millisecond << (i - 1)
			}
			if elapsed < minWait {
				t.Errorf("the run took %s, less than its backoffs (%s)", elapsed, minWait)
			}
		})
	}
}

func TestSchedulerTimeoutBoundsASlowRun(t *testing.T) {
	sawDeadline := make(chan error, 1)
	s, _ := newScheduler(t, collector.Job{Name: "caseload", Timeout: 100 * time.Millisecond, Retries: 3, Backoff: time.Millisecond,
		Run: func(ctx context.Context, _ int) error {
			<-ctx.Done()
			sawDeadline <- ctx.Err()
			return ctx.Err()
		}})
	start := time.Now()
	err := s.RunNow(t.Context(), "caseload")
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("the run took %s despite its 100ms timeout", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "run timed out after 100ms") {
		t.Fatalf("RunNow = %v, want a timeout error", err)
	}
	if got := <-sawDeadline; !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("the job's context ended with %v, want its deadline", got)
	}
}

func TestSchedulerRetriesStayInsideTheTimeout(t *testing.T) {
	var attempts atomic.Int32
	s, _ := newScheduler(t, collector.Job{Name: "caseload", Timeout: 300 * time.Millisecond, Retries: 10, Backoff: 100 * time.Millisecond,
		Run: func(context.Context, int) error {
			attempts.Add(1)
			return errors.New("source unavailable")
		}})
	start := time.Now()
	err := s.RunNow(t.Context(), "caseload")
	if elapsed := time.Since(start); elapsed > 300*time.Millisecond {
		t.Errorf("the run took %s, past its 300ms timeout", elapsed)
	}
	if err == nil || !strings.Contains(err.Error(), "no time left to retry") {
		t.Fatalf("RunNow = %v, want it to give up for lack of time", err)
	}
	// 0ms, +100ms, +200ms = 300ms: the third retry cannot fit.
	if n := attempts.Load(); n != 2 {
		t.Errorf("attempts = %d, want 2 (the next backoff would pass the timeout)", n)
	}
}

func TestSchedulerNeverOverlapsRunsOfOneJob(t *testing.T) {
	t.Run("a second RunNow while one runs is refused", func(t *testing.T) {
		started, release := make(chan struct{}), make(chan struct{})
		s, _ := newScheduler(t, collector.Job{Name: "caseload", Timeout: 5 * time.Second, Run: func(context.Context, int) error {
			close(started)
			<-release
			return nil
		}})
		first := make(chan error, 1)
		go func() { first <- s.RunNow(t.Context(), "caseload") }()
		<-started
		err := s.RunNow(t.Context(), "caseload")
		if err == nil || err.Error() != `collector "caseload" is already running` {
			t.Errorf("second RunNow = %v, want a refusal", err)
		}
		close(release)
		if err := <-first; err != nil {
			t.Errorf("first RunNow = %v", err)
		}
	})
	t.Run("a tick while the job runs is skipped and logged", func(t *testing.T) {
		var runs atomic.Int32
		release := make(chan struct{})
		s, logs := newScheduler(t, collector.Job{Name: "caseload", Schedule: every(10 * time.Millisecond), Timeout: 5 * time.Second,
			Run: func(context.Context, int) error {
				runs.Add(1)
				<-release
				return nil
			}})
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "no skipped tick was logged", func() bool { return len(logs.find("collector run skipped")) >= 2 })
		if n := runs.Load(); n != 1 {
			t.Errorf("%d runs started while the first was still running, want 1", n)
		}
		rec := logs.find("collector run skipped")[0]
		if rec.level != slog.LevelWarn || rec.attrs["collector"] != "caseload" {
			t.Errorf("skip record = %+v, want a warning naming the collector", rec)
		}
		close(release)
		eventually(t, 5*time.Second, "the job did not run again once free", func() bool { return runs.Load() >= 2 })
	})
}

func TestSchedulerSurvivesAPanic(t *testing.T) {
	t.Run("RunNow returns the panic as an error and later runs happen", func(t *testing.T) {
		var calls atomic.Int32
		s, logs := newScheduler(t, collector.Job{Name: "caseload", Timeout: time.Second, Retries: 2, Run: func(context.Context, int) error {
			if calls.Add(1) == 1 {
				panic("boom")
			}
			return nil
		}})
		err := s.RunNow(t.Context(), "caseload")
		if err == nil || !strings.Contains(err.Error(), "panic: boom") {
			t.Fatalf("RunNow = %v, want the panic as an error", err)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("a panicking attempt was retried (%d calls)", n)
		}
		if recs := logs.find("collector run panicked"); len(recs) != 1 || !strings.Contains(recs[0].attrs["stack"], "scheduler_test.go") {
			t.Errorf("panic records = %+v, want one with the stack", recs)
		}
		if err := s.RunNow(t.Context(), "caseload"); err != nil {
			t.Errorf("the run after the panic failed: %v", err)
		}
	})
	t.Run("a scheduled job that panics does not stop the scheduler", func(t *testing.T) {
		var panics, others atomic.Int32
		s, _ := newScheduler(t,
			collector.Job{Name: "caseload", Schedule: every(10 * time.Millisecond), Timeout: time.Second, Run: func(context.Context, int) error {
				panics.Add(1)
				panic(errors.New("boom"))
			}},
			collector.Job{Name: "vacancies", Schedule: every(10 * time.Millisecond), Timeout: time.Second, Run: func(context.Context, int) error {
				others.Add(1)
				return nil
			}},
		)
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the jobs stopped running after a panic", func() bool {
			return panics.Load() >= 3 && others.Load() >= 3
		})
	})
}

func TestSchedulerStop(t *testing.T) {
	t.Run("Stop waits for a run in flight", func(t *testing.T) {
		started, release := make(chan struct{}), make(chan struct{})
		finished := make(chan struct{})
		s := collector.NewScheduler(time.UTC, nil, []collector.Job{{Name: "caseload", RunOnStart: true, Timeout: 5 * time.Second,
			Run: func(ctx context.Context, _ int) error {
				close(started)
				<-release
				close(finished)
				return ctx.Err()
			}}})
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		<-started
		stopped := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			stopped <- s.Stop(ctx)
		}()
		select {
		case err := <-stopped:
			t.Fatalf("Stop returned (%v) while a run was in flight", err)
		case <-time.After(100 * time.Millisecond):
		}
		close(release)
		if err := <-stopped; err != nil {
			t.Errorf("Stop = %v, want nil once the run finished", err)
		}
		select {
		case <-finished:
		default:
			t.Error("Stop returned before the run finished")
		}
	})
	t.Run("Stop cancels the runs still in flight when its context expires", func(t *testing.T) {
		started := make(chan struct{})
		cancelled := make(chan error, 1)
		s := collector.NewScheduler(time.UTC, nil, []collector.Job{{Name: "caseload", RunOnStart: true, Timeout: time.Minute,
			Run: func(ctx context.Context, _ int) error {
				close(started)
				<-ctx.Done()
				cancelled <- ctx.Err()
				return ctx.Err()
			}}})
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		<-started
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := s.Stop(ctx)
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("Stop took %s past its 100ms deadline", elapsed)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `"caseload"`) {
			t.Errorf("Stop = %v, want the deadline and the run it cancelled", err)
		}
		select {
		case got := <-cancelled:
			if !errors.Is(got, context.Canceled) {
				t.Errorf("the run's context ended with %v, want cancelled", got)
			}
		case <-time.After(5 * time.Second):
			t.Error("the run in flight was not cancelled")
		}
	})
	t.Run("no run starts once stopped", func(t *testing.T) {
		var runs atomic.Int32
		s := collector.NewScheduler(time.UTC, nil, []collector.Job{{Name: "caseload", Schedule: every(10 * time.Millisecond), Timeout: time.Second,
			Run: func(context.Context, int) error { runs.Add(1); return nil }}})
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the job never ran", func() bool { return runs.Load() > 0 })
		if err := s.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		n := runs.Load()
		time.Sleep(50 * time.Millisecond)
		if got := runs.Load(); got != n {
			t.Errorf("%d runs after Stop", got-n)
		}
		if err := s.RunNow(t.Context(), "caseload"); err == nil || !strings.Contains(err.Error(), "stopping") {
			t.Errorf("RunNow after Stop = %v, want a refusal", err)
		}
		if err := s.Start(t.Context()); err == nil {
			t.Error("Start after Stop succeeded")
		}
	})
}

func TestSchedulerRefusesBadJobs(t *testing.T) {
	ok := func(context.Context, int) error { return nil }
	tests := []struct {
		name string
		jobs []collector.Job
		want string
	}{
		{"a job scheduled twice is refused", []collector.Job{{Name: "caseload", Run: ok}, {Name: "caseload", Run: ok}},
			`scheduler: collector "caseload" is scheduled twice`},
		{"a job with nothing to run is refused", []collector.Job{{Name: "caseload"}},
			`scheduler: collector "caseload" has nothing to run`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := collector.NewScheduler(time.UTC, nil, tt.jobs)
			if err := s.Start(t.Context()); err == nil || err.Error() != tt.want {
				t.Errorf("Start = %v, want %s", err, tt.want)
			}
			if err := s.RunNow(t.Context(), "caseload"); err == nil || err.Error() != tt.want {
				t.Errorf("RunNow = %v, want %s", err, tt.want)
			}
		})
	}
	t.Run("RunNow of an unknown job is refused", func(t *testing.T) {
		s := collector.NewScheduler(time.UTC, nil, []collector.Job{{Name: "caseload", Run: ok}})
		if err := s.RunNow(t.Context(), "vacancies"); err == nil || err.Error() != `scheduler: no collector "vacancies"` {
			t.Errorf("RunNow = %v", err)
		}
	})
}

func TestSchedulerReportsEachRunToDone(t *testing.T) {
	errSource := errors.New("source unavailable")
	tests := []struct {
		name string
		run  func(context.Context, int) error
		want func(error) bool
	}{
		{"a success is reported as nil", func(context.Context, int) error { return nil },
			func(err error) bool { return err == nil }},
		{"a failure is reported with the last attempt's error", func(_ context.Context, attempt int) error {
			return fmt.Errorf("attempt %d: %w", attempt, errSource)
		}, func(err error) bool { return errors.Is(err, errSource) && strings.HasPrefix(err.Error(), "attempt 2:") }},
		{"a panic is reported as an error", func(context.Context, int) error { panic("boom") },
			func(err error) bool { return err != nil && strings.Contains(err.Error(), "panic: boom") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reports []error
			s, _ := newScheduler(t, collector.Job{Name: "caseload", Timeout: time.Second, Retries: 1, Run: tt.run,
				Done: func(err error) { reports = append(reports, err) }})
			runErr := s.RunNow(t.Context(), "caseload")
			if len(reports) != 1 {
				t.Fatalf("Done was called %d times, want once", len(reports))
			}
			if !tt.want(reports[0]) {
				t.Errorf("Done got %v", reports[0])
			}
			if !errors.Is(runErr, reports[0]) && runErr != reports[0] {
				t.Errorf("RunNow returned %v but Done got %v", runErr, reports[0])
			}
		})
	}
	t.Run("a skipped tick is not a run and is not reported", func(t *testing.T) {
		var reports atomic.Int32
		release := make(chan struct{})
		s, logs := newScheduler(t, collector.Job{Name: "caseload", Schedule: every(10 * time.Millisecond), Timeout: 5 * time.Second,
			Run:  func(context.Context, int) error { <-release; return nil },
			Done: func(error) { reports.Add(1) }})
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "no tick was skipped", func() bool { return len(logs.find("previous run is still in progress")) >= 2 })
		if n := reports.Load(); n != 0 {
			t.Errorf("Done was called %d times while the first run was in flight", n)
		}
		close(release)
		eventually(t, 5*time.Second, "the finished run was not reported", func() bool { return reports.Load() >= 1 })
	})
}

func TestSchedulerSkippedRunIsNeitherRetriedNorAFailure(t *testing.T) {
	errLocked := fmt.Errorf("another replica holds the run: %w", collector.ErrSkipped)
	var attempts atomic.Int32
	var reported error
	s, logs := newScheduler(t, collector.Job{Name: "caseload", Timeout: time.Second, Retries: 3, Backoff: time.Millisecond,
		Run:  func(context.Context, int) error { attempts.Add(1); return errLocked },
		Done: func(err error) { reported = err }})
	err := s.RunNow(t.Context(), "caseload")
	if !errors.Is(err, collector.ErrSkipped) {
		t.Fatalf("RunNow = %v, want the skip", err)
	}
	if n := attempts.Load(); n != 1 {
		t.Errorf("a skipped run was attempted %d times", n)
	}
	if !errors.Is(reported, collector.ErrSkipped) {
		t.Errorf("Done got %v, want the skip", reported)
	}
	if recs := logs.find("collector run failed"); len(recs) != 0 {
		t.Errorf("a skipped run was logged as a failure: %+v", recs)
	}
	if recs := logs.find("collector run skipped"); len(recs) != 1 || recs[0].level != slog.LevelInfo {
		t.Errorf("skip records = %+v, want one at info", recs)
	}
}

func TestSchedulerRunsAScheduleFromTheConfig(t *testing.T) {
	// cron's own floor: a real descriptor, as config.Load parses it.
	sched, err := config.ParseSchedule("@every 1s")
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	s, _ := newScheduler(t, collector.Job{Name: "caseload", Schedule: sched, Timeout: time.Second,
		Run: func(context.Context, int) error { runs.Add(1); return nil }})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the job never ran on its parsed schedule", func() bool { return runs.Load() >= 1 })
}
