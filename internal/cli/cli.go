// Package cli holds the command-line conventions carewatch's programs share
// with Prometheus and its exporters: --help and --version print and exit 0
// and do nothing else, and a listen address that cannot be had is an error
// at start-up, not a log line after it.
package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
)

// New returns the command line of the program name, described by help, in
// the ecosystem's conventions: --version, -h for --help, usage on stdout,
// errors on stderr, and --log.level and --log.format, which fill the
// returned logging configuration (logs go to stderr).
func New(name, help string, stdout, stderr io.Writer) (*kingpin.Application, *promslog.Config) {
	app := kingpin.New(name, help)
	app.Version(version.Print(name))
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	logConfig := &promslog.Config{Writer: stderr}
	promslogflag.AddFlags(app, logConfig)
	return app, logConfig
}

// Parse parses args with app. When a flag such as --help or --version has
// printed what was asked and asks the program to end, exit is true and code
// is its exit code: the caller returns it and runs nothing.
func Parse(app *kingpin.Application, args []string) (cmd string, exit bool, code int, err error) {
	// kingpin calls its terminate function and then goes on parsing, with
	// defaults unset; only the first call counts.
	app.Terminate(func(c int) {
		if !exit {
			exit, code = true, c
		}
	})
	cmd, err = app.Parse(args)
	if exit {
		return "", true, code, nil
	}
	return cmd, false, 0, err
}

// Listen listens on every TCP address of flags, so that an address in use
// fails the start at once. It returns no listeners, and no error, when
// flags ask for systemd socket activation or a vsock address: serve those
// with web.ListenAndServe.
func Listen(flags *web.FlagConfig) ([]net.Listener, error) {
	if flags == nil || flags.WebListenAddresses == nil {
		return nil, errors.New("no listen address")
	}
	if flags.WebSystemdSocket != nil && *flags.WebSystemdSocket {
		return nil, nil
	}
	var listeners []net.Listener
	for _, addr := range *flags.WebListenAddresses {
		if strings.HasPrefix(addr, "vsock://") {
			closeAll(listeners)
			return nil, nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll(listeners)
			return nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
		listeners = append(listeners, l)
	}
	return listeners, nil
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		_ = l.Close()
	}
}
