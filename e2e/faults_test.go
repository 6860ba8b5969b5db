package e2e_test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/carewatch/carewatch/e2e"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

// faultConfig is a one-collector configuration whose store and source
// DSNs come from CW_STORE_URL and CW_SOURCE_URL.
func faultConfig(t *testing.T, storeTimeout, runTimeout time.Duration, schedule string) string {
	t.Helper()
	return e2e.WriteFile(t, "carewatch.yml", fmt.Sprintf(`
store:
  dsn_env: CW_STORE_URL
  timeout: %s
kpis:
  - {name: children_open_cases, help: Open cases., direction: lower_is_better, labels: [team]}
sources:
  - {name: cms, type: postgres, dsn_env: CW_SOURCE_URL}
collectors:
  - name: open_cases
    source: cms
    schedule: %q
    run_on_start: true
    timeout: %s
    retries: 0
    query: SELECT team, open FROM open_cases
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]
`, storeTimeout, schedule, runTimeout))
}

// sourceWithOpenCases returns the DSN of a database holding open_cases.
func sourceWithOpenCases(t *testing.T) string {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	db := sqlx.MustOpen("postgres", dsn)
	defer db.Close()
	db.MustExec(`CREATE TABLE open_cases (team text, open int); INSERT INTO open_cases VALUES ('north', 12), ('south', 9)`)
	return dsn
}

func storeUp(t *testing.T, cw *e2e.Carewatch) float64 {
	t.Helper()
	fams := cw.Metrics(t)
	m := fams["carewatch_store_up"].GetMetric()
	if len(m) != 1 {
		t.Fatalf("carewatch_store_up has %d samples", len(m))
	}
	return m[0].GetGauge().GetValue()
}

// With its store frozen (SIGSTOP: connections accepted, nothing answered),
// carewatch reports the store down within the store's timeout, ends its
// runs at their deadline, and a SIGTERM ends it within --shutdown.timeout
// plus a second.
func TestAFrozenStoreIsReportedDownAndCannotHoldRunsOrShutdown(t *testing.T) {
	srv := pgtest.NewServer(t)
	const (
		storeTimeout    = 2 * time.Second
		runTimeout      = 3 * time.Second
		shutdownTimeout = 3 * time.Second
	)
	addr := e2e.FreeAddr(t)
	cw := &e2e.Carewatch{Addr: addr, URL: "http://" + addr}
	cw.Process = e2e.StartProcess(t, "carewatch", e2e.BuildCommand(t, "./cmd/carewatch"),
		[]string{"CW_STORE_URL=" + srv.DSN("postgres"), "CW_SOURCE_URL=" + sourceWithOpenCases(t)},
		"run",
		"--config.file="+faultConfig(t, storeTimeout, runTimeout, "@every 1s"),
		"--web.listen-address="+addr,
		"--log.level=debug",
		"--shutdown.timeout="+shutdownTimeout.String(),
	)
	cw.WaitHTTP(t, cw.URL+"/-/ready")
	e2e.Eventually(t, "the first run stored and the store up", 20*time.Second, func() (bool, string) {
		fams := cw.Metrics(t)
		ok := e2e.CollectorGauge(fams, "carewatch_collector_last_run_success")["open_cases"]
		return ok == 1 && storeUp(t, cw) == 1, fmt.Sprintf("last_run_success %v", ok)
	})

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	t.Cleanup(func() { _ = srv.Resume() })
	logFrom := len(cw.Output())

	e2e.Eventually(t, "carewatch_store_up 0", storeTimeout+time.Second, func() (bool, string) {
		return storeUp(t, cw) == 0, "still 1"
	})
	t.Logf("carewatch_store_up was 0 %s after the store froze", time.Since(frozen).Round(10*time.Millisecond))

	// Runs start every second; each must end by its deadline.
	e2e.Eventually(t, "a run failed", runTimeout+3*time.Second, func() (bool, string) {
		return strings.Contains(cw.Output()[logFrom:], `msg="collector run failed"`), "no run has failed yet"
	})
	for _, line := range strings.Split(cw.Output()[logFrom:], "\n") {
		if !strings.Contains(line, `msg="collector run failed"`) {
			continue
		}
		_, after, _ := strings.Cut(line, " duration=")
		field, _, _ := strings.Cut(after, " ")
		d, err := time.ParseDuration(field)
		if err != nil {
			t.Fatalf("no duration in %q", line)
		}
		if d > runTimeout+500*time.Millisecond {
			t.Errorf("a run with a %s timeout took %s: %s", runTimeout, d, line)
		}
	}

	start := time.Now()
	cw.Signal(t, syscall.SIGTERM)
	exited, err := cw.WaitExit(shutdownTimeout + time.Second)
	if !exited {
		t.Fatalf("carewatch still running %s after SIGTERM, with --shutdown.timeout=%s", shutdownTimeout+time.Second, shutdownTimeout)
	}
	t.Logf("carewatch exited %s after SIGTERM (%v)", time.Since(start).Round(10*time.Millisecond), err)
}
