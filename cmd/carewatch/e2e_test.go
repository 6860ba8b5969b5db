package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/e2e"
	"github.com/carewatch/carewatch/internal/debian"
	"github.com/carewatch/carewatch/mariadblocal/mdbtest"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(mdbtest.Main(func() int { return pgtest.Main(m) })) }

const demoConfig = "../../examples/demo/carewatch.yml"

// demoStart is the demo council's first reporting date in these tests.
var demoStart = time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)

// council is a demo source and an empty store, reachable through the
// environment variables the demo configuration names.
type council struct {
	source *sqlx.DB
	store  *sqlx.DB
}

func newCouncil(t *testing.T) *council {
	t.Helper()
	storeDSN, sourceDSN := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	t.Setenv(demo.StoreDSNEnv, storeDSN)
	t.Setenv(demo.SourceDSNEnv, sourceDSN)
	c := &council{source: sqlx.MustOpen("postgres", sourceDSN), store: sqlx.MustOpen("postgres", storeDSN)}
	t.Cleanup(func() { c.source.Close(); c.store.Close() })
	if err := demo.Setup(t.Context(), c.source, demo.Options{Seed: 7, Today: demoStart}); err != nil {
		t.Fatalf("demo.Setup: %v", err)
	}
	return c
}

// syncBuffer is a log sink the daemon and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// instance is a carewatch daemon running in-process on a loopback port.
type instance struct {
	url    string
	d      *daemon
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func startDaemon(t *testing.T, configFile string) *instance {
	t.Helper()
	return startDaemonWeb(t, configFile, "")
}

// startDaemonWeb starts a daemon whose HTTP surface follows webConfig, an
// exporter-toolkit web configuration file ("" for none).
func startDaemonWeb(t *testing.T, configFile, webConfig string) *instance {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	noSocket := false
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *daemon, 1)
	in := &instance{url: "http://" + l.Addr().String(), logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() {
		in.done <- runDaemon(ctx, daemonOptions{
			ConfigFile:      configFile,
			Web:             &web.FlagConfig{WebListenAddresses: &[]string{}, WebSystemdSocket: &noSocket, WebConfigFile: &webConfig},
			Listener:        l,
			EnableLifecycle: true,
			ShutdownTimeout: 20 * time.Second,
			Logger:          slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug})),
			Started:         func(d *daemon) { started <- d },
		})
	}()
	select {
	case in.d = <-started:
	case err := <-in.done:
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("daemon did not start within a minute")
	}
	t.Cleanup(func() { in.stop(t) })
	return in
}

// stop shuts the daemon down and waits for it; it is safe to call twice.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	if in.cancel == nil {
		return
	}
	in.cancel()
	in.cancel = nil
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("daemon stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("daemon did not stop within 30s of its context ending")
	}
}

// testWriter sends the daemon's log to the test's log, shown on failure.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (in *instance) scrape(t *testing.T) (map[string]*dto.MetricFamily, []byte) {
	t.Helper()
	resp, err := http.Get(in.url + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams, body
}

