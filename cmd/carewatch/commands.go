package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/store"
)

// runCheck validates the configuration and, with connect, reaches the store
// and every source, and runs every collector without storing anything, so
// that a SQL error, a missing column or a file that does not parse is found
// before the daemon starts. It never changes the store: pending migrations
// are reported, not applied.
func runCheck(ctx context.Context, file string, connect bool, out io.Writer) error {
	cfg, err := loadConfig(file)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %d KPIs, %d sources, %d collectors: OK\n", file, len(cfg.Catalogue), len(cfg.Sources), len(cfg.Collectors))
	if !connect {
		return nil
	}
	var failures []string
	if err := checkStore(ctx, cfg, out); err != nil {
		failures = append(failures, err.Error())
	}
	for i := range cfg.Sources {
		sc := &cfg.Sources[i]
		if err := pingSource(ctx, sc); err != nil {
			failures = append(failures, err.Error())
			continue
		}
		fmt.Fprintf(out, "source %q: reachable\n", sc.Name)
	}
	sources := collector.NewSources(cfg)
	defer sources.Close()
	for i := range cfg.Collectors {
		cc := &cfg.Collectors[i]
		n, err := dryRun(ctx, cfg, cc, sources)
		if err != nil {
			failures = append(failures, fmt.Sprintf("collector %q: dry run: %v", cc.Name, err))
			continue
		}
		fmt.Fprintf(out, "collector %q: dry run: %d observations\n", cc.Name, n)
	}
	if len(failures) > 0 {
		return fmt.Errorf("%s", strings.Join(failures, "\n"))
	}
	return nil
}

// checkStore reaches the store and reports its schema, changing nothing.
func checkStore(ctx context.Context, cfg *config.Config, out io.Writer) error {
	st, err := connectStore(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer st.Close()
	pending, err := st.PendingMigrations(ctx)
	if err != nil {
		return err
	}
	if len(pending) == 0 {
		fmt.Fprintln(out, "store: reachable, schema current")
	} else {
		fmt.Fprintf(out, "store: reachable; carewatch run or migrate will apply %d migrations: %s\n", len(pending), strings.Join(pending, ", "))
	}
	return nil
}

// dryRun runs one collector, checks included, and stores nothing; it
// returns how many observations the run would store.
func dryRun(ctx context.Context, cfg *config.Config, cc *config.CollectorConfig, sources *collector.Sources) (int, error) {
	src, err := sources.Source(cc)
	if err != nil {
		return 0, err
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.EffectiveTimeout(cc))
	defer cancel()
	obs, _, err := newChecks(cfg, cc).Collect(cctx, src, kpi.RunInfo{Collector: cc.Name, At: time.Now(), Location: cfg.Location, Provenance: &kpi.Provenance{}}, nil)
	return len(obs), err
}

func pingSource(ctx context.Context, sc *config.SourceConfig) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !config.IsSQL(sc.Type) {
		return collector.Reach(pctx, sc)
	}
	dsn, err := sc.DSN()
	if err != nil {
		return err
	}
	db, err := collector.ConnectSQL(pctx, sc, dsn)
	if err != nil {
		return err
	}
	return db.Close()
}

// runCollect runs one collector now, prints its observations and, unless
// dryRun, stores them as a run.
func runCollect(ctx context.Context, file, name string, dryRun bool, out io.Writer, logger *slog.Logger) error {
	return runCollectWith(ctx, file, collectOptions{Name: name, DryRun: dryRun}, out, logger)
}

// collectOptions are what carewatch collect is asked.
type collectOptions struct {
	Name   string
	DryRun bool
	// From and To (YYYY-MM-DD) make the run a backfill of the periods
	// between them; Every (day, week, month or year) splits a SQL
	// collector's backfill into one run per period.
	From, To, Every string
}

