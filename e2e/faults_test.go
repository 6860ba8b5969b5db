package e2e_test

import (
	"database/sql"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	dto "github.com/prometheus/client_model/go"

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
	// The runs that failed meanwhile could not be recorded: each is logged
	// as lost.
	if lost, failed := strings.Count(cw.Output()[logFrom:], `msg="failed run lost`), strings.Count(cw.Output()[logFrom:], `msg="collector run failed"`); lost != failed {
		t.Errorf("%d failed runs logged as lost at shutdown, want the %d that failed", lost, failed)
	}
}

// collectorCounter returns a per-collector counter's value for collector.
func collectorCounter(fams map[string]*dto.MetricFamily, metric, collector string) float64 {
	for _, m := range fams[metric].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "collector" && l.GetValue() == collector {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// storedRun is a run as the store recorded it.
type storedRun struct {
	ID         int64          `db:"id"`
	Status     string         `db:"status"`
	Error      sql.NullString `db:"error"`
	StartedAt  time.Time      `db:"started_at"`
	FinishedAt time.Time      `db:"finished_at"`
}

// Runs that fail while the store does not answer are kept in memory and
// recorded once it answers again, in the order they happened, with their
// times and errors, so that carewatch_collector_failures_total and the
// collector's health show them.
func TestRunsThatFailWhileTheStoreIsFrozenAreRecordedWhenItAnswersAgain(t *testing.T) {
	srv := pgtest.NewServer(t)
	const (
		storeTimeout = time.Second
		runTimeout   = 2 * time.Second
	)
	cw := e2e.StartCarewatch(t, e2e.CarewatchOptions{
		ConfigFile: faultConfig(t, storeTimeout, runTimeout, "@every 1s"),
		Env:        []string{"CW_STORE_URL=" + srv.DSN("postgres"), "CW_SOURCE_URL=" + sourceWithOpenCases(t)},
	})
	e2e.Eventually(t, "the first run stored", 20*time.Second, func() (bool, string) {
		ok := e2e.CollectorGauge(cw.Metrics(t), "carewatch_collector_last_run_success")["open_cases"]
		return ok == 1, fmt.Sprintf("last_run_success %v", ok)
	})

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	t.Cleanup(func() { _ = srv.Resume() })
	logFrom := len(cw.Output())
	failedLogged := func() int { return strings.Count(cw.Output()[logFrom:], `msg="collector run failed"`) }
	e2e.Eventually(t, "three runs failed and waiting in memory", 30*time.Second, func() (bool, string) {
		waiting := e2e.CollectorGauge(cw.Metrics(t), "carewatch_collector_unrecorded_runs")["open_cases"]
		return failedLogged() >= 3 && waiting >= 3, fmt.Sprintf("%d failed, %v waiting", failedLogged(), waiting)
	})
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	t.Logf("store frozen for %s", resumed.Sub(frozen).Round(time.Millisecond))

	db := sqlx.MustOpen("postgres", srv.DSN("postgres"))
	defer db.Close()
	var runs []storedRun
	e2e.Eventually(t, "every failed run recorded and shown in /metrics", 20*time.Second, func() (bool, string) {
		runs = nil
		if err := db.Select(&runs, `SELECT id, status, error, started_at, finished_at FROM runs
			WHERE collector = 'open_cases' AND finished_at >= $1 ORDER BY id`, frozen); err != nil {
			return false, err.Error()
		}
		failed := 0
		for _, r := range runs {
			if r.Status == "failed" {
				failed++
			}
		}
		fams := cw.Metrics(t)
		var all float64
		if err := db.Get(&all, `SELECT count(*) FROM runs WHERE collector = 'open_cases' AND status = 'failed'`); err != nil {
			return false, err.Error()
		}
		total := collectorCounter(fams, "carewatch_collector_failures_total", "open_cases")
		waiting := e2e.CollectorGauge(fams, "carewatch_collector_unrecorded_runs")["open_cases"]
		logged := failedLogged()
		return failed == logged && total == all && waiting == 0,
			fmt.Sprintf("%d failed runs logged, %d recorded since the freeze; failures_total %v of %v recorded; %v waiting", logged, failed, total, all, waiting)
	})

	outage := 0
	for i, r := range runs {
		if i > 0 && r.FinishedAt.Before(runs[i-1].FinishedAt) {
			t.Errorf("run %d (finished %s) recorded after run %d (finished %s)", r.ID, r.FinishedAt, runs[i-1].ID, runs[i-1].FinishedAt)
		}
		if r.Status != "failed" {
			continue
		}
		if !r.Error.Valid || r.Error.String == "" {
			t.Errorf("failed run %d recorded without its error", r.ID)
		}
		if r.StartedAt.Before(resumed) {
			outage++
			if r.FinishedAt.After(resumed.Add(time.Second)) {
				t.Errorf("run %d that failed during the outage recorded as finished at %s, after the store came back at %s", r.ID, r.FinishedAt, resumed)
			}
		}
	}
	if outage < 3 {
		t.Errorf("%d runs that started while the store was frozen are recorded as failed, want at least 3", outage)
	}
	if dropped := collectorCounter(cw.Metrics(t), "carewatch_collector_unrecorded_runs_dropped_total", "open_cases"); dropped != 0 {
		t.Errorf("%v failed runs dropped, want none", dropped)
	}
	e2e.Eventually(t, "the collector succeeding again", 20*time.Second, func() (bool, string) {
		ok := e2e.CollectorGauge(cw.Metrics(t), "carewatch_collector_last_run_success")["open_cases"]
		return ok == 1, fmt.Sprintf("last_run_success %v", ok)
	})
}