// waitFor scrapes until cond holds or the deadline passes.
func (in *instance) waitFor(t *testing.T, what string, within time.Duration, cond func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		fams, _ := in.scrape(t)
		if cond(fams) {
			return fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", within, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// collectorValue is a per-collector gauge's value, or NaN if absent.
func collectorValue(fams map[string]*dto.MetricFamily, metric, collector string) float64 {
	for _, m := range fams[metric].GetMetric() {
		if labelsOf(m)["collector"] == collector {
			return sampleValue(m)
		}
	}
	return math.NaN()
}

func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return math.NaN()
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// keyOf is the demo.Key of a sample of a KPI metric: its labels, less the
// generic families' own, as name=value sorted by name.
func keyOf(kpiName string, m *dto.Metric) demo.Key {
	ls := labelsOf(m)
	delete(ls, "kpi")
	delete(ls, "level")
	return demo.SeriesKey(kpiName, ls)
}

var demoCollectors = []string{"caseload", "workforce", "children_assessments", "adults_waiting"}

func allCollectorsSucceeded(fams map[string]*dto.MetricFamily) bool {
	for _, c := range demoCollectors {
		if collectorValue(fams, "carewatch_collector_last_run_success", c) != 1 {
			return false
		}
	}
	return true
}

// kpiSamples is every KPI value sample of the scrape by series, for
// comparing two scrapes.
func kpiSamples(fams map[string]*dto.MetricFamily, kpis []string) map[demo.Key]float64 {
	out := map[demo.Key]float64{}
	for _, k := range kpis {
		for _, m := range fams["carewatch_"+k].GetMetric() {
			out[keyOf(k, m)] = sampleValue(m)
		}
	}
	return out
}

func expectedKPIs(fig demo.Figures) []string {
	seen := map[string]bool{}
	var names []string
	for k := range fig {
		if !seen[k.KPI] {
			seen[k.KPI] = true
			names = append(names, k.KPI)
		}
	}
	sort.Strings(names)
	return names
}

// The heart of the pipeline: the demo council's numbers, collected on a
// schedule, stored and exported, are the numbers an independent
// computation over the same source gives; and promtool accepts the output.
func TestDemoCouncilMetricsEqualAnIndependentComputationOverTheSource(t *testing.T) {
	c := newCouncil(t)
	in := startDaemon(t, demoConfig)
	fams := in.waitFor(t, "every demo collector to succeed", 60*time.Second, allCollectorsSucceeded)

	want, err := demo.Expected(t.Context(), c.source)
	if err != nil {
		t.Fatalf("demo.Expected: %v", err)
	}
	kpis := expectedKPIs(want)
	for _, required := range []string{
		"children_sw_caseload_average", "children_sw_vacancy_ratio", "children_sw_agency_ratio",
		"adults_assessment_waiting_people", "adults_assessment_wait_median_seconds",
		"adults_assessment_waiting_over_6m_ratio", "children_assessment_within_45wd_ratio",
	} {
		if len(fams["carewatch_"+required].GetMetric()) == 0 {
			t.Errorf("/metrics has no carewatch_%s", required)
		}
	}
	got := kpiSamples(fams, kpis)
	periods := map[demo.Key]bool{}
	for _, m := range fams["carewatch_kpi_period_timestamp_seconds"].GetMetric() {
		if !slices.Contains(kpis, labelsOf(m)["kpi"]) {
			continue // the national statistics describe 30 September
		}
		k := keyOf(labelsOf(m)["kpi"], m)
		periods[k] = true
		if v := sampleValue(m); v != float64(demoStart.Unix()) && v != float64(time.Date(2026, 3, 31, 0, 0, 0, 0, mustLondon(t)).Unix()) {
			t.Errorf("%s: period timestamp %v is not the reporting date", k, time.Unix(int64(v), 0).UTC())
		}
	}
	for k, v := range want {
		if !periods[k] {
			t.Errorf("%s: no period timestamp exported", k)
		}
		g, ok := got[k]
		switch {
		case !v.Valid && ok:
			t.Errorf("%s: missing in the source but exported as %v", k, g)
		case v.Valid && !ok:
			t.Errorf("%s: %v in the source but not exported", k, v.V)
		case v.Valid && math.Abs(g-v.V) > 1e-9*math.Max(1, math.Abs(v.V)):
			t.Errorf("%s: exported %v, the source gives %v", k, g, v.V)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: exported but not in the source", k)
		}
	}

	// At least one team is red, through the demo's own data.
	red := 0
	for _, m := range fams["carewatch_kpi_status"].GetMetric() {
		if sampleValue(m) == 2 {
			red++
		}
	}
	if red == 0 {
		t.Error("no series is red on the demo council")
	}

	_, body := in.scrape(t)
	promtoolCheckMetrics(t, body)
}

func mustLondon(t *testing.T) *time.Location {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func promtoolCheckMetrics(t *testing.T, body []byte) {
	t.Helper()
	promtool, err := debian.Find("promtool", "prometheus")
	if err != nil {
		t.Fatalf("promtool: %v", err)
	}
	cmd := exec.CommandContext(t.Context(), promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// demoConfigText is the demo configuration's text, with its file source's
// folder made absolute so that a copy elsewhere still finds it.
func demoConfigText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(demoConfig)
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(filepath.Join(filepath.Dir(demoConfig), "../dfe/data"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "directory: ../dfe/data", "directory: "+abs, 1)
	if s == string(b) {
		t.Fatal("the demo configuration no longer reads ../dfe/data: update demoConfigText")
	}
	return s
}

// withoutRunOnStart writes a copy of the demo configuration whose collectors
// do not run at start and are not due for hours.
func withoutRunOnStart(t *testing.T) string {
	t.Helper()
	s := strings.ReplaceAll(demoConfigText(t), "run_on_start: true", "run_on_start: false")
	return writeConfig(t, strings.ReplaceAll(s, `schedule: "@every 1m"`, `schedule: "@every 6h"`))
}

// A restart serves the same numbers as before it, before any collector has
// run again: the first snapshot comes from the store.
func TestRestartServesTheSameValuesBeforeAnyCollectorRuns(t *testing.T) {
	c := newCouncil(t)
	in := startDaemon(t, demoConfig)
	before := in.waitFor(t, "every demo collector to succeed", 60*time.Second, allCollectorsSucceeded)
	want, err := demo.Expected(t.Context(), c.source)
	if err != nil {
		t.Fatal(err)
	}
	kpis := expectedKPIs(want)
	in.stop(t)

	// The source moves on, so a collector run would change the numbers.
	if err := demo.Advance(t.Context(), c.source, 3); err != nil {
		t.Fatal(err)
	}
	again := startDaemon(t, withoutRunOnStart(t))
	after, _ := again.scrape(t)
	b, a := kpiSamples(before, kpis), kpiSamples(after, kpis)
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("after restart %d KPI samples, before %d", len(a), len(b))
	}
	for k, v := range b {
		if a[k] != v {
			t.Errorf("%s: %v before the restart, %v after", k, v, a[k])
		}
	}
	for _, c := range demoCollectors {
		if collectorValue(after, "carewatch_collector_last_run_success", c) != 1 {
			t.Errorf("collector %s: last run success not restored from the store", c)
		}
	}
}

func count(t *testing.T, db *sqlx.DB, query string) int {
	t.Helper()
	var n int
	if err := db.GetContext(t.Context(), &n, query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// Collecting the same period twice adds nothing; a changed value for that
// period is kept as a revision.
func TestCollectingTheSamePeriodTwiceAddsNothingAndAChangeIsARevision(t *testing.T) {
	c := newCouncil(t)
	var out bytes.Buffer
	logger := slog.New(slog.DiscardHandler)
	if err := runCollect(t.Context(), demoConfig, "caseload", false, &out, logger); err != nil {
		t.Fatalf("collect: %v", err)
	}
	first := count(t, c.store, "SELECT count(*) FROM observations")
	if first == 0 {
		t.Fatal("the first collection stored nothing")
	}
	out.Reset()
	if err := runCollect(t.Context(), demoConfig, "caseload", false, &out, logger); err != nil {
		t.Fatalf("collect again: %v", err)
	}
	if n := count(t, c.store, "SELECT count(*) FROM observations"); n != first {
		t.Errorf("observations %d after collecting the same period again, %d before", n, first)
	}
	if n := count(t, c.store, "SELECT count(*) FROM revisions"); n != 0 {
		t.Errorf("%d revisions after an unchanged collection", n)
	}
	if !strings.Contains(out.String(), fmt.Sprintf("%d unchanged", first)) {
		t.Errorf("collect's summary does not say everything was unchanged:\n%s", out.String())
	}

	// The same reporting date, different numbers: a revision, not a new row.
	if err := demo.AddCases(t.Context(), c.source, "Family Support North", 30); err != nil {
		t.Fatal(err)
	}
	if err := runCollect(t.Context(), demoConfig, "caseload", false, &out, logger); err != nil {
		t.Fatalf("collect after the change: %v", err)
	}
	if n := count(t, c.store, "SELECT count(*) FROM observations"); n != first {
		t.Errorf("observations %d after a revision, want %d", n, first)
	}
	if n := count(t, c.store, "SELECT count(*) FROM revisions"); n < 2 {
		t.Errorf("%d revisions, want the team's and the service's", n)
	}
}

// A dry run prints the observations as a table and stores nothing.
func TestCollectDryRunPrintsATableAndStoresNothing(t *testing.T) {
	c := newCouncil(t)
	var out bytes.Buffer
	if err := runCollect(t.Context(), demoConfig, "adults_waiting", true, &out, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("collect --dry-run: %v", err)
	}
	if !strings.HasPrefix(out.String(), "KPI ") || !strings.Contains(out.String(), "adults_assessment_waiting_people") || !strings.Contains(out.String(), "(dry run: nothing stored)") {
		t.Errorf("unexpected output:\n%s", out.String())
	}
	if n := count(t, c.store, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'observations'"); n != 0 {
		t.Error("a dry run touched the store")
	}
}

// writeConfig writes a configuration file for a test.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "carewatch.yml")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// waitForFirstRuns waits for the collectors of an isolation test's
// configuration (one healthy, one for each way a source fails) to finish
// their first runs, checks that the healthy one alone succeeded, and
// returns the metrics served then.
func waitForFirstRuns(t *testing.T, in *instance) map[string]*dto.MetricFamily {
	t.Helper()
	fams := in.waitFor(t, "every collector to finish its first run", 60*time.Second, func(f map[string]*dto.MetricFamily) bool {
		for _, c := range []string{"healthy", "source_down", "query_errors", "query_times_out"} {
			if math.IsNaN(collectorValue(f, "carewatch_collector_last_run_success", c)) {
				return false
			}
		}
		return true
	})
	for c, want := range map[string]float64{"healthy": 1, "source_down": 0, "query_errors": 0, "query_times_out": 0} {
		if got := collectorValue(fams, "carewatch_collector_last_run_success", c); got != want {
			t.Errorf("collector %s: last run success %v, want %v", c, got, want)
		}
	}
	return fams
}

// isolationConfig has one healthy collector and three broken ones: a source
// that is down, a query that errors, a query that times out.
func isolationConfig(t *testing.T, downDSN string) string {
	t.Setenv("CW_DOWN_DSN", downDSN)
	return writeConfig(t, `
global: {default_retries: 1, default_retry_backoff: 100ms}
kpis:
  - name: children_open_cases
    help: Open children's cases.
    direction: lower_is_better
    labels: [team]
    thresholds: {amber: 200, red: 300}
    max_age: 36h
sources:
  - {name: cms, type: postgres, dsn_env: CAREWATCH_DEMO_SOURCE_URL, statement_timeout: 1s}
  - {name: down, type: postgres, dsn_env: CW_DOWN_DSN}
collectors:
  - name: healthy
    source: cms
    schedule: "@every 1h"
    run_on_start: true
    query: &q |
      SELECT t.team_name AS team, count(c.case_id) AS open, r.today AS period
        FROM cms.team t LEFT JOIN cms.child_case c ON c.team_id = t.team_id AND c.closed IS NULL
       CROSS JOIN cms.reporting_date r WHERE t.service = 'children' GROUP BY 1, 3
    period_column: period
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]
  - name: source_down
    source: down
    schedule: "@every 1h"
    run_on_start: true
    timeout: 5s
    query: *q
    period_column: period
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]
  - name: query_errors
    source: cms
    schedule: "@every 1h"
    run_on_start: true
    query: SELECT team_name AS team, 1 AS open FROM cms.no_such_table
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]
  - name: query_times_out
    source: cms
    schedule: "@every 1h"
    run_on_start: true
    timeout: 10s
    query: SELECT 'x' AS team, 1 AS open FROM pg_sleep(5)
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]
`)
}

// A source that is down, a query that errors and a query that times out
// each fail only their own collector; the log names the collector and the
// cause; the healthy collector carries on; and after the healthy collector's
// own query breaks, its last good values are still served with their period.
func TestABrokenSourceFailsOnlyItsOwnCollectorAndKeepsTheLastGoodValues(t *testing.T) {
	c := newCouncil(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := l.Addr().String()
	l.Close()
	in := startDaemon(t, isolationConfig(t, "postgres://carewatch@"+downAddr+"/cms?sslmode=disable"))

	fams := waitForFirstRuns(t, in)
	logs := in.logs.String()
	for _, want := range []string{
		`collector=source_down`, "connection refused",
		`collector=query_errors`, `relation \"cms.no_such_table\" does not exist`,
		`collector=query_times_out`, "canceling statement due to statement timeout",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log does not say %q", want)
		}
	}
	healthy := len(fams["carewatch_children_open_cases"].GetMetric())
	if healthy == 0 {
		t.Fatal("the healthy collector's values are not served")
	}

	// Break the healthy collector's source: its run fails, its values stay.
	if _, err := c.source.ExecContext(t.Context(), `ALTER TABLE cms.reporting_date RENAME TO reporting_date_gone`); err != nil {
		t.Fatal(err)
	}
	if err := in.d.runNow(t.Context(), "healthy"); err == nil {
		t.Fatal("a run against the broken source succeeded")
	}
	after, _ := in.scrape(t)
	if got := collectorValue(after, "carewatch_collector_last_run_success", "healthy"); got != 0 {
		t.Errorf("healthy collector's last run success %v after its source broke, want 0", got)
	}
	if got := len(after["carewatch_children_open_cases"].GetMetric()); got != healthy {
		t.Errorf("%d values served after the failed run, %d before", got, healthy)
	}
	if len(after["carewatch_kpi_period_timestamp_seconds"].GetMetric()) != healthy {
		t.Error("the last good values lost their period timestamps")
	}
	if n := count(t, c.store, "SELECT count(*) FROM runs WHERE status = 'failed'"); n < 4 {
		t.Errorf("%d failed runs recorded, want at least 4", n)
	}
}

// A bad configuration on reload is refused; the daemon keeps running the
// configuration it had, and says so in a metric.
func TestABadConfigOnReloadKeepsTheRunningOne(t *testing.T) {
	newCouncil(t)
	b := []byte(demoConfigText(t))
	file := writeConfig(t, string(b))
	in := startDaemon(t, file)
	in.waitFor(t, "every demo collector to succeed", 60*time.Second, allCollectorsSucceeded)

	bad := strings.Replace(string(b), `schedule: "@every 1m"`, `schedule: "@every fortnight"`, 1)
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(in.url+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(msg), `collectors[0].schedule: "@every fortnight" is not a valid schedule`) {
		t.Errorf("reload of a bad file: %d %s", resp.StatusCode, msg)
	}
	// Refused over HTTP, it is logged as a refused SIGHUP is.
	if logs := in.logs.String(); !strings.Contains(logs, `msg="reload failed; keeping the running configuration" trigger=HTTP`) {
		t.Errorf("the refused reload over HTTP was not logged:\n%s", logs)
	}
	fams, _ := in.scrape(t)
	if v := fams["carewatch_config_last_reload_successful"].GetMetric(); len(v) != 1 || sampleValue(v[0]) != 0 {
		t.Errorf("carewatch_config_last_reload_successful = %v, want 0", v)
	}
	// The old configuration still runs its collectors.
	if err := in.d.runNow(t.Context(), "caseload"); err != nil {
		t.Errorf("the running configuration's collector no longer runs: %v", err)
	}

	// A good file on SIGHUP's path is taken.
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := in.d.reload(t.Context()); err != nil {
		t.Fatalf("reload of a good file: %v", err)
	}
	fams, _ = in.scrape(t)
	if v := fams["carewatch_config_last_reload_successful"].GetMetric(); len(v) != 1 || sampleValue(v[0]) != 1 {
		t.Errorf("carewatch_config_last_reload_successful = %v after a good reload, want 1", v)
	}
}

// check refuses a bad configuration with messages naming the path, and the
// daemon refuses to start on one.
func TestCheckAndRunRefuseABadConfig(t *testing.T) {
	file := writeConfig(t, `
kpis:
  - {name: x, help: h, direction: lower_is_better, thresholds: {amber: 5, red: 2}}
sources: [{name: cms, type: postgres, dsn_env: X}]
collectors:
  - {name: c, source: cms, schedule: "@daily", query: SELECT 1 AS v, metrics: [{kpi: y, value_column: v}]}
`)
	for _, args := range [][]string{{"check"}, {"run", "--web.listen-address", "127.0.0.1:0"}} {
		t.Run(args[0]+" exits 1 naming the paths", func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append(args, "--config.file", file), &stdout, &stderr)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			for _, want := range []string{
				file + ":3: kpis[0].thresholds.red: red 2 is below amber 5",
				file + ":6: collectors[0].metrics[0].kpi: KPI \"y\" is not defined under kpis",
			} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
				}
			}
		})
	}
	t.Run("check accepts the demo configuration", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"check", "--config.file", demoConfig}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit code %d: %s", code, stderr.String())
		}
		if !strings.Contains(stdout.String(), "OK") {
			t.Errorf("stdout: %s", stdout.String())
		}
	})
}