// backfillPeriods splits [from, to] into periods of one unit each, the first
// and last cut to the range.
func backfillPeriods(from, to time.Time, every string) ([][2]time.Time, error) {
	if to.Before(from) {
		return nil, fmt.Errorf("--to %s is before --from %s", to.Format(time.DateOnly), from.Format(time.DateOnly))
	}
	var next func(t time.Time) time.Time
	switch every {
	case "day":
		next = func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
	case "week":
		next = func(t time.Time) time.Time { return t.AddDate(0, 0, 7) }
	case "", "month":
		next = func(t time.Time) time.Time { return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, t.Location()) }
	case "year":
		next = func(t time.Time) time.Time { return time.Date(t.Year()+1, 1, 1, 0, 0, 0, 0, t.Location()) }
	default:
		return nil, fmt.Errorf("--every %q is not one of day, week, month, year", every)
	}
	var out [][2]time.Time
	for start := from; !start.After(to); start = next(start) {
		end := next(start).AddDate(0, 0, -1)
		if end.After(to) {
			end = to
		}
		out = append(out, [2]time.Time{start, end})
		if len(out) > 10000 {
			return nil, errors.New("a backfill of more than 10,000 periods: choose a longer --every or a shorter range")
		}
	}
	return out, nil
}

// runCollectWith runs one collector now, or a backfill of past periods,
// prints the observations and, unless o.DryRun, stores each run.
func runCollectWith(ctx context.Context, file string, o collectOptions, out io.Writer, logger *slog.Logger) error {
	cfg, err := loadConfig(file)
	if err != nil {
		return err
	}
	var cc *config.CollectorConfig
	for i := range cfg.Collectors {
		if cfg.Collectors[i].Name == o.Name {
			cc = &cfg.Collectors[i]
		}
	}
	if cc == nil {
		names := make([]string, len(cfg.Collectors))
		for i := range cfg.Collectors {
			names[i] = cfg.Collectors[i].Name
		}
		return fmt.Errorf("no collector %q in %s (collectors: %s)", o.Name, file, strings.Join(names, ", "))
	}
	// One run, or one per period of a backfill.
	periods := [][2]time.Time{{}}
	if o.From != "" || o.To != "" {
		if o.From == "" || o.To == "" {
			return errors.New("a backfill needs both --from and --to")
		}
		from, err := parseDate("from", o.From, cfg.Location, false)
		if err != nil {
			return err
		}
		to, err := parseDate("to", o.To, cfg.Location, false)
		if err != nil {
			return err
		}
		switch sc := cfg.SourceByName(cc.Source); {
		case sc == nil:
		case sc.Type == config.SourceHTTP:
			return fmt.Errorf("collector %q reads an HTTP API, which carewatch cannot ask for past periods: backfill SQL and file collectors", cc.Name)
		case sc.Type == config.SourceFile:
			periods = [][2]time.Time{{from, to}}
		default:
			if !collector.UsesPeriods(cc.Query) {
				return fmt.Errorf("collector %q: its query uses neither :%s nor :%s, so it would collect the current period, not past ones; see the README's Backfill",
					cc.Name, collector.ParamPeriodStart, collector.ParamPeriodEnd)
			}
			if periods, err = backfillPeriods(from, to, o.Every); err != nil {
				return err
			}
		}
	}
	sources := collector.NewSources(cfg)
	defer sources.Close()
	src, err := sources.Source(cc)
	if err != nil {
		return err
	}
	c := &collection{cfg: cfg, cc: cc, src: src, checks: newChecks(cfg, cc), dryRun: o.DryRun, out: out}
	if !o.DryRun {
		if c.st, err = openStore(ctx, cfg, logger); err != nil {
			return err
		}
		defer c.st.Close()
		// Only KPIs the store has never seen are added: collect, with
		// whatever configuration, changes neither the daemon's definitions
		// nor which KPIs it considers retired.
		if err := c.st.AddToCatalogue(ctx, cfg.Catalogue); err != nil {
			return err
		}
	}
	for _, p := range periods {
		if err := c.run(ctx, p[0], p[1]); err != nil {
			if p[1].IsZero() {
				return err
			}
			return fmt.Errorf("backfill of %s to %s: %w", p[0].Format(time.DateOnly), p[1].Format(time.DateOnly), err)
		}
	}
	return nil
}

// collection is one carewatch collect command's collector.
type collection struct {
	cfg    *config.Config
	cc     *config.CollectorConfig
	src    collector.Source
	checks *collector.Checks
	st     *store.Store
	dryRun bool
	out    io.Writer
}

// run collects one run (of the periods from to to, in a backfill), checks
// it, prints it and stores it.
func (c *collection) run(ctx context.Context, from, to time.Time) error {
	// A dry run reads no history: the checks against the last good run
	// and the previous period are left out.
	var history collector.History
	if c.st != nil {
		history = c.st
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.EffectiveTimeout(c.cc))
	defer cancel()
	started := time.Now()
	prov := &kpi.Provenance{}
	info := kpi.RunInfo{Collector: c.cc.Name, At: started, Location: c.cfg.Location, Provenance: prov, PeriodStart: from, PeriodEnd: to}
	obs, warnings, err := c.checks.Collect(cctx, c.src, info, history)
	source, query := c.src.Describe()
	if info.Backfill() {
		query += fmt.Sprintf("\n-- backfill: :%s = %s, :%s = %s", collector.ParamPeriodStart, from.Format(time.DateOnly), collector.ParamPeriodEnd, to.Format(time.DateOnly))
	}
	if err != nil {
		if failures := collector.CheckFailures(err); failures != nil && c.st != nil {
			run := kpi.Run{Collector: c.cc.Name, Source: source, Query: query, Reads: prov.Reads(), StartedAt: started, FinishedAt: time.Now(), Err: err, Checks: failures}
			if _, serr := c.st.SaveRun(ctx, run, nil); serr != nil {
				return errors.Join(err, serr)
			}
		}
		return err
	}
	printObservations(c.out, obs, c.cfg.Location)
	for _, r := range prov.Reads() {
		printRead(c.out, r)
	}
	for _, w := range warnings {
		fmt.Fprintf(c.out, "warning: %s\n", w.Message)
	}
	if c.dryRun {
		fmt.Fprintf(c.out, "%d observations (dry run: nothing stored)\n", len(obs))
		return nil
	}
	release, err := c.runLock(ctx)
	if err != nil {
		return err
	}
	defer release()
	res, err := c.st.SaveRun(ctx, kpi.Run{Collector: c.cc.Name, Source: source, Query: query, Reads: prov.Reads(), StartedAt: started, FinishedAt: time.Now(), Checks: warnings}, obs)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "run %d stored: %d observations, %d new, %d revised, %d unchanged, %d status changes\n",
		res.RunID, res.Observations, res.Inserted, res.Revised, res.Unchanged, len(res.StatusChanges))
	return nil
}

// runLock takes the collector's run lock, waiting while a daemon runs the
// same collector: a backfill beside a daemon that collects every minute
// meets its runs often, and each of them ends within the collector's
// timeout. It gives up once that timeout and a few seconds have passed.
func (c *collection) runLock(ctx context.Context) (release func(), err error) {
	wait := c.cfg.EffectiveTimeout(c.cc) + 5*time.Second
	giveUp := time.Now().Add(wait)
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	for {
		// Each try is bounded by the store's own timeout.
		release, ok, err := c.st.TryRunLock(ctx, c.cc.Name)
		if err != nil {
			return nil, err
		}
		if ok {
			return release, nil
		}
		if !time.Now().Before(giveUp) {
			return nil, fmt.Errorf("collector %q has been running in a carewatch daemon for %s; nothing stored, try again when it has finished", c.cc.Name, wait)
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// printRead says what a run read, in one line.
func printRead(out io.Writer, r kpi.Read) {
	switch r.Kind {
	case kpi.ReadFile:
		fmt.Fprintf(out, "read file %s: %d bytes, modified %s, sha256 %s\n", r.Name, r.Size, r.ModTime.Format(time.RFC3339), r.SHA256)
	case kpi.ReadHTTP:
		fmt.Fprintf(out, "read %s: %d bytes, sha256 %s\n", r.Name, r.Size, r.SHA256)
	}
}

func printObservations(out io.Writer, obs []kpi.Observation, loc *time.Location) {
	sorted := append([]kpi.Observation(nil), obs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.KPI.Name != b.KPI.Name {
			return a.KPI.Name < b.KPI.Name
		}
		if la, lb := strings.Join(a.Labels, "\x00"), strings.Join(b.Labels, "\x00"); la != lb {
			return la < lb
		}
		return a.Period.Before(b.Period)
	})
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KPI\tLABELS\tPERIOD\tVALUE")
	for _, o := range sorted {
		labels := make([]string, len(o.KPI.Labels))
		for i, l := range o.KPI.Labels {
			labels[i] = l + "=" + o.Labels[i]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.KPI.Name, strings.Join(labels, ","), o.Period.In(loc).Format("2006-01-02"), o.Value)
	}
	tw.Flush()
}

// runMigrate applies the store's schema.
func runMigrate(ctx context.Context, file string, out io.Writer, logger *slog.Logger) error {
	cfg, err := loadConfig(file)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintln(out, "store schema is current")
	return nil
}
