// Command carewatch-demo runs carewatch on the demo council: a synthetic
// London-sized borough whose reporting database it creates, and whose clock
// it moves on by a day every so often while carewatch collects from it.
//
// Without connection strings it provisions its own PostgreSQL (installing
// Debian's postgresql package first when it is missing and it may), so that
// one command runs the whole demo on a fresh machine. The daemon it runs is
// the carewatch binary, unchanged: the demo adds nothing to it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/common/promslog"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/internal/cli"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses the command line and runs the demo; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	app, logConfig := cli.New("carewatch-demo", "Run carewatch on the synthetic demo council, provisioning a local PostgreSQL when "+demo.StoreDSNEnv+" is not set.", stdout, stderr)
	o := options{Stdout: stdout, Stderr: stderr}
	app.Flag("config.file", "The demo council's carewatch configuration.").Default(defaultConfigFile).StringVar(&o.ConfigFile)
	app.Flag("web.listen-address", "Addresses carewatch serves /metrics on (repeatable).").Default(":9839").StringsVar(&o.ListenAddresses)
	app.Flag("shutdown.timeout", "How long carewatch's graceful shutdown may take.").Default("30s").DurationVar(&o.ShutdownTimeout)
	app.Flag("carewatch.binary", "The carewatch binary to run; by default the one beside this program, else one built from the checkout in the current folder.").StringVar(&o.Binary)
	app.Flag("demo.dir", "Where the demo keeps its local PostgreSQL (when "+demo.StoreDSNEnv+" is not set) and the carewatch it builds.").Default(".carewatch").StringVar(&o.Dir)
	app.Flag("demo.seed", "Seed of the synthetic council; the same seed gives the same council.").Default("2026").Uint64Var(&o.Seed)
	app.Flag("demo.day-every", "How often the demo council's clock moves on by one day (0 keeps it still).").Default("1m").DurationVar(&o.DayEvery)
	app.Arg("carewatch-flags", "More flags for `carewatch run`, after --.").StringsVar(&o.ExtraArgs)

	_, exit, code, err := cli.Parse(app, args)
	if exit { // --help or --version
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "carewatch-demo: %v\n", err)
		return 2
	}
	o.Logger = promslog.New(logConfig)
	o.LogLevel, o.LogFormat = logConfig.Level.String(), logConfig.Format.String()
	// The connection strings are read here, once, and handed on as options.
	o.StoreDSN, o.SourceDSN = os.Getenv(demo.StoreDSNEnv), os.Getenv(demo.SourceDSNEnv)
	o.SourceReaderDSN = os.Getenv(demo.SourceReaderDSNEnv)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGHUP)
	defer signal.Stop(reload)
	o.Reload = reload

	if err := runDemo(ctx, o); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "carewatch-demo: %v\n", err)
		return 1
	}
	return 0
}

// defaultConfigFile is the demo council's configuration, relative to the
// repository root (and to the working folder of the container image).
const defaultConfigFile = "examples/demo/carewatch.yml"

// options are what the demo runs with.
type options struct {
	ConfigFile      string
	ListenAddresses []string
	ShutdownTimeout time.Duration
	Binary          string
	Dir             string
	Seed            uint64
	DayEvery        time.Duration
	ExtraArgs       []string
	LogLevel        string
	LogFormat       string
	// StoreDSN and SourceDSN are the store's and the demo council's
	// databases; empty ones are provisioned on a local PostgreSQL (the
	// source then shares the store's database).
	StoreDSN, SourceDSN string
	// SourceReaderDSN, if set, is the council's database as a read-only
	// role: carewatch collects through it, while the demo writes the
	// council through SourceDSN.
	SourceReaderDSN string
	// Reload receives a value for every SIGHUP, passed on to carewatch.
	Reload <-chan os.Signal
	Logger *slog.Logger
	// Stdout and Stderr receive carewatch's output.
	Stdout, Stderr io.Writer
}
