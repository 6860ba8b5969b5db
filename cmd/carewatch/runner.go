package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// runner is one collector's pipeline: source → store → snapshot. It is the
// only place where the collector, store and exporter rooms meet.
type runner struct {
	d        *daemon
	cfg      *config.Config
	cc       *config.CollectorConfig
	src      collector.Source
	checks   *collector.Checks
	describe struct{ source, query string }
	// reads is what the last attempt of the current run read.
	reads  []kpi.Read
	logger *slog.Logger

	// started is when the current run's first attempt began; runs of one
	// collector never overlap, so it needs no lock.
	started time.Time
	// claimed is whether the current run holds the claim on its tick.
	claimed bool
}

// errLockedElsewhere says another replica is running this collector now: the
// run ends at once, without a retry and without a failure.
// errTickClaimed says another replica claimed this tick of the schedule.
var errTickClaimed = fmt.Errorf("another carewatch replica ran this tick: %w", collector.ErrSkipped)

var errLockedElsewhere = fmt.Errorf("another carewatch replica is running this collector: %w", collector.ErrSkipped)

func (d *daemon) newRunner(gen *generation, cc *config.CollectorConfig) (*runner, error) {
	src, err := gen.factory.Source(cc)
	if err != nil {
		return nil, err
	}
	r := &runner{d: d, cfg: gen.cfg, cc: cc, src: src, checks: newChecks(gen.cfg, cc), logger: d.logger.With("collector", cc.Name)}
	r.describe.source, r.describe.query = src.Describe()
	return r, nil
}

// newChecks returns collector cc's checks.
func newChecks(cfg *config.Config, cc *config.CollectorConfig) *collector.Checks {
	typ := ""
	if sc := cfg.SourceByName(cc.Source); sc != nil {
		typ = sc.Type
	}
	return collector.NewChecks(cc, typ)
}

func (r *runner) job() collector.Job {
	return collector.Job{
		Name:       r.cc.Name,
		Schedule:   r.cc.ParsedSchedule,
		RunOnStart: r.cc.RunOnStart,
		Timeout:    r.cfg.EffectiveTimeout(r.cc),
		Retries:    r.cfg.EffectiveRetries(r.cc),
		Backoff:    r.cfg.EffectiveRetryBackoff(r.cc),
		Run:        r.attempt,
		Done:       r.done,
	}
}

func (r *runner) runInfo(at time.Time) kpi.RunInfo {
	return kpi.RunInfo{Collector: r.cc.Name, At: at, Location: r.cfg.Location}
}

// attempt is one try at a run: collect, then store in one transaction,
// then refresh the snapshot. An error makes the scheduler try again.
func (r *runner) attempt(ctx context.Context, attempt int) error {
	if attempt <= 1 || r.started.IsZero() {
		r.started = time.Now()
	}
	// A scheduled run claims its tick once, whatever its retries: the
	// replica that claims it first runs it, the others skip it.
	if tick, ok := collector.TickOf(ctx); ok && !r.claimed {
		won, err := r.d.store.ClaimTick(ctx, r.cc.Name, tick)
		if err != nil {
			return fmt.Errorf("claiming the tick: %w", err)
		}
		if !won {
			return errTickClaimed
		}
		r.claimed = true
	}
	release, ok, err := r.d.store.TryRunLock(ctx, r.cc.Name)
	if err != nil {
		return fmt.Errorf("taking the run lock: %w", err)
	}
	if !ok {
		return errLockedElsewhere
	}
	defer release()

	info := r.runInfo(r.started)
	info.Provenance = &kpi.Provenance{}
	obs, warnings, err := r.checks.Collect(ctx, r.src, info, r.d.store)
	r.reads = info.Provenance.Reads()
	r.describe.source, r.describe.query = r.src.Describe()
	if err != nil {
		return err
	}
	for _, w := range warnings {
		r.logger.Warn("check failed; the run is published with a warning", "check", w.Check, "kpi", w.KPI, "failures", w.Failures, "msg", w.Message)
	}
	run := kpi.Run{Collector: r.cc.Name, Source: r.describe.source, Query: r.describe.query, Reads: r.reads, StartedAt: r.started, FinishedAt: time.Now(), Checks: warnings}
	if r.d.pending.len() > 0 {
		// Runs that failed while the store was down go in first, in order.
		r.d.recordPending(ctx)
	}
	foreign := r.d.foreign.Load()
	res, err := r.d.store.SaveRun(ctx, run, obs)
	if err != nil {
		return fmt.Errorf("storing %d observations: %w", len(obs), err)
	}
	for _, c := range res.StatusChanges {
		level := slog.LevelInfo
		if c.From == kpi.StatusNone {
			level = slog.LevelDebug // a series' first status is no news
		}
		r.logger.Log(ctx, level, "status changed", "kpi", c.KPI.Name, "labels", kpi.LabelString(c.KPI, c.Labels), "from", c.From.String(), "to", c.To.String(), "value", c.Value.String())
	}
	r.logger.Info("run stored", "run", res.RunID, "observations", res.Observations, "inserted", res.Inserted, "revised", res.Revised, "unchanged", res.Unchanged)
	r.d.publishOwnRun(ctx, res.RunID, run.FinishedAt, obs, foreign)
	return nil
}

// done records a run that failed after all its attempts, so its failure is
// counted, shown in carewatch_collector_last_run_success and kept in the
// store's run history; the stored values stay as they were.
func (r *runner) done(err error) {
	defer func() { r.started, r.reads, r.claimed = time.Time{}, nil, false }()
	if err == nil || errors.Is(err, collector.ErrSkipped) {
		return
	}
	if errors.Is(err, context.Canceled) {
		// Cancelled by a shutdown or a reload, not failed: recording it
		// would fire the collector-failing alert on every restart.
		r.logger.Info("run cancelled before it finished; nothing recorded")
		return
	}
	// The daemon's context, not the run's: a run that failed at its
	// deadline is still recorded; the store bounds every call.
	ctx := r.d.ctx
	run := kpi.Run{Collector: r.cc.Name, Source: r.describe.source, Query: r.describe.query, Reads: r.reads, StartedAt: r.started, FinishedAt: time.Now(), Err: err,
		Checks: collector.CheckFailures(err)}
	if run.StartedAt.IsZero() {
		run.StartedAt = run.FinishedAt
	}
	// Queued first, so that it is recorded after any run that failed
	// before it while the store was down.
	if lost := r.d.pending.add(run); lost != nil {
		r.logger.Warn("failed run dropped: too many waiting for the store", "started", lost.StartedAt, "err", lost.Err, "limit", pendingRunsPerCollector)
	}
	r.d.recordPending(ctx)
}
