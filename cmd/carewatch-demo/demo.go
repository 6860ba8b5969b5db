package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the demo source is PostgreSQL

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/internal/debian"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal"
	"github.com/carewatch/carewatch/store"
)

// rootDemoDataDir is where the demo keeps its PostgreSQL when it runs as
// root in a folder other users cannot enter.
const rootDemoDataDir = "/var/lib/carewatch/demo/pg"

// modulePath is the module whose checkout the demo builds carewatch from.
const modulePath = "github.com/carewatch/carewatch"

// runDemo brings up the demo council: a store and a synthetic
// case-management reporting database (on a local PostgreSQL it provisions
// itself unless o.StoreDSN is set), whose clock moves on while carewatch
// collects from it. It returns when carewatch has stopped.
func runDemo(ctx context.Context, o options) error {
	logger := o.Logger
	if _, err := os.Stat(o.ConfigFile); err != nil {
		return fmt.Errorf("the demo configuration %s is not here: run the demo from the repository root (%w)", o.ConfigFile, err)
	}
	binary, err := carewatchBinary(ctx, o)
	if err != nil {
		return err
	}
	storeDSN, sourceDSN := o.StoreDSN, o.SourceDSN
	if storeDSN == "" {
		srv, err := startPostgres(ctx, o.Dir, logger)
		if err != nil {
			return fmt.Errorf("provisioning a local PostgreSQL (set %s to use your own): %w", demo.StoreDSNEnv, err)
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

	src, err := sqlx.Open("postgres", sourceDSN)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := setUpDemoSource(ctx, src, o.Seed, logger); err != nil {
		return err
	}
	comments, err := newDemoCommentary(ctx, storeDSN, src, logger)
	if err != nil {
		return err
	}
	defer comments.close()
	if err := comments.write(ctx); err != nil {
		return err
	}
	returns := demoReturns{db: src, dir: filepath.Join(filepath.Dir(o.ConfigFile), demoReturnsDir), logger: logger}
	returns.write(ctx)
	runCtx, stopAdvancing := context.WithCancel(ctx)
	defer stopAdvancing()
	if o.DayEvery > 0 {
		go advanceDemo(runCtx, src, o.DayEvery, comments, returns, logger)
	}
	// carewatch reads the council as a reader when there is one, as it
	// would a council's own reporting database.
	readDSN := sourceDSN
	if o.SourceReaderDSN != "" {
		readDSN = o.SourceReaderDSN
	}
	return runCarewatch(ctx, binary, o, []string{
		demo.StoreDSNEnv + "=" + storeDSN,
		demo.SourceDSNEnv + "=" + readDSN,
	})
}

// startPostgres starts the demo's local PostgreSQL under dir, installing
// Debian's postgresql package first when its binaries are missing.
func startPostgres(ctx context.Context, dir string, logger *slog.Logger) (*pglocal.Server, error) {
	dataDir, err := filepath.Abs(filepath.Join(dir, "pg"))
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 && closedAncestor(filepath.Dir(dataDir)) != "" {
		// As root the server runs as an unprivileged user, who cannot
		// reach a checkout under /root (mode 0700): keep its data where
		// that user can.
		logger.Info("the demo folder is not reachable by the unprivileged PostgreSQL user; using a system folder", "wanted", dataDir, "using", rootDemoDataDir)
		dataDir = rootDemoDataDir
	}
	logger.Info("starting a local PostgreSQL for the demo", "data_dir", dataDir)
	o := pglocal.Options{DataDir: dataDir, Logger: logger}
	srv, err := pglocal.Start(ctx, o)
	if !errors.Is(err, pglocal.ErrNoServer) {
		return srv, err
	}
	if _, err := debian.Ensure(ctx, logger, "initdb", "postgresql", "/usr/lib/postgresql/*/bin"); err != nil {
		return nil, err
	}
	return pglocal.Start(ctx, o)
}

// closedAncestor returns the nearest folder from dir up to / that a user
// who is neither its owner nor in its group cannot enter, or "" if every
// existing one can be entered.
func closedAncestor(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			return d
		}
		if d == filepath.Dir(d) {
			return ""
		}
	}
}

