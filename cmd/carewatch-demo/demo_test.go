package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/e2e"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// The quick start's demo, as a user runs it: carewatch-demo creates the
// council in the databases it is given, runs the carewatch binary on the
// demo configuration, moves the council's clock on, and stops cleanly on
// SIGTERM.
func TestTheDemoRunsCarewatchOnTheCouncilAndStopsCleanly(t *testing.T) {
	storeDSN, sourceDSN := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	carewatch := e2e.BuildCommand(t, "./cmd/carewatch")
	demoBin := e2e.BuildCommand(t, "./cmd/carewatch-demo")
	addr := e2e.FreeAddr(t)
	p := e2e.StartProcess(t, "carewatch-demo", demoBin,
		[]string{demo.StoreDSNEnv + "=" + storeDSN, demo.SourceDSNEnv + "=" + sourceDSN},
		"--config.file="+filepath.Join(e2e.RepoRoot(t), "examples", "demo", "carewatch.yml"),
		"--carewatch.binary="+carewatch,
		"--web.listen-address="+addr,
		"--demo.day-every=1s",
		"--shutdown.timeout=10s",
	)
	p.WaitHTTP(t, "http://"+addr+"/-/ready")
	cw := &e2e.Carewatch{Process: p, Addr: addr, URL: "http://" + addr}
	e2e.Eventually(t, "every demo collector to succeed", 3*time.Minute, func() (bool, string) {
		ok := e2e.CollectorGauge(cw.Metrics(t), "carewatch_collector_last_run_success")
		for name, v := range ok {
			if v != 1 {
				return false, name + " has not succeeded"
			}
		}
		return len(ok) > 0, "no collector has run"
	})

	src := sqlx.MustOpen("postgres", sourceDSN)
	defer src.Close()
	today := func() time.Time {
		var d time.Time
		if err := src.GetContext(t.Context(), &d, `SELECT today FROM cms.reporting_date`); err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := today()
	e2e.Eventually(t, "the council's clock to move on", 30*time.Second, func() (bool, string) {
		return today().After(first), "still " + first.Format(time.DateOnly)
	})

	p.Signal(t, syscall.SIGTERM)
	if exited, err := p.WaitExit(30 * time.Second); !exited || err != nil {
		t.Errorf("carewatch-demo exited %v, with %v, on SIGTERM; want exit status 0", exited, err)
	}
	if out := p.Output(); !strings.Contains(out, "shutdown step done") {
		t.Error("carewatch did not shut down in order: no shutdown step in its log")
	}
}

func TestWithoutACarewatchBinaryTheDemoSaysWhatToDo(t *testing.T) {
	// The test binary has no carewatch beside it, and this folder is not
	// the root of a checkout.
	_, err := carewatchBinary(t.Context(), options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), Stderr: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "--carewatch.binary") {
		t.Fatalf("error %v, want one that names --carewatch.binary", err)
	}
}

func TestClosedAncestorFindsTheNearestClosedFolder(t *testing.T) {
	base := t.TempDir()
	closed := filepath.Join(base, "closed")
	inner := filepath.Join(closed, "repo", ".carewatch")
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	// Folders above base are the machine's: whatever they are, none of
	// the open ones below them may be blamed.
	if got := closedAncestor(filepath.Join(inner, "pg")); got != "" && strings.HasPrefix(got, base) {
		t.Errorf("closedAncestor = %s, but every folder from %s down is open", got, base)
	}
	if err := os.Chmod(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	if got := closedAncestor(filepath.Join(inner, "pg")); got != closed {
		t.Errorf("closedAncestor = %q, want %s, which is 0700", got, closed)
	}
}

// --help and --version print, exit 0 and do nothing else: no PostgreSQL,
// no council, no carewatch.
func TestHelpAndVersionPrintAndExitZero(t *testing.T) {
	t.Chdir(t.TempDir()) // no demo configuration here
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "usage: carewatch-demo"},
		{[]string{"-h"}, "usage: carewatch-demo"},
		{[]string{"--version"}, "carewatch-demo, version"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != 0 {
				t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.want) {
				t.Errorf("stdout does not say %q:\n%s", tt.want, stdout.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("it did something else, and wrote to stderr:\n%s", stderr.String())
			}
		})
	}
}
