package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/exporter"
	"github.com/carewatch/carewatch/internal/cli"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/store"
)

// daemonOptions are what the run and demo commands hand the daemon.
type daemonOptions struct {
	ConfigFile string
	Web        *web.FlagConfig
	// EnableLifecycle allows reloads over HTTP (--web.enable-lifecycle).
	EnableLifecycle bool
	// Listener, when set, is served instead of the --web.listen-address
	// addresses (tests listen on port 0).
	Listener        net.Listener
	ShutdownTimeout time.Duration
	// Reload receives a value for every SIGHUP.
	Reload <-chan struct{}
	Logger *slog.Logger
	// Started, if set, is called once the daemon serves its first snapshot.
	Started func(d *daemon)
}

// daemon is a running carewatch: one store, one exporter, and the
// collectors of the configuration currently in force.
type daemon struct {
	// ctx is the daemon's lifetime: schedulers live on it, whatever context
	// a reload was asked for with.
	ctx      context.Context
	opts     daemonOptions
	logger   *slog.Logger
	store    *store.Store
	exporter *exporter.Exporter
	reloadM  *exporter.ReloadMetrics
	storeUp  *storeHealth
	// pending holds the failed runs the store could not record yet.
	pending *pendingRuns

	mu       sync.Mutex // guards active
	active   *generation
	reloadMu sync.Mutex // serialises reloads
	// retiring counts the generations replaced by reloads whose runs in
	// flight have not finished yet.
	retiring sync.WaitGroup

	refreshMu sync.Mutex
	// builtAt is when the current snapshot was last built from every
	// series (refresh); guarded by refreshMu.
	builtAt time.Time
	// foreign counts the notifications of other replicas' runs received
	// (see publishOwnRun).
	foreign atomic.Int64
}

// generation is one loaded configuration with its sources and scheduler;
// a reload replaces the whole generation.
type generation struct {
	cfg *config.Config
	// factory built the sources and owns their connection pools.
	factory   *collector.Sources
	scheduler *collector.Scheduler
	sources   map[string]*runner
}

// runDaemon runs until ctx ends, then shuts down in order: stop serving,
// stop the scheduler and wait for runs in flight, close sources and store.
func runDaemon(ctx context.Context, o daemonOptions) error {
	logger := o.Logger
	cfg, err := loadConfig(o.ConfigFile)
	if err != nil {
		return err
	}
	// Listen first: an address in use ends the start at once.
	listeners, err := listen(o)
	if err != nil {
		return err
	}
	serving := false
	defer func() {
		if !serving {
			for _, l := range listeners {
				l.Close()
			}
		}
	}()
	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer st.Close()

	d, self, err := newDaemon(ctx, o, st)
	if err != nil {
		return err
	}

	// The first snapshot comes from the store, so a restart serves the same
	// numbers as before it, before any collector has run again.
	if err := d.refresh(ctx, cfg); err != nil {
		return fmt.Errorf("building the first snapshot from the store: %w", err)
	}
	gen, err := d.newGeneration(ctx, cfg, true)
	if err != nil {
		return err
	}
	d.active = gen
	d.reloadM.Succeeded(time.Now())

	server, serveErr, err := d.serve(self, listeners)
	if err != nil {
		gen.stop(ctx)
		return err
	}
	serving = true

	if err := gen.scheduler.Start(ctx); err != nil {
		server.Close()
		gen.stop(ctx)
		return fmt.Errorf("starting the scheduler: %w", err)
	}
	logger.Info("carewatch started", "kpis", len(cfg.Catalogue), "collectors", len(cfg.Collectors))

	var wg sync.WaitGroup
	d.startBackground(ctx, &wg)
	if o.Started != nil {
		o.Started(d)
	}

	runErr := d.loop(ctx, serveErr)
	d.shutdown(server)
	wg.Wait()
	return runErr
}

// listen returns the listener the caller handed over, or opens those the
// web options name.
func listen(o daemonOptions) ([]net.Listener, error) {
	if o.Listener != nil {
		return []net.Listener{o.Listener}, nil
	}
	return cli.Listen(o.Web)
}