// check --connect reaches the store and every source, and names the one it
// cannot reach.
func TestCheckConnectNamesTheUnreachableSource(t *testing.T) {
	c := newCouncil(t)
	// The demo configuration, reading the council's statutory returns from
	// where this test writes them rather than from the checkout.
	returns := t.TempDir()
	writeSampledReturns(t, c.source, returns)
	config := e2e.DemoConfig(t, e2e.DemoConfigOptions{Directories: map[string]string{
		"annex_a": filepath.Join(returns, demo.AnnexADir),
		"ssda903": filepath.Join(returns, demo.SSDA903Dir),
		"cld":     filepath.Join(returns, demo.CLDDir),
	}})
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--connect", "--config.file", config}, &stdout, &stderr); code != 0 {
		t.Fatalf("check --connect on a reachable demo: exit %d: %s", code, stderr.String())
	}
	t.Setenv(demo.SourceDSNEnv, "postgres://carewatch@127.0.0.1:1/none?sslmode=disable")
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"check", "--connect", "--config.file", config}, &stdout, &stderr); code != 1 {
		t.Errorf("check --connect with the source down: exit %d", code)
	}
	if !strings.Contains(stderr.String(), `source "cms": cannot connect`) {
		t.Errorf("stderr does not name the source: %s", stderr.String())
	}
}

