package dashboards_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	dto "github.com/prometheus/client_model/go"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/e2e"
)

// demoReturns writes the demo council's statutory returns (Annex A,
// SSDA903, CLD) from its source into a new folder, and returns the folder
// of each file source of the demo configuration that reads them.
func demoReturns(ctx context.Context, t *testing.T, source *sqlx.DB) map[string]string {
	t.Helper()
	returns, err := demo.BuildReturns(ctx, source)
	if err != nil {
		t.Fatalf("demo.BuildReturns: %v", err)
	}
	dir := t.TempDir()
	if err := demo.WriteReturns(returns, dir); err != nil {
		t.Fatalf("demo.WriteReturns: %v", err)
	}
	return map[string]string{
		"annex_a": filepath.Join(dir, demo.AnnexADir),
		"ssda903": filepath.Join(dir, demo.SSDA903Dir),
		"cld":     filepath.Join(dir, demo.CLDDir),
	}
}

// kpiState is what a scrape says of every KPI series: its value, status,
// thresholds, period and benchmark mark, by metric and labels.
func kpiState(fams map[string]*dto.MetricFamily, cfg *config.Config) map[string]float64 {
	names := []string{"carewatch_kpi_status", "carewatch_kpi_threshold", "carewatch_kpi_period_timestamp_seconds", "carewatch_kpi_benchmark"}
	for _, k := range cfg.Catalogue.Names() {
		names = append(names, "carewatch_"+k)
	}
	out := map[string]float64{}
	for _, name := range names {
		for _, m := range fams[name].GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			out[name+"{"+strings.Join(ls, ",")+"}"] = m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return out
}

// sameState reports every difference between two kpiStates.
func sameState(t *testing.T, when string, before, after map[string]float64) {
	t.Helper()
	for k, v := range before {
		if w, ok := after[k]; !ok {
			t.Errorf("%s: %s (%v before) is gone", when, k, v)
		} else if w != v {
			t.Errorf("%s: %s is %v, %v before", when, k, w, v)
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s: %s = %v is new", when, k, v)
		}
	}
}

// Backfilling 12 months on the demo council with `carewatch collect NAME
// --from --to`, then restarting the daemon: /metrics serves the same
// current values before and after, the dashboards' history panels show
// the 12 months, and no KPI is retired.
func TestBackfillingTwelveMonthsThenRestartingKeepsTheCurrentValues(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	cfg := loadDemoConfig(t)
	today := demoToday(cfg)
	y, m, _ := today.Date()
	st, sourceDSN, source := demoCouncil(ctx, t, today)
	dirs := demoReturns(ctx, t, source)
	env := []string{e2e.StoreDSNEnv + "=" + st.dsn, e2e.SourceDSNEnv + "=" + sourceDSN}
	cw := e2e.StartCarewatch(t, e2e.CarewatchOptions{ConfigFile: e2e.DemoConfig(t, e2e.DemoConfigOptions{Directories: dirs}), Env: env})
	e2e.Eventually(t, "every demo collector succeeding", 3*time.Minute, func() (bool, string) {
		ok := e2e.CollectorGauge(cw.Metrics(t), "carewatch_collector_last_run_success")
		n := 0
		for _, c := range cfg.Collectors {
			if ok[c.Name] == 1 {
				n++
			}
		}
		return n == len(cfg.Collectors), fmt.Sprintf("%d of %d: %v", n, len(cfg.Collectors), ok)
	})
	before := kpiState(cw.Metrics(t), cfg)
	if len(before) == 0 {
		t.Fatal("no KPI series on /metrics")
	}
	// A backfill does not run beside the daemon's own run of a collector,
	// which the demo's collectors start every minute: stop it meanwhile.
	cw.Stop(t)

	// The 12 whole months before this one, collected by every collector of
	// the council's warehouse (the ones whose queries take the period).
	from, to := time.Date(y, m-12, 1, 0, 0, 0, 0, cfg.Location), time.Date(y, m, 0, 0, 0, 0, 0, cfg.Location)
	var months []string
	for i := range 12 {
		months = append(months, time.Date(y, m-11+time.Month(i), 0, 0, 0, 0, 0, cfg.Location).Format(time.DateOnly))
	}
	backfilled := map[string]bool{}
	for _, c := range cfg.Collectors {
		if cfg.SourceByName(c.Source).Type != config.SourcePostgres {
			continue
		}
		for _, mm := range c.Metrics {
			backfilled[mm.KPI] = true
		}
		cmd := exec.CommandContext(ctx, cw.Options.Binary, "collect", c.Name, "--config.file="+cw.Options.ConfigFile,
			"--from="+from.Format(time.DateOnly), "--to="+to.Format(time.DateOnly))
		cmd.Env = append(cmd.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("carewatch collect %s --from %s --to %s: %v\n%s", c.Name, from.Format(time.DateOnly), to.Format(time.DateOnly), err, out)
		}
	}
	if len(backfilled) < 4 {
		t.Fatalf("only %d KPIs backfilled", len(backfilled))
	}

	// Started again, with collectors that do not run, it serves what the
	// store holds.
	again := e2e.StartCarewatch(t, e2e.CarewatchOptions{
		Binary: cw.Options.Binary, Addr: cw.Addr, Env: env,
		ConfigFile: e2e.DemoConfig(t, e2e.DemoConfigOptions{Directories: dirs, Idle: true}),
	})
	after := again.Metrics(t)
	sameState(t, "after the restart", before, kpiState(after, cfg))
	var catalogue []string
	for _, m := range after["carewatch_kpi_info"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "kpi" {
				catalogue = append(catalogue, l.GetValue())
			}
		}
	}
	sort.Strings(catalogue)
	if !slices.Equal(catalogue, cfg.Catalogue.Names()) {
		t.Errorf("after the restart /metrics describes the KPIs %v, want the catalogue's %v", catalogue, cfg.Catalogue.Names())
	}
	var retired []string
	if err := st.owner.SelectContext(ctx, &retired, `SELECT name FROM kpis WHERE retired_at IS NOT NULL ORDER BY name`); err != nil {
		t.Fatal(err)
	}
	if len(retired) > 0 {
		t.Errorf("KPIs retired: %v", retired)
	}

	// The history panels, as Grafana sends their queries over each
	// dashboard's own time range with every team chosen, draw each series
	// in each of the 12 months.
	var teams []string
	if err := st.owner.SelectContext(ctx, &teams, `SELECT DISTINCT labels->>'team' FROM kpi_latest WHERE labels ? 'team' ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	panels := 0
	for _, q := range queries(loadDashboards(t)) {
		// Query A draws the values; B draws the thresholds as step lines,
		// with points where they move only.
		if q.dsType != postgresType || q.target.RefID != "A" || !strings.HasSuffix(strings.ToLower(q.panel.Title), "history against its thresholds") {
			continue
		}
		values := map[string][]string{"team": teams}
		if q.dashboard.UID == "carewatch-kpi" {
			// One series of one KPI, over the range a link from a service
			// dashboard's panel would give it.
			values = map[string][]string{"kpi": {"children_sw_caseload_average"}, "service": {"children"}, "team": {"all"},
				"la_code": {""}, "la_name": {""}, "scope": {""}, "source": {""}}
		}
		k := kpiNames(q.target.RawSQL, cfg.Catalogue.Names())
		if q.dashboard.UID != "carewatch-kpi" && (len(k) != 1 || !backfilled[k[0]]) {
			continue
		}
		panels++
		t.Run(q.String(), func(t *testing.T) {
			start, err := relativeTime(q.dashboard.Time.From, now)
			if err != nil {
				t.Fatal(err)
			}
			if q.dashboard.UID == "carewatch-kpi" {
				start = now.AddDate(-1, 0, -7)
			}
			drawn, valued := map[string]map[string]bool{}, map[string]bool{}
			for _, r := range sqlResult(ctx, t, st.reader, q, values, start, now) {
				tm, ok := r["time"].(time.Time)
				if !ok {
					t.Fatalf("a row's time is %T", r["time"])
				}
				metric := fmt.Sprint(r["metric"])
				if drawn[metric] == nil {
					drawn[metric] = map[string]bool{}
				}
				day := tm.In(cfg.Location).Format(time.DateOnly)
				drawn[metric][day] = true
				if r["value"] != nil {
					valued[day] = true
				}
			}
			if len(drawn) == 0 {
				t.Fatal("the panel draws nothing")
			}
			// A series with nothing to count in a month (a team holding no
			// cases) has its row there with a missing value, drawn as a gap.
			// A threshold is a step line: a point where its series' values
			// begin and end and one at each change, so it must span the
			// months rather than have a point in each.
			for metric, days := range drawn {
				if strings.HasSuffix(metric, " threshold") {
					first, last := months[len(months)-1], months[0]
					for day := range days {
						first, last = min(first, day), max(last, day)
					}
					if first > months[0] || last < months[len(months)-1] {
						t.Errorf("%s: the line runs from %s to %s, not across the months %s to %s",
							metric, first, last, months[0], months[len(months)-1])
					}
					continue
				}
				var gaps []string
				for _, month := range months {
					if !days[month] {
						gaps = append(gaps, month)
					}
				}
				if len(gaps) > 0 {
					t.Errorf("%s: no row for the month ends %v", metric, gaps)
				}
			}
			for _, month := range months {
				if !valued[month] {
					t.Errorf("no series has a value for %s", month)
				}
			}
		})
	}
	if panels < len(backfilled) {
		t.Errorf("%d history panels for %d backfilled KPIs", panels, len(backfilled))
	}
}