// newDaemon builds the daemon around an open store and registers its own
// metrics in the self registry it returns.
func newDaemon(ctx context.Context, o daemonOptions, st *store.Store) (*daemon, *prometheus.Registry, error) {
	self := exporter.NewSelfRegistry()
	reloadM, err := exporter.NewReloadMetrics(self)
	if err != nil {
		return nil, nil, err
	}
	d := &daemon{
		ctx:      ctx,
		opts:     o,
		logger:   o.Logger,
		store:    st,
		exporter: exporter.New(o.Logger),
		reloadM:  reloadM,
		storeUp:  &storeHealth{timeout: st.Timeout()},
	}
	if err := self.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: exporter.StoreUpMetric,
		Help: "Whether carewatch's PostgreSQL store answered its last round trip and has answered one within the store's timeout (1) or not (0).",
	}, d.storeUp.value)); err != nil {
		return nil, nil, err
	}
	if err := self.Register(exporter.NewTimezoneCollector(d.location, time.Now)); err != nil {
		return nil, nil, err
	}
	if d.pending, err = newPendingRuns(pendingRunsPerCollector, st.Timeout(), self); err != nil {
		return nil, nil, err
	}
	return d, self, nil
}

// serve starts serving the exporter's pages on listeners (or on the
// addresses the web options name when there are none). The channel receives
// the error serving ended with.
func (d *daemon) serve(self *prometheus.Registry, listeners []net.Listener) (*http.Server, <-chan error, error) {
	mux, err := exporter.NewMux(exporter.MuxOptions{
		Exporter: d.exporter,
		Self:     self,
		Reload: func(ctx context.Context) error {
			return d.logReload(ctx, "HTTP", d.reload(ctx))
		},
		EnableLifecycle: d.opts.EnableLifecycle,
		Version:         version.Version,
		Report:          d.reportHandler(),
	})
	if err != nil {
		return nil, nil, err
	}
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() {
		if len(listeners) > 0 {
			serveErr <- web.ServeMultiple(listeners, server, d.opts.Web, d.logger)
		} else {
			serveErr <- web.ListenAndServe(server, d.opts.Web, d.logger)
		}
	}()
	return server, serveErr, nil
}

// startBackground starts the store watch, the pruning of old runs and the
// listening for other replicas' runs; each ends with ctx and marks wg done.
func (d *daemon) startBackground(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(3)
	go func() { defer wg.Done(); d.watchStore(ctx) }()
	go func() { defer wg.Done(); d.pruneRuns(ctx) }()
	go func() {
		defer wg.Done()
		// Another replica's run changes what this one must serve; this
		// one's own runs were published as they were stored.
		if err := d.store.Listen(ctx, func(n store.Notification) {
			if !n.Own {
				d.foreign.Add(1)
			}
			switch {
			case n.Own:
			case n.RunID > 0:
				d.publishRun(ctx, n.RunID)
			default:
				d.refreshActive(ctx)
			}
		}); err != nil && ctx.Err() == nil {
			d.logger.Warn("listening for other replicas' runs stopped", "err", err)
		}
	}()
}

// loop reloads on every SIGHUP until ctx ends or serving HTTP stops; it
// returns the serving error, if serving ended with one.
func (d *daemon) loop(ctx context.Context, serveErr <-chan error) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.opts.Reload:
			_ = d.logReload(ctx, "SIGHUP", d.reload(ctx))
		case err := <-serveErr:
			if !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving HTTP: %w", err)
			}
			return nil
		}
	}
}

// logReload logs the outcome of a reload asked for by trigger (SIGHUP,
// HTTP) and returns err.
func (d *daemon) logReload(ctx context.Context, trigger string, err error) error {
	if err != nil {
		d.logger.Error("reload failed; keeping the running configuration", "trigger", trigger, "err", err)
	}
	return err
}

// shutdown runs the ordered, bounded shutdown steps.
func (d *daemon) shutdown(server *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), d.shutdownTimeout())
	defer cancel()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"stop serving HTTP", server.Shutdown},
		{"stop the scheduler and wait for runs in flight", func(ctx context.Context) error {
			// No reload may start a new scheduler behind this one's back.
			d.reloadMu.Lock()
			defer d.reloadMu.Unlock()
			err := d.current().stop(ctx)
			// Configurations replaced by reloads may still have runs in
			// flight; their own stops end them by the same deadline.
			retired := make(chan struct{})
			go func() { d.retiring.Wait(); close(retired) }()
			select {
			case <-retired:
			case <-ctx.Done():
				err = errors.Join(err, fmt.Errorf("runs of a replaced configuration still in flight: %w", ctx.Err()))
			}
			return err
		}},
		{"record the runs that failed while the store was down", d.recordPendingAtShutdown},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.fn(ctx); err != nil {
			d.logger.Warn("shutdown step failed", "step", s.name, "err", err)
			continue
		}
		d.logger.Info("shutdown step done", "step", s.name, "duration", time.Since(start))
	}
}