// setUpDemoSource creates the synthetic council the first time only, so a
// restarted demo carries on from where it stopped.
func setUpDemoSource(ctx context.Context, db *sqlx.DB, seed uint64, logger *slog.Logger) error {
	var exists bool
	if err := db.GetContext(ctx, &exists, `SELECT to_regclass('cms.reporting_date') IS NOT NULL`); err != nil {
		return fmt.Errorf("reaching the demo source: %w", err)
	}
	if exists {
		logger.Info("demo council already set up; carrying on")
		return nil
	}
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		return err
	}
	now := time.Now().In(london)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	logger.Info("setting up the demo council", "seed", seed, "today", today.Format("2006-01-02"))
	return demo.Setup(ctx, db, demo.Options{Seed: seed, Today: today})
}

// demoCommentary writes the demo officers' commentary for the demo's
// reporting month into the store, as `carewatch comment` would.
type demoCommentary struct {
	src    *sqlx.DB
	store  *store.Store
	logger *slog.Logger
}

// newDemoCommentary opens the store at storeDSN, applying its migrations
// as carewatch would at start.
func newDemoCommentary(ctx context.Context, storeDSN string, src *sqlx.DB, logger *slog.Logger) (*demoCommentary, error) {
	st, err := store.Open(ctx, storeDSN, store.Options{Logger: logger.With("room", "store")})
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrating the store: %w", err)
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
	month := kpi.CommentMonth(today)
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

// advanceDemo moves the council's clock on by a day every interval until
// ctx ends, and writes each new month's commentary and the day's returns.
func advanceDemo(ctx context.Context, db *sqlx.DB, every time.Duration, comments *demoCommentary, returns demoReturns, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := demo.Advance(ctx, db, 1); err != nil {
				if !errors.Is(err, context.Canceled) {
					logger.Error("advancing the demo council", "err", err)
				}
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

// carewatchBinary finds the carewatch to run: the one asked for, the one
// installed beside this program, or one built from the checkout in the
// current folder (as after `go run ./cmd/carewatch-demo`).
func carewatchBinary(ctx context.Context, o options) (string, error) {
	if o.Binary != "" {
		return o.Binary, nil
	}
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), "carewatch")
		if fi, err := os.Stat(beside); err == nil && fi.Mode().IsRegular() {
			return beside, nil
		}
	}
	mod, err := os.ReadFile("go.mod")
	if err != nil || !bytes.HasPrefix(mod, []byte("module "+modulePath+"\n")) {
		return "", errors.New("no carewatch beside this program and no carewatch checkout in the current folder: pass --carewatch.binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building carewatch from this checkout: %w (or pass --carewatch.binary)", err)
	}
	out, err := filepath.Abs(filepath.Join(o.Dir, "bin", "carewatch"))
	if err != nil {
		return "", err
	}
	o.Logger.Info("building carewatch from this checkout", "binary", out)
	build := exec.CommandContext(ctx, goTool, "build", "-o", out, "./cmd/carewatch")
	build.Stdout, build.Stderr = o.Stderr, o.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building carewatch from this checkout: %w", err)
	}
	return out, nil
}

// runCarewatch runs `carewatch run` on the demo configuration with env
// added to its environment, passes SIGHUP on as a reload, and when ctx ends
// asks it to shut down (SIGTERM) and waits for it, within its shutdown
// timeout and a margin.
func runCarewatch(ctx context.Context, binary string, o options, env []string) error {
	args := []string{"run",
		"--config.file=" + o.ConfigFile,
		"--shutdown.timeout=" + o.ShutdownTimeout.String(),
		"--log.level=" + o.LogLevel,
		"--log.format=" + o.LogFormat,
	}
	for _, a := range o.ListenAddresses {
		args = append(args, "--web.listen-address="+a)
	}
	args = append(args, o.ExtraArgs...)
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = o.ShutdownTimeout + 10*time.Second
	o.Logger.Info("starting carewatch", "binary", binary, "config", o.ConfigFile)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting carewatch: %w", err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-o.Reload:
				_ = cmd.Process.Signal(syscall.SIGHUP)
			case <-done:
				return
			}
		}
	}()
	// Asked to stop, a clean exit of carewatch comes back as ctx's error.
	if err := cmd.Wait(); err != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("carewatch: %w", err)
	}
	return nil
}
