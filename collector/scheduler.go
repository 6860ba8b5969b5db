package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
)

// DefaultJobTimeout bounds a job whose Timeout is unset: every run has a
// deadline (design decision 7).
const DefaultJobTimeout = 5 * time.Minute

// Job is one scheduled piece of work, such as a collector run. The scheduler
// knows nothing of what Run does.
type Job struct {
	Name string
	// Schedule says when the job runs; nil means only on start or on demand.
	Schedule cron.Schedule
	// RunOnStart runs the job once as soon as the scheduler starts.
	RunOnStart bool
	// Timeout bounds a whole run, retries and their waits included;
	// zero means DefaultJobTimeout.
	Timeout time.Duration
	// Retries is how many times a failed attempt is tried again.
	Retries int
	// Backoff is the wait before the first retry; it doubles each time.
	Backoff time.Duration
	// Run does the work of one attempt, numbered from 1, within ctx.
	Run func(ctx context.Context, attempt int) error
	// Done, if set, is called once after each run with its outcome: nil on
	// success, else the last attempt's error. A tick skipped because the job
	// was still running is not a run and does not call it.
	Done func(err error)
}

// ErrSkipped is what a Run returns, wrapped, to end a run at once without
// retrying it or logging it as a failure: another replica holds the run, say.
var ErrSkipped = errors.New("run skipped")

// Scheduler runs jobs on their cron schedules, never two runs of one job at
// once, each run bounded by its timeout and retried with backoff inside it.
type Scheduler struct {
	loc    *time.Location
	logger *slog.Logger
	jobs   []*jobState
	err    error // a defect of the job list, reported by Start and RunNow

	// kill is cancelled when Stop's deadline passes, to cancel every run
	// still in flight.
	kill       context.Context
	cancelKill context.CancelFunc

	mu        sync.Mutex
	cron      *cron.Cron
	started   bool
	stopping  bool
	startTime time.Time
	// stopOnCancel unregisters Start's watch on its context.
	stopOnCancel func() bool
	inFlight     sync.WaitGroup
}

type jobState struct {
	Job
	logger *slog.Logger
	// running is shared with the same job of the scheduler this one took
	// over from (TakeOver), so that a reload never overlaps two runs.
	running *atomic.Bool

	// entry is the job's cron entry, set by Start before the cron runs.
	entry cron.EntryID

	mu sync.Mutex
	// lastTick is the schedule's latest tick that fired, or, before any,
	// the instant from which this scheduler answers for the schedule.
	lastTick time.Time
}

func (j *jobState) setLastTick(t time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if t.After(j.lastTick) {
		j.lastTick = t
	}
}

func (j *jobState) getLastTick() time.Time {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lastTick
}

// tickKey carries a scheduled run's tick in its context.
type tickKey struct{}

// TickOf returns the scheduled instant a run is for: the tick of its
// schedule that started it, the same on every replica. ok is false for a
// run on start or on demand.
func TickOf(ctx context.Context) (tick time.Time, ok bool) {
	tick, ok = ctx.Value(tickKey{}).(time.Time)
	return tick, ok
}

// alignedEvery is "@every d" with its ticks on the multiples of d counted
// from a fixed instant, rather than from when the scheduler started: every
// replica, and the scheduler a reload starts, tick at the same instants.
type alignedEvery struct{ d time.Duration }

func (a alignedEvery) Next(t time.Time) time.Time {
	return t.Truncate(a.d).Add(a.d)
}

// aligned replaces an @every schedule by its aligned form.
func aligned(s cron.Schedule) cron.Schedule {
	if c, ok := s.(cron.ConstantDelaySchedule); ok && c.Delay > 0 {
		return alignedEvery{c.Delay}
	}
	if c, ok := s.(*cron.ConstantDelaySchedule); ok && c != nil && c.Delay > 0 {
		return alignedEvery{c.Delay}
	}
	return s
}