// shutdownTimeout bounds how long runs in flight may take to finish when a
// shutdown or a reload stops them.
func (d *daemon) shutdownTimeout() time.Duration {
	if d.opts.ShutdownTimeout <= 0 {
		return 30 * time.Second
	}
	return d.opts.ShutdownTimeout
}

// newGeneration opens the configuration's sources and builds its scheduler;
// it does not start it. Collectors run on start only at the daemon's first
// start: a reload that changes a threshold must not query every source again.
func (d *daemon) newGeneration(ctx context.Context, cfg *config.Config, first bool) (*generation, error) {
	gen := &generation{cfg: cfg, factory: collector.NewSources(cfg), sources: map[string]*runner{}}
	jobs := make([]collector.Job, 0, len(cfg.Collectors))
	for i := range cfg.Collectors {
		cc := &cfg.Collectors[i]
		r, err := d.newRunner(gen, cc)
		if err != nil {
			gen.closeSources()
			return nil, err
		}
		gen.sources[cc.Name] = r
		job := r.job()
		job.RunOnStart = job.RunOnStart && first
		jobs = append(jobs, job)
	}
	gen.scheduler = collector.NewScheduler(cfg.Location, d.logger, jobs)
	// The store learns the catalogue last, so a generation that cannot be
	// built leaves the catalogue in force recorded as it was.
	if err := d.store.SyncCatalogue(ctx, cfg.Catalogue); err != nil {
		gen.closeSources()
		return nil, fmt.Errorf("recording the KPI catalogue: %w", err)
	}
	return gen, nil
}

func (g *generation) stop(ctx context.Context) error {
	err := g.scheduler.Stop(ctx)
	g.closeSources()
	return err
}

func (g *generation) closeSources() {
	_ = g.factory.Close()
}

// reload loads the configuration file again. A bad file, or one whose
// sources cannot be set up, leaves the running configuration in force.
func (d *daemon) reload(ctx context.Context) error {
	// reloadMu serialises reloads; d.mu is held only to swap generations,
	// never while waiting for runs, because a run ends by refreshing the
	// snapshot, which reads d.active under d.mu.
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	old := d.current()
	cfg, err := loadConfig(d.opts.ConfigFile)
	var gen *generation
	if err == nil {
		gen, err = d.newGeneration(ctx, cfg, false)
	}
	if err != nil {
		d.reloadM.Failed()
		return fmt.Errorf("reloading %s: %w", d.opts.ConfigFile, err)
	}
	if d.ctx.Err() != nil {
		// Shutting down: the new configuration must not start collecting.
		gen.stop(context.Background())
		return fmt.Errorf("reloading %s: carewatch is shutting down", d.opts.ConfigFile)
	}
	// The new scheduler takes over from the old one at once: a tick due
	// meanwhile runs when it starts, @every keeps its instants, and no run
	// overlaps one of the old configuration still in flight.
	gen.scheduler.TakeOver(old.scheduler)
	d.mu.Lock()
	d.active = gen
	d.mu.Unlock()
	if err := gen.scheduler.Start(d.ctx); err != nil {
		// Cannot happen with a validated config (unique names); say so loudly if it does.
		d.reloadM.Failed()
		return fmt.Errorf("starting the reloaded scheduler: %w", err)
	}
	// The old configuration's runs in flight finish (or are cancelled at
	// the shutdown timeout) before its sources close; nobody waits for
	// them but the shutdown.
	d.retiring.Add(1)
	go func() {
		defer d.retiring.Done()
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), d.shutdownTimeout())
		defer cancel()
		if serr := old.stop(stopCtx); serr != nil {
			d.logger.Warn("stopping the previous configuration's runs", "err", serr)
		}
	}()
	if rerr := d.refresh(ctx, cfg); rerr != nil {
		d.logger.Warn("refreshing the snapshot after reload", "err", rerr)
	}
	d.reloadM.Succeeded(time.Now())
	d.logger.Info("configuration reloaded", "kpis", len(cfg.Catalogue), "collectors", len(cfg.Collectors))
	return nil
}

