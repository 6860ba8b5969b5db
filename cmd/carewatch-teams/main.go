// Command carewatch-teams relays Alertmanager's webhook notifications to
// Microsoft Teams channels as Adaptive Cards.
//
// Alertmanager 0.25 (Debian 12's) has no Teams receiver, and Teams does not
// accept Alertmanager's webhook JSON, so Alertmanager posts to this relay,
// which renders each notification (summaries, descriptions, since when, a
// link to the dashboard) as a card in the message envelope that Teams
// incoming webhooks and Teams workflows accept, and posts it to the
// channel's webhook URL. The URLs are secrets and come from files
// (--teams.webhook-url-file, one per channel, read for every message).
//
// Endpoints: POST /alerts (the default channel), POST /alerts/{channel},
// POST /watchdog (the always-firing Watchdog alert; with --watchdog.channel
// the relay alarms that channel when it stops arriving), GET /metrics
// (posts, failures and durations per channel, the Watchdog),
// GET /-/healthy, GET /-/ready (every channel's file is usable).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
	_ "time/tzdata" // --display.timezone must work in minimal containers without a zoneinfo database

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/carewatch/carewatch/internal/cli"
)

// defaultListenAddress is loopback: the relay posts into Teams channels on
// behalf of whoever reaches it, so only Alertmanager beside it should.
const defaultListenAddress = "localhost:9840"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run parses the command line and serves until SIGINT or SIGTERM; it
// returns the exit code.
func run(args []string, stderr io.Writer) int {
	app, logConfig := cli.New("carewatch-teams", "Relays Alertmanager webhook notifications to Microsoft Teams channels as Adaptive Cards.", stderr, stderr)
	webFlags := kingpinflag.AddFlags(app, defaultListenAddress)
	urlFiles := app.Flag("teams.webhook-url-file",
		"File holding a Teams webhook URL: FILE for the default channel (POST /alerts), NAME=FILE for channel NAME (POST /alerts/NAME). Repeatable.").
		Required().Strings()
	timeout := app.Flag("teams.timeout", "Timeout of one post to Teams.").Default("10s").Duration()
	retries := app.Flag("teams.retries", "How many times a failed post to Teams is tried again (after network errors, 429 and 5xx).").Default("3").Int()
	backoff := app.Flag("teams.retry-backoff", "First wait before trying again; it doubles each time.").Default("1s").Duration()
	maxAlerts := app.Flag("teams.max-alerts", "Alerts listed in one Teams message; the rest are counted.").Default("20").Int()
	maxBody := app.Flag("web.max-request-bytes", "Largest notification accepted from Alertmanager.").Default("1MiB").Bytes()
	timezone := app.Flag("display.timezone", "Time zone of the times shown in messages.").Default("Europe/London").String()
	watchdogChannel := app.Flag("watchdog.channel",
		"Channel to alarm when the Watchdog alert stops arriving from Alertmanager on POST /watchdog (a dead man's switch for the alerting path); off if empty.").
		Default("").String()
	watchdogTimeout := app.Flag("watchdog.timeout", "How long without a Watchdog, counted from start-up or the last one, before the alarm.").Default("15m").Duration()
	shutdownTimeout := app.Flag("shutdown.timeout", "How long a graceful shutdown may take.").Default("15s").Duration()

	_, exit, code, err := cli.Parse(app, args)
	if exit { // --help or --version
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "carewatch-teams: %v\n", err)
		return 2
	}
	logger := promslog.New(logConfig)

	channels, err := ParseChannels(*urlFiles)
	if err != nil {
		fmt.Fprintf(stderr, "carewatch-teams: %v\n", err)
		return 2
	}
	loc, err := time.LoadLocation(*timezone)
	if err != nil {
		fmt.Fprintf(stderr, "carewatch-teams: --display.timezone: %v\n", err)
		return 2
	}
	relay, err := NewRelay(Options{
		Channels:        channels,
		Client:          &http.Client{Timeout: *timeout},
		Retries:         *retries,
		Backoff:         *backoff,
		MaxRequestBytes: int64(*maxBody),
		Card:            CardOptions{MaxAlerts: *maxAlerts, MaxBytes: maxCardBytes, MaxTextRunes: 1000, Location: loc},
		Logger:          logger,
		Watchdog:        WatchdogOptions{Channel: *watchdogChannel, Timeout: *watchdogTimeout},
	})
	if err != nil {
		fmt.Fprintf(stderr, "carewatch-teams: %v\n", err)
		return 1
	}

	// Listen first: an address in use ends the start at once.
	listeners, err := cli.Listen(webFlags)
	if err != nil {
		fmt.Fprintf(stderr, "carewatch-teams: %v\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go relay.RunWatchdog(ctx)
	server := &http.Server{Handler: relay.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() {
		if len(listeners) > 0 {
			serveErr <- web.ServeMultiple(listeners, server, webFlags, logger)
		} else {
			serveErr <- web.ListenAndServe(server, webFlags, logger)
		}
	}()
	logger.Info("carewatch-teams started", "channels", len(channels), "version", version.Version)

	select {
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			logger.Error("serving HTTP", "err", err)
			return 1
		}
		return 0
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if err := server.Shutdown(sctx); err != nil {
		logger.Warn("shutdown", "err", err)
	}
	return 0
}

// maxCardBytes keeps a message under Teams' limit of about 28 KB.
const maxCardBytes = 24 << 10
