package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carewatch/carewatch/kpi"
)

// pendingRunsPerCollector is how many failed runs of one collector are kept
// in memory while the store cannot record them. Past it the oldest is
// dropped and counted in carewatch_collector_unrecorded_runs_dropped_total:
// a collector on a one-minute schedule keeps the last 100 minutes of an
// outage.
const pendingRunsPerCollector = 100

// runSaver is the part of the store that records runs.
type runSaver interface {
	SaveRun(ctx context.Context, run kpi.Run, obs []kpi.Observation) (kpi.RunResult, error)
}

// pendingRuns holds, in the order they ended, the failed runs the store
// could not record (it was down or did not answer), so that they are
// recorded once it answers again and collector health, failures_total and
// the collector-failing alert show them.
type pendingRuns struct {
	limit int
	// timeout bounds each run's recording.
	timeout time.Duration
	waiting *prometheus.GaugeVec
	dropped *prometheus.CounterVec

	// flushMu lets one flush run at a time, so runs are recorded in order.
	flushMu sync.Mutex

	mu   sync.Mutex // guards runs, per and saving
	runs []*kpi.Run
	per  map[string]int
	// saving is the run a flush is recording now: it is never dropped.
	saving *kpi.Run
}

// newPendingRuns returns an empty queue keeping at most limit runs per
// collector and giving the store timeout to record each, its metrics
// registered in reg.
func newPendingRuns(limit int, timeout time.Duration, reg prometheus.Registerer) (*pendingRuns, error) {
	p := &pendingRuns{
		limit:   limit,
		timeout: timeout,
		per:     map[string]int{},
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "carewatch_collector_unrecorded_runs",
			Help: "Failed runs of the collector kept in memory because the store could not record them; they are recorded when it answers again.",
		}, []string{"collector"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carewatch_collector_unrecorded_runs_dropped_total",
			Help: fmt.Sprintf("Failed runs of the collector that were never recorded: dropped, oldest first, past %d waiting for the store, or still waiting at shutdown.", limit),
		}, []string{"collector"}),
	}
	for _, c := range []prometheus.Collector{p.waiting, p.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// add queues run. When its collector already has limit runs waiting, the
// oldest of them is dropped and returned.
func (p *pendingRuns) add(run kpi.Run) (dropped *kpi.Run) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.per[run.Collector] >= p.limit {
		for i, r := range p.runs {
			if r.Collector == run.Collector && r != p.saving {
				dropped = r
				p.removeLocked(i)
				p.dropped.WithLabelValues(run.Collector).Inc()
				break
			}
		}
	}
	p.runs = append(p.runs, &run)
	p.per[run.Collector]++
	p.waiting.WithLabelValues(run.Collector).Set(float64(p.per[run.Collector]))
	return dropped
}

func (p *pendingRuns) removeLocked(i int) {
	c := p.runs[i].Collector
	p.runs = append(p.runs[:i], p.runs[i+1:]...)
	p.per[c]--
	p.waiting.WithLabelValues(c).Set(float64(p.per[c]))
	if p.per[c] == 0 {
		delete(p.per, c)
	}
}

// len returns how many runs are waiting.
func (p *pendingRuns) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.runs)
}

// flush records the waiting runs in the order they ended, and stops at the
// first the store does not record, which stays first in the queue with
// those after it. It returns how many it recorded and the ID of the last.
func (p *pendingRuns) flush(ctx context.Context, st runSaver) (recorded int, lastID int64, err error) {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	for {
		p.mu.Lock()
		if len(p.runs) == 0 {
			p.mu.Unlock()
			return recorded, lastID, nil
		}
		run := p.runs[0]
		p.saving = run
		p.mu.Unlock()

		sctx, cancel := context.WithTimeout(ctx, p.timeout)
		res, err := st.SaveRun(sctx, *run, nil)
		cancel()

		p.mu.Lock()
		p.saving = nil
		// add never drops the run being saved, but drain may have
		// emptied the queue meanwhile.
		if err == nil && len(p.runs) > 0 && p.runs[0] == run {
			p.removeLocked(0)
		}
		p.mu.Unlock()
		if err != nil {
			return recorded, lastID, err
		}
		recorded++
		lastID = res.RunID
	}
}

// drain empties the queue and returns what it held, counting each run as
// dropped.
func (p *pendingRuns) drain() []*kpi.Run {
	p.mu.Lock()
	defer p.mu.Unlock()
	runs := p.runs
	for _, r := range runs {
		p.dropped.WithLabelValues(r.Collector).Inc()
		p.waiting.WithLabelValues(r.Collector).Set(0)
	}
	p.runs, p.per = nil, map[string]int{}
	return runs
}

// recordPending records the failed runs waiting for the store, in order,
// and publishes the collectors' health if it recorded any.
func (d *daemon) recordPending(ctx context.Context) {
	foreign := d.foreign.Load()
	n, lastID, err := d.pending.flush(ctx, d.store)
	if n > 0 {
		level := slog.LevelDebug // a run recorded as it failed
		if n > 1 {
			level = slog.LevelInfo
		}
		d.logger.Log(ctx, level, "recorded failed runs", "runs", n, "waiting", d.pending.len())
		// Failed runs carry no observations: only the collectors' health
		// is read back.
		d.publishOwnRun(ctx, lastID, time.Time{}, nil, foreign)
	}
	if err != nil && ctx.Err() == nil {
		d.setStoreUp(false)
		d.logger.Warn("the store did not record a failed run; kept in memory until it answers",
			"waiting", d.pending.len(), "err", err)
	}
}

// recordPendingAtShutdown is the last try at recording the waiting failed
// runs; those the store still does not record are lost, and each is logged.
func (d *daemon) recordPendingAtShutdown(ctx context.Context) error {
	if d.pending.len() == 0 {
		return nil
	}
	d.recordPending(ctx)
	lost := d.pending.drain()
	for _, r := range lost {
		d.logger.Error("failed run lost: the store did not record it before shutdown",
			"collector", r.Collector, "started", r.StartedAt, "finished", r.FinishedAt, "err", r.Err)
	}
	if len(lost) > 0 {
		return fmt.Errorf("%d failed runs not recorded", len(lost))
	}
	return nil
}