// location returns the time zone of the configuration in force.
func (d *daemon) location() *time.Location {
	if g := d.current(); g != nil {
		return g.cfg.Location
	}
	return nil
}

// current returns the generation in force.
func (d *daemon) current() *generation {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.active
}

// refreshActive rebuilds the snapshot for the configuration in force.
func (d *daemon) refreshActive(ctx context.Context) {
	if err := d.refresh(ctx, d.current().cfg); err != nil {
		d.logger.Error("refreshing the snapshot; serving the previous one", "err", err)
	}
}

// refresh builds a new snapshot of the latest values from the store.
func (d *daemon) refresh(ctx context.Context, cfg *config.Config) error {
	cat, collectors := cfg.Catalogue, cfg.Collectors
	d.refreshMu.Lock()
	defer d.refreshMu.Unlock()
	builtAt := time.Now()
	// Health before values: a run recorded as a success committed its
	// observations in the same transaction, so the values read next include
	// them, and a snapshot never shows a collector's success without its data.
	health, err := d.health(ctx, collectors)
	if err == nil {
		var series []kpi.SeriesState
		if series, err = d.store.Latest(ctx, cat); err == nil {
			d.setStoreUp(true)
			snap := exporter.NewSnapshot(cat, series, health)
			for _, p := range snap.Problems() {
				d.logger.Warn("left out of /metrics", "problem", p)
			}
			if err := d.exporter.Set(snap); err != nil {
				return err
			}
			d.builtAt = builtAt
			return nil
		}
	}
	d.setStoreUp(false)
	return err
}

// health returns the health of the collectors in force: a collector the
// store remembers but the configuration no longer has (removed, renamed,
// or run once by carewatch collect) is not this daemon's to report.
func (d *daemon) health(ctx context.Context, collectors []config.CollectorConfig) ([]kpi.CollectorHealth, error) {
	all, err := d.store.Health(ctx)
	if err != nil {
		return nil, err
	}
	inForce := make(map[string]bool, len(collectors))
	for i := range collectors {
		inForce[collectors[i].Name] = true
	}
	health := all[:0]
	for _, h := range all {
		if inForce[h.Collector] {
			health = append(health, h)
		}
	}
	return health, nil
}

// publishRun publishes what one run changed: the latest values of the
// series it wrote, and the health of the collectors, read from the store,
// replace those of the current snapshot. The rest of the snapshot, and the
// parts of the exposition the run did not change, stay as they are.
func (d *daemon) publishRun(ctx context.Context, runID int64) { d.publish(ctx, runID, nil) }

// ownRun is a run this process stored: what it knows of the run without
// reading it back.
type ownRun struct {
	finished time.Time
	obs      []kpi.Observation
	// foreign is d.foreign before the run was stored.
	foreign int64
}

// publishOwnRun is publishRun for a run this process just stored with obs:
// the states of its series are the observations themselves
// (store.RunStates), so only the collectors' health is read back. foreign
// is d.foreign read before the run was stored: if another replica's run was
// announced since, it may have stored the same series after this run and
// been published first, so the run is read back instead.
func (d *daemon) publishOwnRun(ctx context.Context, runID int64, finished time.Time, obs []kpi.Observation, foreign int64) {
	d.publish(ctx, runID, &ownRun{finished: finished, obs: obs, foreign: foreign})
}