// check --connect reaches a file source's folder as it reaches a database.
func TestCheckConnectReachesFileSources(t *testing.T) {
	t.Setenv(demo.StoreDSNEnv, pgtest.NewDatabase(t))
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--connect", "--config.file", "../../examples/dfe/benchmarking.yml"}, &stdout, &stderr); code != 0 {
		t.Fatalf("check --connect on the DfE example: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), `source "dfe": reachable`) {
		t.Errorf("stdout does not say the file source is reachable:\n%s", stdout.String())
	}
}

// oneCollectorConfig writes a configuration with one collector on the demo
// source, whose query gives a team and its open cases.
func oneCollectorConfig(t *testing.T, name, schedule, query string) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf(`
kpis:
  - {name: children_open_cases, help: Open cases., direction: lower_is_better, labels: [team]}
sources:
  - {name: cms, type: postgres, dsn_env: CAREWATCH_DEMO_SOURCE_URL}
collectors:
  - name: %s
    source: cms
    schedule: %q
    query: %q
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]
`, name, schedule, query))
}

// A reload while a run is in flight waits for that run, not for the
// shutdown timeout: the run's last step refreshes the snapshot, which must
// not wait on the reload.
func TestReloadDuringARunWaitsOnlyForTheRun(t *testing.T) {
	newCouncil(t)
	file := oneCollectorConfig(t, "slow", "@every 6h", "SELECT 'north' AS team, 1 AS open FROM pg_sleep(2)")
	in := startDaemon(t, file) // shutdown timeout 20s
	ran := make(chan error, 1)
	go func() { ran <- in.d.runNow(context.Background(), "slow") }()
	time.Sleep(500 * time.Millisecond) // the run is inside its pg_sleep

	reloaded := make(chan error, 1)
	go func() { reloaded <- in.d.reload(context.Background()) }()
	select {
	case err := <-reloaded:
		if err != nil {
			t.Fatalf("reload: %v", err)
		}
	case <-time.After(12 * time.Second):
		t.Fatal("reload still waiting 12s later: it waits for the shutdown timeout, not for the 2s run")
	}
	if err := <-ran; err != nil {
		t.Errorf("the run in flight: %v", err)
	}
}

// A reload asked for over HTTP keeps the schedules running after the
// request has been answered.
func TestSchedulesKeepRunningAfterAReloadOverHTTP(t *testing.T) {
	newCouncil(t)
	file := oneCollectorConfig(t, "ticking", "@every 1s", "SELECT 'north' AS team, 1 AS open")
	in := startDaemon(t, file)
	runs := func(f map[string]*dto.MetricFamily) float64 {
		return collectorValue(f, "carewatch_collector_runs_total", "ticking")
	}
	in.waitFor(t, "a scheduled run", 20*time.Second, func(f map[string]*dto.MetricFamily) bool { return runs(f) >= 1 })
	resp, err := http.Post(in.url+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload: %d", resp.StatusCode)
	}
	after, _ := in.scrape(t)
	base := runs(after)
	in.waitFor(t, "scheduled runs after the reload", 20*time.Second, func(f map[string]*dto.MetricFamily) bool { return runs(f) >= base+2 })
}
