package main

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	dto "github.com/prometheus/client_model/go"

	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/store"
)

// --help, --version and COMMAND --help print, exit 0 and do nothing else:
// no daemon, no demo, no configuration read.
func TestHelpAndVersionPrintAndExitZero(t *testing.T) {
	t.Chdir(t.TempDir()) // no carewatch.yml, no demo configuration here
	t.Setenv("CAREWATCH_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "usage: carewatch"},
		{[]string{"-h"}, "usage: carewatch"},
		{[]string{"--version"}, "carewatch, version"},
		{[]string{"run", "--help"}, "usage: carewatch run"},
		{[]string{"check", "--help"}, "usage: carewatch check"},
		{[]string{"collect", "--help"}, "usage: carewatch collect"},
		{[]string{"help"}, "usage: carewatch"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			done := make(chan int, 1)
			go func() { done <- run(tt.args, &stdout, &stderr) }()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("still running after 10s: it did more than print")
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

// A listen address in use is an error at once, with a non-zero exit.
func TestRunFailsAtOnceWhenItsAddressIsInUse(t *testing.T) {
	t.Setenv("CAREWATCH_DATABASE_URL", pgtest.NewDatabase(t))
	t.Setenv("CAREWATCH_DEMO_SOURCE_URL", pgtest.NewDatabase(t))
	file := oneCollectorConfig(t, "open_cases", "@every 1h", "SELECT 'north' AS team, 1 AS open")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"run", "--config.file=" + file, "--web.listen-address=" + busy.Addr().String()}, &stdout, &stderr)
	}()
	select {
	case code := <-done:
		if code == 0 {
			t.Error("exit 0 with its address in use")
		}
		if !strings.Contains(stderr.String(), "address already in use") || !strings.Contains(stderr.String(), busy.Addr().String()) {
			t.Errorf("stderr does not name the address in use:\n%s", stderr.String())
		}
		if strings.Contains(stderr.String(), "carewatch started") {
			t.Errorf("it said it started:\n%s", stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15s after start with its address in use:\n%s", stderr.String())
	}
}

// Without --web.enable-lifecycle, POST /-/reload is refused.
func TestReloadOverHTTPNeedsTheLifecycleFlag(t *testing.T) {
	t.Setenv("CAREWATCH_DATABASE_URL", pgtest.NewDatabase(t))
	t.Setenv("CAREWATCH_DEMO_SOURCE_URL", pgtest.NewDatabase(t))
	file := oneCollectorConfig(t, "open_cases", "@every 1h", "SELECT 'north' AS team, 1 AS open")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"run", "--config.file=" + file, "--web.listen-address=" + addr}, &stdout, &stderr)
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case code := <-done:
			t.Fatalf("carewatch exited %d:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 30s:\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := client.Post("http://"+addr+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /-/reload without --web.enable-lifecycle: %s, want 403", resp.Status)
	}
	if strings.Contains(stderr.String(), "configuration reloaded") {
		t.Error("the configuration was reloaded")
	}
	stopRun(t, done)
}

// stopRun ends a run started in-process as SIGTERM would, and waits for it.
func stopRun(t *testing.T, done <-chan int) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after SIGTERM", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30s after SIGTERM")
	}
}

// check --connect leaves the store as it found it, and runs every
// collector without storing, so a broken query is found before the daemon
// starts.
func TestCheckConnectChangesNothingAndDryRunsEveryCollector(t *testing.T) {
	storeDSN := pgtest.NewDatabase(t)
	t.Setenv("CAREWATCH_DATABASE_URL", storeDSN)
	t.Setenv("CAREWATCH_DEMO_SOURCE_URL", pgtest.NewDatabase(t))
	tables := func() int {
		db := sqlx.MustOpen("postgres", storeDSN)
		defer db.Close()
		return count(t, db, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`)
	}

	good := oneCollectorConfig(t, "open_cases", "@every 1h", "SELECT 'north' AS team, 1 AS open")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--connect", "--config.file", good}, &stdout, &stderr); code != 0 {
		t.Fatalf("check --connect: exit %d: %s", code, stderr.String())
	}
	if n := tables(); n != 0 {
		t.Errorf("check --connect made %d tables in an empty store", n)
	}
	for _, want := range []string{"store: reachable; carewatch run or migrate will apply", `collector "open_cases": dry run: 1 observations`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout does not say %q:\n%s", want, stdout.String())
		}
	}

	bad := oneCollectorConfig(t, "open_cases", "@every 1h", "SELECT 'north' AS team, 1 AS opened")
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"check", "--connect", "--config.file", bad}, &stdout, &stderr); code != 1 {
		t.Errorf("check --connect with a missing column: exit %d", code)
	}
	if !strings.Contains(stderr.String(), `collector "open_cases": dry run:`) || !strings.Contains(stderr.String(), `no column "open"`) {
		t.Errorf("stderr does not name the collector and the missing column:\n%s", stderr.String())
	}
	if n := tables(); n != 0 {
		t.Errorf("check --connect made %d tables in an empty store", n)
	}
}

// Only the collectors of the configuration in force export their health:
// one removed, renamed or run once by carewatch collect is not reported,
// so its failures cannot keep an alert firing.
func TestOnlyTheCollectorsInForceExportTheirHealth(t *testing.T) {
	storeDSN := pgtest.NewDatabase(t)
	t.Setenv("CAREWATCH_DATABASE_URL", storeDSN)
	t.Setenv("CAREWATCH_DEMO_SOURCE_URL", pgtest.NewDatabase(t))
	st, err := store.Open(t.Context(), storeDSN, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"renamed_before", "removed_last_year"} {
		run := kpi.Run{Collector: gone, Source: "cms", Query: "SELECT 1", StartedAt: time.Now(), FinishedAt: time.Now(), Err: errors.New("relation does not exist")}
		if _, err := st.SaveRun(t.Context(), run, nil); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	in := startDaemon(t, oneCollectorConfig(t, "open_cases", "@every 1s", "SELECT 'north' AS team, 1 AS open"))
	fams := in.waitFor(t, "open_cases to succeed", 30*time.Second, func(f map[string]*dto.MetricFamily) bool {
		return collectorValue(f, "carewatch_collector_last_run_success", "open_cases") == 1
	})
	for _, m := range fams["carewatch_collector_last_run_success"].GetMetric() {
		if c := labelsOf(m)["collector"]; c != "open_cases" {
			t.Errorf("collector %q, not in the configuration, exports its health", c)
		}
	}
}