func (d *daemon) publish(ctx context.Context, runID int64, own *ownRun) {
	d.refreshMu.Lock()
	cfg := d.current().cfg
	cat := cfg.Catalogue
	start := time.Now()
	if thresholdsMoved(cat, d.builtAt, start) {
		// Series the run did not write are served with the thresholds
		// in force now: a trajectory step since the snapshot was built
		// moves them all.
		d.refreshMu.Unlock()
		d.refreshActive(ctx)
		return
	}
	// Health first, as in refresh: a success is never shown without its data.
	health, err := d.health(ctx, cfg.Collectors)
	var (
		series []kpi.SeriesState
		known  bool
	)
	if err == nil && own != nil && d.foreign.Load() == own.foreign {
		series, known = d.store.RunStates(cat, runID, own.finished, own.obs)
	}
	if err == nil && !known {
		series, err = d.store.RunLatest(ctx, cat, runID)
	}
	if err == nil {
		d.setStoreUp(true)
		read := time.Now()
		err = d.exporter.Update(series, health)
		d.logger.Debug("published a run", "run", runID, "series", len(series), "read_back", !known,
			"read", read.Sub(start), "update", time.Since(read))
	} else {
		d.setStoreUp(false)
	}
	d.refreshMu.Unlock()
	switch {
	case errors.Is(err, exporter.ErrNoSnapshot):
		d.refreshActive(ctx)
	case err != nil:
		d.logger.Error("publishing a run; serving the previous snapshot", "run", runID, "err", err)
	}
}

// thresholdsMoved reports whether a KPI of cat has a trajectory step in
// (from, to].
func thresholdsMoved(cat kpi.Catalogue, from, to time.Time) bool {
	for _, k := range cat {
		for _, at := range k.Changes() {
			if at.After(from) && !at.After(to) {
				return true
			}
		}
	}
	return false
}

func (d *daemon) setStoreUp(ok bool) { d.storeUp.record(ok, time.Now()) }

// storeHealth is carewatch_store_up: the store is up while its last round
// trip succeeded and one succeeded within its timeout. A store that stops
// answering, rather than refusing, shows as down once the timeout has
// passed since its last answer, even while a round trip is still waiting.
type storeHealth struct {
	timeout time.Duration

	mu     sync.Mutex
	ok     bool
	lastOK time.Time
}

func (h *storeHealth) record(ok bool, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ok = ok
	if ok {
		h.lastOK = at
	}
}

func (h *storeHealth) value() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ok && time.Since(h.lastOK) <= h.timeout {
		return 1
	}
	return 0
}

// watchStore pings the store every half of its timeout, so that a store
// that refuses or stops answering shows in carewatch_store_up within the
// timeout even when no collector is due, and records the runs that failed
// while it was down as soon as it answers again.
func (d *daemon) watchStore(ctx context.Context) {
	t := time.NewTicker(max(d.storeUp.timeout/2, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := d.store.Ping(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				d.logger.Warn("store unreachable", "err", err)
			}
			d.setStoreUp(err == nil)
			if err == nil && d.pending.len() > 0 {
				d.recordPending(ctx)
			}
		}
	}
}

// pruneEvery is how often old run records are pruned.
const pruneEvery = time.Hour

// pruneRuns deletes run records older than the configuration in force
// keeps, and tick claims older than a day, at start and then every
// pruneEvery. Replicas may all do it: a
// delete is the same whoever makes it.
func (d *daemon) pruneRuns(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		// A replica a day late to claim a tick is not waited for.
		if _, err := d.store.PruneClaims(ctx, time.Now().Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
			d.logger.Warn("pruning old tick claims", "err", err)
		}
		if keep := time.Duration(d.current().cfg.Store.RunsRetention); keep > 0 {
			n, err := d.store.PruneRuns(ctx, time.Now().Add(-keep))
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				d.logger.Warn("pruning old run records", "err", err)
			case n > 0:
				d.logger.Info("pruned old run records", "runs", n, "retention", keep)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// loadConfig loads and validates a configuration file.
func loadConfig(file string) (*config.Config, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, fmt.Errorf("%s is not valid:\n%w", file, err)
	}
	return cfg, nil
}

// openStore connects to the configured store and applies its migrations.
func openStore(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*store.Store, error) {
	st, err := connectStore(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrating the store: %w", err)
	}
	return st, nil
}

// connectStore connects to the configured store and changes nothing in it.
func connectStore(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*store.Store, error) {
	dsn, err := cfg.Store.DSN()
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, dsn, store.Options{
		MaxOpenConns:    cfg.Store.MaxOpenConns,
		ConnMaxLifetime: time.Duration(cfg.Store.ConnMaxLifetime),
		Timeout:         cfg.Store.EffectiveTimeout(),
		Logger:          logger.With("room", "store"),
	})
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	return st, nil
}

// runNow runs one collector of the configuration in force at once.
func (d *daemon) runNow(ctx context.Context, name string) error {
	return d.current().scheduler.RunNow(ctx, name)
}