// NewScheduler returns a scheduler for jobs, whose cron schedules are read in
// loc (UTC if nil). Nothing runs until Start or RunNow.
func NewScheduler(loc *time.Location, logger *slog.Logger, jobs []Job) *Scheduler {
	if loc == nil {
		loc = time.UTC
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{loc: loc, logger: logger}
	s.kill, s.cancelKill = context.WithCancel(context.Background())
	seen := make(map[string]bool)
	for _, j := range jobs {
		switch {
		case j.Name == "":
			s.err = errors.Join(s.err, errors.New("scheduler: a job has no name"))
			continue
		case seen[j.Name]:
			s.err = errors.Join(s.err, fmt.Errorf("scheduler: collector %q is scheduled twice", j.Name))
			continue
		case j.Run == nil:
			s.err = errors.Join(s.err, fmt.Errorf("scheduler: collector %q has nothing to run", j.Name))
			continue
		}
		seen[j.Name] = true
		if j.Timeout <= 0 {
			j.Timeout = DefaultJobTimeout
		}
		if j.Schedule != nil {
			j.Schedule = aligned(j.Schedule)
		}
		s.jobs = append(s.jobs, &jobState{Job: j, logger: logger.With("collector", j.Name), running: new(atomic.Bool)})
	}
	return s
}

// Start begins running the jobs on their schedules and runs the RunOnStart
// jobs at once. ctx carries values to the runs; its cancellation stops the
// scheduling of new runs, but runs in flight are cancelled only when Stop's
// deadline passes, so that a shutdown can let them finish.
func (s *Scheduler) Start(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopping:
		return errors.New("scheduler: cannot start after Stop")
	case s.started:
		return errors.New("scheduler: already started")
	}
	if ctx.Err() != nil {
		return fmt.Errorf("scheduler: not started: %w", ctx.Err())
	}
	s.started = true
	s.startTime = time.Now()
	base := context.WithoutCancel(ctx)
	s.cron = cron.New(cron.WithLocation(s.loc), cron.WithLogger(cronLogger{s.logger}))
	now := time.Now()
	for _, j := range s.jobs {
		if j.Schedule == nil {
			continue
		}
		j.entry = s.cron.Schedule(j.Schedule, cron.FuncJob(func() {
			// The entry's Prev is the tick that fired, whenever this
			// goroutine gets to run.
			tick := s.cron.Entry(j.entry).Prev
			j.setLastTick(tick)
			s.scheduled(context.WithValue(base, tickKey{}, tick), j, "schedule")
		}))
		// A tick that fell between the scheduler this one took over from
		// and now is run at once: a reload loses no tick.
		if from := j.getLastTick(); !from.IsZero() {
			if tick := j.Schedule.Next(from.In(s.loc)); !tick.After(now) {
				j.setLastTick(tick)
				go s.scheduled(context.WithValue(base, tickKey{}, tick), j, "catch-up")
			}
		}
	}
	s.cron.Start()
	for _, j := range s.jobs {
		if j.RunOnStart {
			go s.scheduled(base, j, "start")
		}
	}
	// Stop releases this, so that a scheduler replaced by a reload is not
	// kept alive by the daemon's long-lived context.
	s.stopOnCancel = context.AfterFunc(ctx, func() { s.cron.Stop() })
	return nil
}

// TakeOver makes s, not yet started, the successor of old, which stops
// scheduling at once (its runs in flight go on: Stop it to wait for them).
// A job of s that old also had, on the same schedule, carries on from old's
// last tick, and a tick due meanwhile runs when s starts; its runs never
// overlap old's. A new or rescheduled job answers for its ticks from now.
func (s *Scheduler) TakeOver(old *Scheduler) {
	handoff := old.stopScheduling()
	prev := make(map[string]*jobState, len(old.jobs))
	for _, j := range old.jobs {
		prev[j.Name] = j
	}
	for _, j := range s.jobs {
		p := prev[j.Name]
		if p == nil {
			j.setLastTick(handoff)
			continue
		}
		j.running = p.running
		if j.Schedule != nil && sameSchedule(j.Schedule, p.Schedule) {
			if last := p.getLastTick(); !last.IsZero() {
				j.setLastTick(last)
				continue
			}
		}
		j.setLastTick(handoff)
	}
}

// sameSchedule reports whether a and b tick at the same instants, as far as
// can be told: equal values (parsed cron specs, @every durations).
func sameSchedule(a, b cron.Schedule) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	sa, aok := a.(*cron.SpecSchedule)
	sb, bok := b.(*cron.SpecSchedule)
	if aok && bok {
		return *sa == *sb
	}
	return a == b
}

// stopScheduling stops the cron, so no new run starts, and returns when;
// runs in flight go on. Each job's last tick is from then on final.
func (s *Scheduler) stopScheduling() time.Time {
	s.mu.Lock()
	c := s.cron
	s.mu.Unlock()
	now := time.Now()
	if c != nil {
		// Stop's context waits for runs in flight; this does not. Once
		// stopped, the entries say which tick each job fired last.
		c.Stop()
		for _, j := range s.jobs {
			if j.entry != 0 {
				if prev := c.Entry(j.entry).Prev; !prev.IsZero() {
					j.setLastTick(prev)
				}
			}
		}
	}
	for _, j := range s.jobs {
		if j.getLastTick().IsZero() {
			j.setLastTick(s.startedAt(now))
		}
	}
	return now
}

// startedAt is when s began answering for its schedules: its start, or
// now if it never started.
func (s *Scheduler) startedAt(now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.startTime.IsZero() {
		return now
	}
	return s.startTime
}

