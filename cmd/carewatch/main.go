// Command carewatch collects the key performance indicators of a council's
// children's and adults' social care on a schedule, keeps every observation
// in PostgreSQL and serves the latest values, their RAG status and the
// collectors' health as Prometheus metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/carewatch/carewatch/internal/cli"
)

// defaultListenAddress is carewatch's port.
const defaultListenAddress = ":9839"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses the command line and runs one command; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return runWithInput(args, os.Stdin, stdout, stderr)
}

// runWithInput is run with the standard input commands read (comment -).
func runWithInput(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app, logConfig := cli.New("carewatch", "Collects social care KPIs on a schedule, keeps their history in PostgreSQL and serves them as Prometheus metrics.", stdout, stderr)
	configFile := app.Flag("config.file", "carewatch configuration file.").Default("carewatch.yml").String()

	runCmd := app.Command("run", "Run the daemon: scheduled collectors, the store and /metrics.").Default()
	runWeb := kingpinflag.AddFlags(runCmd, defaultListenAddress)
	enableLifecycle := app.Flag("web.enable-lifecycle", "Enable configuration reloads over HTTP (POST /-/reload).").Bool()
	shutdownTimeout := app.Flag("shutdown.timeout", "How long a graceful shutdown may take before runs in flight are cancelled.").Default("30s").Duration()

	checkCmd := app.Command("check", "Validate the configuration file and exit.")
	checkConnect := checkCmd.Flag("connect", "Also connect to the store and to every source.").Bool()

	collectCmd := app.Command("collect", "Run one collector now and print its observations.")
	collectName := collectCmd.Arg("name", "The collector to run.").Required().String()
	collectDryRun := collectCmd.Flag("dry-run", "Print the observations without storing them.").Bool()
	collectFrom := collectCmd.Flag("from", "Backfill: the first day of the periods to collect, as YYYY-MM-DD.").PlaceHolder("2025-04-01").String()
	collectTo := collectCmd.Flag("to", "Backfill: the last day of the periods to collect, as YYYY-MM-DD.").PlaceHolder("2026-03-31").String()
	collectEvery := collectCmd.Flag("every", "Backfill of a SQL collector: one run per day, week, month or year of the range.").Default("month").Enum("day", "week", "month", "year")

	explainCmd := app.Command("explain", "Show where a stored value came from: its status, thresholds, run, source and revisions. Reads the store only.")
	var explainOpts provenanceOptions
	explainCmd.Arg("kpi", "The KPI.").Required().StringVar(&explainOpts.KPI)
	explainCmd.Arg("labels", "label=value pairs that pick one series, e.g. team=North.").StringsVar(&explainOpts.Labels)
	explainCmd.Flag("period", "The period, as YYYY-MM-DD: its value, or the latest before it; by default the latest.").PlaceHolder("2026-03-31").StringVar(&explainOpts.Period)

	historyCmd := app.Command("history", "Print a KPI's series over time from the store, as a table, CSV or JSON. Reads the store only.")
	var historyOpts provenanceOptions
	historyCmd.Arg("kpi", "The KPI.").Required().StringVar(&historyOpts.KPI)
	historyCmd.Arg("labels", "label=value pairs that narrow the series, e.g. team=North.").StringsVar(&historyOpts.Labels)
	historyCmd.Flag("from", "The first period, as YYYY-MM-DD.").PlaceHolder("2025-04-01").StringVar(&historyOpts.From)
	historyCmd.Flag("to", "The last period, as YYYY-MM-DD.").PlaceHolder("2026-03-31").StringVar(&historyOpts.To)
	historyCmd.Flag("format", "table, csv (opens as columns in a spreadsheet) or json.").Default("table").EnumVar(&historyOpts.Format, "table", "csv", "json")

	migrateCmd := app.Command("migrate", "Apply the store's schema migrations and exit.")

	reportCmd := app.Command("report", "Write the KPI pack, one self-contained HTML page, from the store.")
	reportPeriod := reportCmd.Flag("period", "The month the pack reports on, as YYYY-MM; by default the latest month with values.").PlaceHolder("2026-11").String()
	reportOut := reportCmd.Flag("out", "The file to write; - is standard output.").Default("-").PlaceHolder("pack.html").String()

	commentCmd := app.Command("comment", "Store an officer's commentary on a KPI for a month; the KPI pack shows it.")
	commentKPI := commentCmd.Arg("kpi", "The KPI the commentary is about.").Required().String()
	commentText := commentCmd.Arg("text", "The commentary; left out (or -), it is read from standard input.").String()
	commentLabels := commentCmd.Flag("series", "Narrow the commentary to the series with this label value, e.g. --series team=north (repeatable).").PlaceHolder("LABEL=VALUE").Strings()
	commentPeriod := commentCmd.Flag("period", "The month the commentary is for, as YYYY-MM; by default the current month.").PlaceHolder("2026-11").String()

	cmd, exit, code, err := cli.Parse(app, args)
	if exit { // --help or --version
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "carewatch: %v\n", err)
		return 2
	}
	logger := promslog.New(logConfig)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGHUP)
	defer signal.Stop(reload)
	reloads := make(chan struct{})
	go func() {
		for range reload {
			select {
			case reloads <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()

	switch cmd {
	case runCmd.FullCommand():
		err = runDaemon(ctx, daemonOptions{
			ConfigFile:      *configFile,
			Web:             runWeb,
			ShutdownTimeout: *shutdownTimeout,
			EnableLifecycle: *enableLifecycle,
			Reload:          reloads,
			Logger:          logger,
		})
	case checkCmd.FullCommand():
		err = runCheck(ctx, *configFile, *checkConnect, stdout)
	case collectCmd.FullCommand():
		err = runCollectWith(ctx, *configFile, collectOptions{Name: *collectName, DryRun: *collectDryRun, From: *collectFrom, To: *collectTo, Every: *collectEvery}, stdout, logger)
	case explainCmd.FullCommand():
		err = runExplain(ctx, *configFile, explainOpts, stdout, logger)
	case historyCmd.FullCommand():
		err = runHistory(ctx, *configFile, historyOpts, stdout, logger)
	case migrateCmd.FullCommand():
		err = runMigrate(ctx, *configFile, stdout, logger)
	case reportCmd.FullCommand():
		err = runReport(ctx, *configFile, *reportPeriod, *reportOut, stdout, logger)
	case commentCmd.FullCommand():
		err = runComment(ctx, *configFile, commentOptions{KPI: *commentKPI, Labels: *commentLabels, Period: *commentPeriod, Text: *commentText}, stdin, stdout, logger)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "carewatch %s: %v\n", cmd, err)
		return 1
	}
	return 0
}
