package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the demo source is PostgreSQL

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal"
	"github.com/carewatch/carewatch/store"
)

// demoConfigFile is the demo council's configuration, relative to the
// repository root.
const demoConfigFile = "examples/demo/carewatch.yml"

// Environment variables the demo configuration reads its DSNs from.
const (
	storeDSNEnv  = "CAREWATCH_DATABASE_URL"
	sourceDSNEnv = "CAREWATCH_DEMO_SOURCE_URL"
)

// rootDemoDataDir is where the demo keeps its PostgreSQL when it runs as
// root in a folder other users cannot enter.
const rootDemoDataDir = "/var/lib/carewatch/demo/pg"

// enterableByOthers reports whether every existing folder from / down to
// dir can be entered by a user who is neither its owner nor in its group.
func enterableByOthers(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

type demoOptions struct {
	Dir      string
	Seed     uint64
	DayEvery time.Duration
}

func demoFlags(cmd *kingpin.CmdClause) *demoOptions {
	o := &demoOptions{}
	cmd.Flag("demo.dir", "Where the demo keeps its local PostgreSQL when "+storeDSNEnv+" is not set.").Default(".carewatch").StringVar(&o.Dir)
	cmd.Flag("demo.seed", "Seed of the synthetic council; the same seed gives the same council.").Default("2026").Uint64Var(&o.Seed)
	cmd.Flag("demo.day-every", "How often the demo council's clock moves on by one day (0 keeps it still).").Default("1m").DurationVar(&o.DayEvery)
	return o
}

// runDemo brings up the demo council: a store and a synthetic
// case-management reporting database (on a local PostgreSQL it provisions
// itself unless CAREWATCH_DATABASE_URL is set), whose clock moves on while
// carewatch collects from it.
func runDemo(ctx context.Context, o demoOptions, d daemonOptions) error {
	logger := d.Logger.With("room", "demo")
	if _, err := os.Stat(d.ConfigFile); err != nil {
		return fmt.Errorf("the demo configuration %s is not here: run the demo from the repository root (%w)", d.ConfigFile, err)
	}
	storeDSN, sourceDSN := os.Getenv(storeDSNEnv), os.Getenv(sourceDSNEnv)
	if storeDSN == "" {
		dir, err := filepath.Abs(filepath.Join(o.Dir, "pg"))
		if err != nil {
			return err
		}
		if os.Geteuid() == 0 && !enterableByOthers(filepath.Dir(dir)) {
			// As root the server runs as an unprivileged user, who cannot
			// reach a checkout under /root (mode 0700): keep its data where
			// that user can.
			logger.Info("the demo folder is not reachable by the unprivileged PostgreSQL user; using a system folder", "wanted", dir, "using", rootDemoDataDir)
			dir = rootDemoDataDir
		}
		logger.Info("starting a local PostgreSQL for the demo", "data_dir", dir)
		srv, err := pglocal.Start(ctx, pglocal.Options{DataDir: dir, Install: true, Logger: logger})
		if err != nil {
			return fmt.Errorf("provisioning a local PostgreSQL (set %s to use your own): %w", storeDSNEnv, err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := srv.Stop(sctx); err != nil {
				logger.Warn("stopping the local PostgreSQL", "err", err)
			}
		}()
		for _, db := range []string{"carewatch", "carewatch_demo_source"} {
			if err := srv.CreateDatabase(ctx, db); err != nil {
				return err
			}
		}
		storeDSN, sourceDSN = srv.DSN("carewatch"), srv.DSN("carewatch_demo_source")
	}
	if sourceDSN == "" {
		// The demo source's schemas (cms, hr, ref, demo_sim) sit beside the store's.
		sourceDSN = storeDSN
	}
	os.Setenv(storeDSNEnv, storeDSN)
	os.Setenv(sourceDSNEnv, sourceDSN)

	src, err := sqlx.Open("postgres", sourceDSN)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := setUpDemoSource(ctx, src, o, logger); err != nil {
		return err
	}
	comments, err := newDemoCommentary(ctx, d.ConfigFile, src, logger)
	if err != nil {
		return err
	}
	defer comments.close()
	if err := comments.write(ctx); err != nil {
		return err
	}
	returns := demoReturns{db: src, dir: filepath.Join(filepath.Dir(d.ConfigFile), demoReturnsDir), logger: logger}
	returns.write(ctx)
	if o.DayEvery > 0 {
		go advanceDemo(ctx, src, o.DayEvery, comments, returns, d.Logger.With("room", "demo"))
	}
	return runDaemon(ctx, d)
}

// demoCommentary writes the demo officers' commentary for the demo's
// reporting month into the store, as `carewatch comment` would.
type demoCommentary struct {
	src    *sqlx.DB
	store  *store.Store
	logger *slog.Logger
}

func newDemoCommentary(ctx context.Context, configFile string, src *sqlx.DB, logger *slog.Logger) (*demoCommentary, error) {
	cfg, err := loadConfig(configFile)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	return &demoCommentary{src: src, store: st, logger: logger}, nil
}

func (c *demoCommentary) close() { c.store.Close() }

// write stores the reporting month's commentary, unless a comment for the
// same KPI, series and month is there already (written by an earlier start,
// or by someone trying `carewatch comment`).
func (c *demoCommentary) write(ctx context.Context) error {
	today, err := demo.ReportingDate(ctx, c.src)
	if err != nil {
		return err
	}
	month := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC)
	have, err := c.store.Comments(ctx, month)
	if err != nil {
		return err
	}
	for _, cm := range demo.Commentary(month) {
		if slices.ContainsFunc(have, func(h kpi.Comment) bool { return h.KPI == cm.KPI && maps.Equal(h.Labels, cm.Labels) }) {
			continue
		}
		if err := c.store.SaveComment(ctx, cm); err != nil {
			return err
		}
		c.logger.Info("demo commentary written", "kpi", cm.KPI, "month", month.Format("2006-01"))
	}
	return nil
}

// setUpDemoSource creates the synthetic council the first time only, so a
// restarted demo carries on from where it stopped.
func setUpDemoSource(ctx context.Context, db *sqlx.DB, o demoOptions, logger interface{ Info(string, ...any) }) error {
	var exists bool
	if err := db.GetContext(ctx, &exists, `SELECT to_regclass('cms.reporting_date') IS NOT NULL`); err != nil {
		return fmt.Errorf("reaching the demo source: %w", err)
	}
	if exists {
		logger.Info("demo council already set up; carrying on")
		return nil
	}
	london, _ := time.LoadLocation("Europe/London")
	now := time.Now().In(london)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	logger.Info("setting up the demo council", "seed", o.Seed, "today", today.Format("2006-01-02"))
	return demo.Setup(ctx, db, demo.Options{Seed: o.Seed, Today: today})
}

// demoReturnsDir is where, beside the demo configuration, the demo writes
// its council's statutory returns for the configuration's file sources.
const demoReturnsDir = "returns"

// demoReturns writes the demo council's statutory returns (Annex A,
// SSDA903, CLD) as they stand on its reporting date.
type demoReturns struct {
	db     *sqlx.DB
	dir    string
	logger *slog.Logger
}

// write writes the returns. A failure (a read-only installation, say) is
// logged: the collectors that read them fail and say so, and the rest of
// the demo carries on.
func (r demoReturns) write(ctx context.Context) {
	ret, err := demo.BuildReturns(ctx, r.db)
	if err == nil {
		err = demo.WriteReturns(ret, r.dir)
	}
	if err != nil {
		if ctx.Err() == nil {
			r.logger.Error("writing the demo council's statutory returns", "dir", r.dir, "err", err)
		}
		return
	}
	r.logger.Info("demo statutory returns written", "dir", r.dir, "as_at", ret.AsAt.Format(time.DateOnly))
}

func advanceDemo(ctx context.Context, db *sqlx.DB, every time.Duration, comments *demoCommentary, returns demoReturns, logger interface {
	Info(string, ...any)
	Error(string, ...any)
}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := demo.Advance(ctx, db, 1); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("advancing the demo council", "err", err)
				continue
			}
			logger.Info("demo council moved on by a day")
			// A new month has the officers' commentary too.
			if err := comments.write(ctx); err != nil && ctx.Err() == nil {
				logger.Error("writing the demo commentary", "err", err)
			}
			returns.write(ctx)
		}
	}
}