// scheduled runs j for the schedule or the start, unless it is already
// running or the scheduler is stopping.
func (s *Scheduler) scheduled(ctx context.Context, j *jobState, trigger string) {
	if !j.running.CompareAndSwap(false, true) {
		j.logger.Warn("collector run skipped: the previous run is still in progress", "trigger", trigger)
		return
	}
	defer j.running.Store(false)
	if !s.enter() {
		return
	}
	defer s.inFlight.Done()
	_ = s.run(ctx, j, trigger)
}

// enter counts a run as in flight, unless the scheduler is stopping.
func (s *Scheduler) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.inFlight.Add(1)
	return true
}

// RunNow runs the named job at once and returns its outcome, whether or not
// the scheduler was started. It refuses when that job is already running.
func (s *Scheduler) RunNow(ctx context.Context, name string) error {
	if s.err != nil {
		return s.err
	}
	i := slices.IndexFunc(s.jobs, func(j *jobState) bool { return j.Name == name })
	if i < 0 {
		return fmt.Errorf("scheduler: no collector %q", name)
	}
	j := s.jobs[i]
	if !j.running.CompareAndSwap(false, true) {
		return fmt.Errorf("collector %q is already running", name)
	}
	defer j.running.Store(false)
	if !s.enter() {
		return fmt.Errorf("collector %q: the scheduler is stopping", name)
	}
	defer s.inFlight.Done()
	return s.run(ctx, j, "manual")
}

// run is one run of j: its attempts under its timeout, logged.
func (s *Scheduler) run(parent context.Context, j *jobState, trigger string) error {
	ctx, cancel := context.WithTimeout(parent, j.Timeout)
	defer cancel()
	stop := context.AfterFunc(s.kill, cancel)
	defer stop()

	start := time.Now()
	attempts, err := s.attempts(ctx, j)
	duration := time.Since(start)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && parent.Err() == nil {
		err = fmt.Errorf("run timed out after %s: %w", j.Timeout, err)
	}
	switch {
	case err == nil:
		j.logger.Info("collector run succeeded", "trigger", trigger, "attempts", attempts, "duration", duration)
	case errors.Is(err, ErrSkipped):
		j.logger.Info("collector run skipped", "trigger", trigger, "reason", err)
	default:
		j.logger.Error("collector run failed", "trigger", trigger, "attempts", attempts, "duration", duration, "err", err)
	}
	if j.Done != nil {
		s.done(j, err)
	}
	return err
}

// done calls j.Done, which must not take the scheduler down either.
func (s *Scheduler) done(j *jobState, err error) {
	defer func() {
		if r := recover(); r != nil {
			j.logger.Error("collector run's completion panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	j.Done(err)
}

// attempts tries j until it succeeds, fails permanently, runs out of
// retries, or the time left cannot cover the next backoff.
func (s *Scheduler) attempts(ctx context.Context, j *jobState) (int, error) {
	backoff := j.Backoff
	for attempt := 1; ; attempt++ {
		err := s.attempt(ctx, j, attempt)
		if err == nil {
			return attempt, nil
		}
		if attempt > j.Retries || IsPermanent(err) || errors.Is(err, ErrSkipped) || ctx.Err() != nil {
			return attempt, err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= backoff {
			return attempt, fmt.Errorf("no time left to retry within the timeout: %w", err)
		}
		j.logger.Warn("collector attempt failed; retrying", "attempt", attempt, "backoff", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, err
		case <-t.C:
		}
		if backoff < time.Hour {
			backoff *= 2
		}
	}
}

// attempt calls j.Run once, turning a panic into a permanent error so that
// a bug in one collector never stops the daemon.
func (s *Scheduler) attempt(ctx context.Context, j *jobState, attempt int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			j.logger.Error("collector run panicked", "attempt", attempt, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = Permanent(fmt.Errorf("panic: %v", r))
		}
	}()
	return j.Run(ctx, attempt)
}

// Stop stops scheduling new runs and waits for the runs in flight. If ctx
// ends first, it cancels them and returns an error naming them; they finish
// on their own soon after, their context being done.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	if s.cron != nil {
		s.cron.Stop()
	}
	if s.stopOnCancel != nil {
		s.stopOnCancel()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.inFlight.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancelKill()
		return nil
	case <-ctx.Done():
		s.cancelKill()
		var running []string
		for _, j := range s.jobs {
			if j.running.Load() {
				running = append(running, fmt.Sprintf("%q", j.Name))
			}
		}
		return fmt.Errorf("scheduler: runs still in flight were cancelled (%s): %w", strings.Join(running, ", "), ctx.Err())
	}
}

// cronLogger sends cron's own messages to slog: its routine chatter at
// debug, its errors at error.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) {
	c.l.Debug("cron: "+msg, kv...)
}

func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append([]any{"err", err}, kv...)...)
}

// Permanent marks err as one that retrying cannot mend (a syntax error, a
// row that does not map), so that the scheduler does not try again.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }
