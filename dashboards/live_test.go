package dashboards_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/prometheus/common/model"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/e2e"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

// demoDays is how many reporting days the live test collects, so that the
// history panels have more than one period to draw.
const demoDays = 3

// points is how many points a range query of a panel asks for, as a
// panel of about Grafana's width would.
const points = 500

// TestEveryPanelShowsDataForTheDemoCouncil runs the whole chain on the
// demo council (the carewatch binary collecting from the demo source into
// a store, Debian's Prometheus scraping it) and sends every query of every
// panel as Grafana would with every template variable on "All": each
// variable must offer values, each Prometheus query must return at least
// one series and each SQL query, run as the read-only role Grafana logs in
// as, at least one row.
//
// The benchmarking panels show national statistics that the demo council
// does not collect yet: while no series carries a scope label, their
// queries must run without error, and must return data once one does.
func TestEveryPanelShowsDataForTheDemoCouncil(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	cfg := loadDemoConfig(t)
	today := demoToday(cfg)
	first := today.AddDate(0, 0, 1-demoDays)
	st, sourceDSN, source := demoCouncil(ctx, t, first)

	// The council's statutory returns (Annex A, SSDA903, CLD), as the demo
	// writes them, for the collectors that read them.
	cw := e2e.StartCarewatch(t, e2e.CarewatchOptions{
		ConfigFile: e2e.DemoConfig(t, e2e.DemoConfigOptions{Every: 2 * time.Second, Directories: demoReturns(ctx, t, source)}),
		Env:        []string{e2e.StoreDSNEnv + "=" + st.dsn, e2e.SourceDSNEnv + "=" + sourceDSN},
	})
	prom := e2e.StartPrometheus(t, e2e.PrometheusOptions{Targets: []string{cw.Addr}, Interval: time.Second})

	// Collect demoDays reporting days: each day, wait until every collector
	// of the council's warehouse has stored it, then move the council on.
	// (The national statistics describe 30 September, not the reporting day.)
	var warehouse []string
	for _, c := range cfg.Collectors {
		if cfg.SourceByName(c.Source).Type == config.SourcePostgres {
			warehouse = append(warehouse, c.Name)
		}
	}
	collectors := len(warehouse)
	for day := range demoDays {
		period := first.AddDate(0, 0, day)
		e2e.Eventually(t, fmt.Sprintf("every warehouse collector storing %s", period.Format(time.DateOnly)), 2*time.Minute, func() (bool, string) {
			var n int
			err := st.owner.GetContext(ctx, &n, `SELECT count(DISTINCT collector) FROM kpi_observations WHERE period = $1 AND collector = ANY($2)`, period, pq.Array(warehouse))
			return err == nil && n == collectors, fmt.Sprintf("%d of %d collectors (%v)", n, collectors, err)
		})
		if day < demoDays-1 {
			if err := demo.Advance(ctx, source, 1); err != nil {
				t.Fatalf("demo.Advance: %v", err)
			}
		}
	}
	// Every other collector (the national statistics, the returns) has
	// stored its periods too.
	e2e.Eventually(t, "every collector storing its observations", 2*time.Minute, func() (bool, string) {
		var n int
		err := st.owner.GetContext(ctx, &n, `SELECT count(DISTINCT collector) FROM kpi_observations`)
		return err == nil && n == len(cfg.Collectors), fmt.Sprintf("%d of %d collectors (%v)", n, len(cfg.Collectors), err)
	})
	// Prometheus has the last day, and enough scrapes for rates.
	prom.WaitForVector(t, "Prometheus seeing the last reporting day", fmt.Sprintf(`min(carewatch_kpi_period_timestamp_seconds{scope="", source=""}) >= %d`, today.Unix()),
		time.Minute, func(v model.Vector) bool { return len(v) > 0 })
	prom.WaitForVector(t, "20 scrapes of carewatch", `count_over_time(up{job="carewatch"}[1m]) >= 20`,
		time.Minute, func(v model.Vector) bool { return len(v) > 0 })

	benchmarks := len(prom.Vector(t, `count({__name__=~"carewatch_.+", scope!=""})`)) > 0
	var stored int
	if err := st.owner.GetContext(ctx, &stored, `SELECT count(*) FROM kpi_observations WHERE labels ? 'scope'`); err != nil {
		t.Fatal(err)
	}
	if !benchmarks {
		t.Log("no series carries a scope label yet: the benchmarking panels are only checked to run")
	}

	now := time.Now()
	for _, d := range loadDashboards(t) {
		t.Run(d.file, func(t *testing.T) {
			values := resolveVariables(t, prom, d)
			from, err := relativeTime(d.Time.From, now)
			if err != nil {
				t.Fatalf("time.from: %v", err)
			}
			// Every panel is queried over the dashboard's own time range, at
			// Grafana's step for it; the last step is now.
			step := max(time.Second, (now.Sub(from) / points).Round(time.Second))
			from = now.Add(-points * step)
			values["__range"] = []string{model.Duration(now.Sub(from)).String()}
			values["__range_s"] = []string{strconv.Itoa(int(now.Sub(from).Seconds()))}
			values["__interval"] = []string{model.Duration(step).String()}
			values["__rate_interval"] = []string{model.Duration(max(4*time.Second, step+time.Second)).String()}
			for _, q := range queries([]*dashboard{d}) {
				for _, vals := range repeats(q, values) {
					name := q.String()
					if q.panel.Repeat != "" {
						name += " for " + q.panel.Repeat + "=" + vals[q.panel.Repeat][0]
					}
					t.Run(name, func(t *testing.T) {
						text := q.target.Expr + q.target.RawSQL
						mayBeEmpty := strings.Contains(text, "scope") && !(benchmarks || stored > 0)
						var rows int
						switch q.dsType {
						case prometheusType:
							rows = promRows(t, prom, q, vals, from, now, step)
						case postgresType:
							rows = sqlRows(ctx, t, st.reader, q, vals, from, now)
						default:
							t.Fatalf("datasource type %q", q.dsType)
						}
						if rows == 0 && !mayBeEmpty {
							t.Error("no data for the demo council")
						}
					})
				}
			}
		})
	}
}

// demoToday is today's date as the demo configuration's periods are:
// midnight in its time zone.
func demoToday(cfg *config.Config) time.Time {
	y, m, d := time.Now().In(cfg.Location).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, cfg.Location)
}

// demoCouncil returns an empty store with Grafana's reader role, and the
// demo council's source (its DSN and a connection), set up with day as
// its reporting date.
func demoCouncil(ctx context.Context, t *testing.T, day time.Time) (*storeWithReader, string, *sqlx.DB) {
	t.Helper()
	st := newStoreWithReader(t)
	sourceDSN := pgtest.NewDatabase(t)
	source, err := sqlx.Open("postgres", sourceDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { source.Close() })
	if err := demo.Setup(ctx, source, demo.Options{Seed: 2026, Today: day}); err != nil {
		t.Fatalf("demo.Setup: %v", err)
	}
	return st, sourceDSN, source
}

// resolveVariables gives each query variable of d the values Grafana would
// offer (with "All" selected), asking Prometheus in the variables' order
// so that a variable may depend on the ones before it.
func resolveVariables(t *testing.T, prom *e2e.Prometheus, d *dashboard) map[string][]string {
	t.Helper()
	values := map[string][]string{}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		sel, label, err := variablePromQL(v)
		if err != nil {
			t.Fatal(err)
		}
		if label == "" {
			t.Fatalf("variable %s: only label_values(selector, label) is resolved here", v.Name)
		}
		sel, err = interpolate(sel, "promql", values)
		if err != nil {
			t.Fatalf("variable %s: %v", v.Name, err)
		}
		var re *regexp.Regexp
		if v.Regex != "" {
			re = regexp.MustCompile(strings.TrimSuffix(strings.TrimPrefix(v.Regex, "/"), "/"))
		}
		var got []string
		for _, s := range prom.Vector(t, fmt.Sprintf("group by (%s) (%s)", label, sel)) {
			val := string(s.Metric[model.LabelName(label)])
			if re != nil {
				m := re.FindStringSubmatch(val)
				if m == nil {
					continue
				}
				val = m[len(m)-1]
			}
			if val != "" && !slices.Contains(got, val) {
				got = append(got, val)
			}
		}
		sort.Strings(got)
		if !v.Multi && !v.IncludeAll {
			// A single value: Grafana picks the first, and a variable with
			// no value (a label the chosen KPI does not have) is empty.
			if len(got) == 0 {
				got = []string{""}
			}
			got = got[:1]
		}
		if len(got) == 0 {
			t.Fatalf("variable %s offers no value (%s)", v.Name, sel)
		}
		values[v.Name] = got
	}
	return values
}

// repeats returns the variable values each copy of q's panel gets: one
// copy per value of the variable the panel repeats by, else the panel once.
func repeats(q query, values map[string][]string) []map[string][]string {
	if q.panel.Repeat == "" {
		return []map[string][]string{values}
	}
	var out []map[string][]string
	for _, v := range values[q.panel.Repeat] {
		c := map[string][]string{}
		for k, vs := range values {
			c[k] = vs
		}
		c[q.panel.Repeat] = []string{v}
		out = append(out, c)
	}
	return out
}

// promRows sends a Prometheus query as Grafana's panel would (an instant
// query, or a range query over [from, now] at step) and returns how many series came
// back.
func promRows(t *testing.T, prom *e2e.Prometheus, q query, values map[string][]string, from, now time.Time, step time.Duration) int {
	t.Helper()
	expr, err := interpolate(q.target.Expr, "promql", values)
	if err != nil {
		t.Fatal(err)
	}
	if q.target.Instant && !q.target.Range {
		v, err := prom.Query(context.Background(), expr)
		if err != nil {
			t.Fatalf("%v\n%s", err, expr)
		}
		switch x := v.(type) {
		case model.Vector:
			return len(x)
		case *model.Scalar, *model.String:
			return 1
		default:
			t.Fatalf("%s: result %s", expr, v.Type())
		}
	}
	m, err := prom.QueryRange(context.Background(), expr, from, now, step)
	if err != nil {
		t.Fatalf("%v\n%s", err, expr)
	}
	return len(m)
}

// sqlRows runs a SQL query as the Grafana role for [from, to] and returns
// how many rows came back.
func sqlRows(ctx context.Context, t *testing.T, db *sqlx.DB, q query, values map[string][]string, from, to time.Time) int {
	t.Helper()
	return len(sqlResult(ctx, t, db, q, values, from, to))
}

// sqlResult runs a SQL query as the Grafana role for [from, to], as
// Grafana sends it, and returns its rows by column name.
func sqlResult(ctx context.Context, t *testing.T, db *sqlx.DB, q query, values map[string][]string, from, to time.Time) []map[string]any {
	t.Helper()
	s, err := interpolate(q.target.RawSQL, "sql", values)
	if err != nil {
		t.Fatal(err)
	}
	s, err = expandSQLMacros(s, from, to)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryxContext(ctx, s)
	if err != nil {
		t.Fatalf("%v\n%s", err, s)
	}
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		r := map[string]any{}
		if err := rows.MapScan(r); err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%v\n%s", err, s)
	}
	return out
}

// relativeTime resolves a Grafana time such as now-24h or now-1y.
func relativeTime(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	m := regexp.MustCompile(`^now-(\d+)([smhdwMy])$`).FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, fmt.Errorf("%q is not now-<n><unit>", s)
	}
	n, _ := strconv.Atoi(m[1])
	switch m[2] {
	case "s":
		return now.Add(-time.Duration(n) * time.Second), nil
	case "m":
		return now.Add(-time.Duration(n) * time.Minute), nil
	case "h":
		return now.Add(-time.Duration(n) * time.Hour), nil
	case "d":
		return now.AddDate(0, 0, -n), nil
	case "w":
		return now.AddDate(0, 0, -7*n), nil
	case "M":
		return now.AddDate(0, -n, 0), nil
	default:
		return now.AddDate(-n, 0, 0), nil
	}
}
