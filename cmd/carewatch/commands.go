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
	cfg, err := loadConfig(file)
	if err != nil {
		return err
	}
	var cc *config.CollectorConfig
	for i := range cfg.Collectors {
		if cfg.Collectors[i].Name == name {
			cc = &cfg.Collectors[i]
		}
	}
	if cc == nil {
		names := make([]string, len(cfg.Collectors))
		for i := range cfg.Collectors {
			names[i] = cfg.Collectors[i].Name
		}
		return fmt.Errorf("no collector %q in %s (collectors: %s)", name, file, strings.Join(names, ", "))
	}
	sources := collector.NewSources(cfg)
	defer sources.Close()
	src, err := sources.Source(cc)
	if err != nil {
		return err
	}
	checks := newChecks(cfg, cc)
	var st *store.Store
	if !dryRun {
		if st, err = openStore(ctx, cfg, logger); err != nil {
			return err
		}
		defer st.Close()
	}
	// A dry run reads no history: the checks against the last good run
	// and the previous period are left out.
	var history collector.History
	if st != nil {
		history = st
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.EffectiveTimeout(cc))
	defer cancel()
	started := time.Now()
	prov := &kpi.Provenance{}
	obs, warnings, err := checks.Collect(cctx, src, kpi.RunInfo{Collector: cc.Name, At: started, Location: cfg.Location, Provenance: prov}, history)
	source, query := src.Describe()
	if err != nil {
		if failures := collector.CheckFailures(err); failures != nil && st != nil {
			run := kpi.Run{Collector: cc.Name, Source: source, Query: query, Reads: prov.Reads(), StartedAt: started, FinishedAt: time.Now(), Err: err, Checks: failures}
			if _, serr := st.SaveRun(ctx, run, nil); serr != nil {
				return errors.Join(err, serr)
			}
		}
		return err
	}
	printObservations(out, obs, cfg.Location)
	for _, r := range prov.Reads() {
		printRead(out, r)
	}
	for _, w := range warnings {
		fmt.Fprintf(out, "warning: %s\n", w.Message)
	}
	if dryRun {
		fmt.Fprintf(out, "%d observations (dry run: nothing stored)\n", len(obs))
		return nil
	}
	// Only KPIs the store has never seen are added: collect, with whatever
	// configuration, changes neither the daemon's definitions nor which
	// KPIs it considers retired.
	if err := st.AddToCatalogue(ctx, cfg.Catalogue); err != nil {
		return err
	}
	release, ok, err := st.TryRunLock(ctx, cc.Name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("collector %q is running in a carewatch daemon now; nothing stored, try again when it has finished", cc.Name)
	}
	defer release()
	res, err := st.SaveRun(ctx, kpi.Run{Collector: cc.Name, Source: source, Query: query, Reads: prov.Reads(), StartedAt: started, FinishedAt: time.Now(), Checks: warnings}, obs)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "run %d stored: %d observations, %d new, %d revised, %d unchanged, %d status changes\n",
		res.RunID, res.Observations, res.Inserted, res.Revised, res.Unchanged, len(res.StatusChanges))
	return nil
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
