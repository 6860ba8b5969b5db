// Package dashboards_test checks the Grafana dashboards and their
// provisioning without Grafana: every dashboard is read as Grafana reads
// it, every Prometheus query is parsed by Prometheus's own PromQL parser
// and checked against the metrics carewatch exports, and every SQL query is
// planned by PostgreSQL on the store's schema as the read-only role Grafana
// logs in as.
package dashboards_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/exporter"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// demoConfig is the demo council's configuration: the KPIs the dashboards
// show.
const demoConfig = "../examples/demo/carewatch.yml"

// wantDashboards are the dashboards and their uids. The uids are part of
// carewatch's interface: alert notifications, the other dashboards' links
// and the README link to them. There is one service dashboard per service
// of the demo's catalogue.
var wantDashboards = map[string]string{
	"overview.json":         "carewatch-overview",
	"kpi.json":              "carewatch-kpi",
	"service-children.json": "carewatch-children",
	"service-adults.json":   "carewatch-adults",
	"benchmarking.json":     "carewatch-benchmarking",
	"collector-health.json": "carewatch-collector-health",
}

// schemaVersion is the dashboard schema of Grafana 12, the version the
// Compose stack runs; Grafana migrates older dashboards on load but never
// newer ones, so the files say exactly what they were written for.
const schemaVersion = 42

// benchmarkKPIs are the national statistics the benchmarking dashboard
// shows, as the DfE benchmarking example (examples/dfe/benchmarking.yml)
// exports them: one series per authority (la_code, la_name) and scope
// (council, stat_neighbour, region, england). DfE's own method differs
// from a team caseload's, hence names of their own. A test checks the
// example still defines exactly these.
var benchmarkKPIs = map[string][]string{
	"children_sw_dfe_vacancy_ratio":    {"la_code", "la_name", "scope"},
	"children_sw_dfe_agency_ratio":     {"la_code", "la_name", "scope"},
	"children_sw_dfe_turnover_ratio":   {"la_code", "la_name", "scope"},
	"children_sw_dfe_caseload_average": {"la_code", "la_name", "scope"},
	"children_sw_dfe_absence_ratio":    {"la_code", "la_name", "scope"},
}

func TestBenchmarkKPIsAreTheOnesTheDfEExampleExports(t *testing.T) {
	cfg, err := config.Load("../examples/dfe/benchmarking.yml")
	if err != nil {
		t.Fatalf("loading the DfE example: %v", err)
	}
	for name, labels := range benchmarkKPIs {
		k := cfg.Catalogue[name]
		if k == nil {
			t.Errorf("the DfE example defines no KPI %s", name)
			continue
		}
		if !slices.Equal(k.Labels, labels) {
			t.Errorf("%s: labels %v in the DfE example, the dashboard uses %v", name, k.Labels, labels)
		}
	}
}

func TestDashboardsAreTheExpectedOnes(t *testing.T) {
	files := dashboardFiles(t)
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	for want := range wantDashboards {
		if !slices.Contains(names, want) {
			t.Errorf("dashboard %s is missing", want)
		}
	}
	for _, n := range names {
		if _, ok := wantDashboards[n]; !ok {
			t.Errorf("%s is not a known dashboard: add it to wantDashboards (and give it a carewatch- uid)", n)
		}
	}
}

func TestDashboardsAreWellFormed(t *testing.T) {
	uids := map[string]string{}
	for _, file := range dashboardFiles(t) {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(data) {
				t.Fatal("not valid JSON")
			}
			var raw map[string]any
			if err := json.Unmarshal(data, &raw); err != nil {
				t.Fatal(err)
			}
			if _, ok := raw["id"]; ok && raw["id"] != nil {
				t.Error(`"id" is set: a provisioned dashboard must not carry a database id`)
			}
			d := loadDashboard(t, file)
			if want := wantDashboards[filepath.Base(file)]; want != "" && d.UID != want {
				t.Errorf("uid %q, want %q: links to it would break", d.UID, want)
			}
			if other, dup := uids[d.UID]; dup {
				t.Errorf("uid %s is also %s's", d.UID, other)
			}
			uids[d.UID] = file
			if d.Title == "" {
				t.Error("no title")
			}
			if d.SchemaVersion != schemaVersion {
				t.Errorf("schemaVersion %d, want %d", d.SchemaVersion, schemaVersion)
			}
			if !d.Editable {
				t.Error("not editable: officers must be able to adapt a copy")
			}
			seen := map[int]bool{}
			for _, id := range d.allIDs() {
				if id <= 0 {
					t.Errorf("panel id %d: ids are positive", id)
				}
				if seen[id] {
					t.Errorf("panel id %d is used twice", id)
				}
				seen[id] = true
			}
			for _, p := range d.allPanels() {
				if p.Title == "" {
					t.Errorf("panel %d has no title", p.ID)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %d %q has no query", p.ID, p.Title)
				}
				var desc struct {
					Description string `json:"description"`
				}
				if err := json.Unmarshal(p.raw, &desc); err != nil || desc.Description == "" {
					t.Errorf("panel %d %q has no description: say what the number is", p.ID, p.Title)
				}
			}
		})
	}
}

// Every query names its datasource through a datasource variable of the
// dashboard (${prometheus}, ${store}), never a fixed uid, so that the
// dashboards import into a council's own Grafana; the variables default to
// the provisioned datasources, which must exist with the right types.
func TestEveryDatasourceReferenceIsAVariableOfAProvisionedType(t *testing.T) {
	provisioned := provisionedDatasources(t)
	for _, want := range []string{prometheusType, postgresType} {
		if !slices.Contains(mapValues(provisioned), want) {
			t.Errorf("no %s datasource is provisioned", want)
		}
	}
	for _, d := range loadDashboards(t) {
		t.Run(d.file, func(t *testing.T) {
			check := func(t *testing.T, where string, ref *dsRef) {
				t.Helper()
				if ref == nil {
					t.Errorf("%s: no datasource: Grafana would use whatever is the default", where)
					return
				}
				name, ok := strings.CutPrefix(ref.UID, "${")
				name, ok2 := strings.CutSuffix(name, "}")
				if !ok || !ok2 {
					t.Errorf("%s: datasource uid %q is fixed: use a datasource variable", where, ref.UID)
					return
				}
				v := d.variable(name)
				if v == nil || v.Type != "datasource" {
					t.Errorf("%s: ${%s} is not a datasource variable of the dashboard", where, name)
					return
				}
				if v.Query.Query != ref.Type {
					t.Errorf("%s: ${%s} picks %s datasources, the reference says %s", where, name, v.Query.Query, ref.Type)
				}
				if typ, ok := provisioned[v.Current.Value]; !ok || typ != ref.Type {
					t.Errorf("%s: ${%s} defaults to %q, not a provisioned %s datasource", where, name, v.Current.Value, ref.Type)
				}
			}
			for _, p := range d.allPanels() {
				check(t, fmt.Sprintf("panel %d %q", p.ID, p.Title), p.Datasource)
				for _, tg := range p.Targets {
					check(t, fmt.Sprintf("panel %d %q query %s", p.ID, p.Title, tg.RefID), tg.Datasource)
					if tg.Datasource != nil && p.Datasource != nil && tg.Datasource.UID != p.Datasource.UID {
						t.Errorf("panel %d %q mixes datasources", p.ID, p.Title)
					}
				}
			}
			for _, v := range d.Templating.List {
				if v.Type == "query" {
					check(t, "variable "+v.Name, v.Datasource)
				}
			}
		})
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func loadDemoConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(demoConfig)
	if err != nil {
		t.Fatalf("loading the demo configuration: %v", err)
	}
	return cfg
}

// knownMetrics returns, for every metric the dashboards may query, the
// label names its series carry.
func knownMetrics(t *testing.T) map[string][]string {
	t.Helper()
	cfg := loadDemoConfig(t)
	scrape := []string{"job", "instance"}
	known := map[string][]string{}
	var kpiLabels []string
	for _, name := range cfg.Catalogue.Names() {
		k := cfg.Catalogue[name]
		known[k.MetricName()] = append(slices.Clone(k.Labels), scrape...)
		kpiLabels = append(kpiLabels, k.Labels...)
	}
	for name, labels := range benchmarkKPIs {
		m := "carewatch_" + name
		known[m] = append(known[m], labels...)
		if !slices.Contains(known[m], "job") {
			known[m] = append(known[m], scrape...)
		}
		kpiLabels = append(kpiLabels, labels...)
	}
	perSeries := append([]string{"kpi"}, append(kpiLabels, scrape...)...)
	known[exporter.StatusMetric] = perSeries
	known[exporter.ThresholdMetric] = append([]string{"level"}, perSeries...)
	known[exporter.PeriodMetric] = perSeries
	known[exporter.MaxAgeMetric] = append([]string{"kpi"}, scrape...)
	known[exporter.InfoMetric] = append([]string{"kpi", "metric", "unit", "direction", "help"}, scrape...)
	known[exporter.BenchmarkMetric] = perSeries
	for _, m := range []string{
		exporter.CollectorLastRunSuccessMetric, exporter.CollectorLastSuccessTimeMetric,
		exporter.CollectorLastRunTimeMetric, exporter.CollectorLastRunDurationMetric,
		exporter.CollectorRunsMetric, exporter.CollectorFailuresMetric, exporter.CollectorLastRunObservationsMetric,
	} {
		known[m] = append([]string{"collector"}, scrape...)
	}
	known[exporter.BuildInfoMetric] = append([]string{"version", "revision", "branch", "goversion", "goos", "goarch", "tags"}, scrape...)
	known[exporter.ReloadSuccessfulMetric] = scrape
	known["carewatch_store_up"] = scrape
	known["up"] = scrape
	return known
}

// allowedNumbers are the only numbers a query may hold: RAG status codes
// (-1 unknown, 0 green, 1 amber, 2 red) and seconds per day. Any other
// number in a query would be a threshold typed into the dashboard, which
// must come from carewatch_kpi_threshold instead.
var allowedNumbers = []float64{-1, 0, 1, 2, 86400}

func TestPrometheusQueriesParseAndUseCarewatchMetrics(t *testing.T) {
	known := knownMetrics(t)
	p := parser.NewParser(parser.Options{})
	ds := loadDashboards(t)
	n := 0
	for _, q := range queries(ds) {
		if q.dsType != prometheusType {
			continue
		}
		n++
		t.Run(q.String(), func(t *testing.T) {
			if q.target.Expr == "" {
				t.Fatal("no expr")
			}
			for _, v := range plainRefs(q.target.Expr) {
				if dv := q.dashboard.variable(v); dv != nil && dv.Multi && q.panel.Repeat != v {
					t.Errorf("$%s is referred to without a format in a panel not repeated by it: use ${%s:regex}", v, v)
				}
			}
			expr, err := interpolate(q.target.Expr, "promql", plausibleValues)
			if err != nil {
				t.Fatal(err)
			}
			ast, err := p.ParseExpr(expr)
			if err != nil {
				t.Fatalf("PromQL does not parse: %v\n%s", err, expr)
			}
			checkPromQL(t, ast, known)
		})
	}
	if n == 0 {
		t.Fatal("no Prometheus query found")
	}
	for _, d := range ds {
		for _, v := range d.Templating.List {
			if v.Type != "query" || v.Datasource == nil || v.Datasource.Type != prometheusType {
				continue
			}
			t.Run(d.file+" variable "+v.Name, func(t *testing.T) {
				sel, label, err := variablePromQL(v)
				if err != nil {
					t.Fatal(err)
				}
				sel, err = interpolate(sel, "promql", plausibleValues)
				if err != nil {
					t.Fatal(err)
				}
				ast, err := p.ParseExpr(sel)
				if err != nil {
					t.Fatalf("the variable's selector does not parse: %v", err)
				}
				checkPromQL(t, ast, known)
				vs, ok := ast.(*parser.VectorSelector)
				if ok && label != "" && !slices.Contains(known[vs.Name], label) {
					t.Errorf("label_values(..., %s): %s has no label %s", label, vs.Name, label)
				}
				if _, ok := plausibleValues[v.Name]; !ok {
					t.Errorf("variable %s has no plausible values for the tests", v.Name)
				}
			})
		}
	}
}

// checkPromQL checks an expression's selectors against the metrics
// carewatch exports, and that it holds no number but allowedNumbers.
func checkPromQL(t *testing.T, ast parser.Expr, known map[string][]string) {
	t.Helper()
	parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			labels, ok := known[n.Name]
			if !ok {
				t.Errorf("metric %q is not one carewatch exports", n.Name)
				return nil
			}
			for _, m := range n.LabelMatchers {
				if m.Name == "__name__" {
					continue
				}
				if !slices.Contains(labels, m.Name) {
					t.Errorf("%s has no label %q", n.Name, m.Name)
				}
				if m.Name == "kpi" && m.Type.String() == "=" {
					if _, ok := known["carewatch_"+m.Value]; !ok {
						t.Errorf(`kpi="%s" is not a KPI of the catalogue`, m.Value)
					}
				}
			}
		case *parser.NumberLiteral:
			if !slices.Contains(allowedNumbers, n.Val) && !math.IsInf(n.Val, 0) {
				t.Errorf("the number %v is typed into the query: thresholds come from carewatch_kpi_threshold", n.Val)
			}
		}
		return nil
	})
}

// plainRefs returns the multi-value-capable variables s refers to without
// a format ($team, ${team}, [[team]]).
func plainRefs(s string) []string {
	var out []string
	for _, sm := range varRef.FindAllStringSubmatch(s, -1) {
		name := sm[1]
		if name == "" {
			name = sm[3]
		}
		if name == "" {
			name = sm[4]
		}
		if sm[2] == "" && !strings.HasPrefix(name, "__") {
			out = append(out, name)
		}
	}
	return out
}

// kpiNames returns the KPIs a query names: as a metric or as kpi="...".
func kpiNames(s string, catalogue []string) []string {
	var out []string
	for _, k := range catalogue {
		if regexp.MustCompile(`carewatch_` + k + `\b|'` + k + `'|"` + k + `"`).MatchString(s) {
			out = append(out, k)
		}
	}
	return out
}

func catalogueNames(t *testing.T) []string {
	t.Helper()
	names := loadDemoConfig(t).Catalogue.Names()
	for k := range benchmarkKPIs {
		if !slices.Contains(names, k) {
			names = append(names, k)
		}
	}
	return names
}

// TestNoThresholdIsTypedIntoADashboard checks that the colours of panels
// about a KPI come from carewatch (status value mappings, threshold series)
// and not from threshold steps typed into the JSON, which would drift from
// the catalogue the day someone changes carewatch.yml.
func TestNoThresholdIsTypedIntoADashboard(t *testing.T) {
	names := catalogueNames(t)
	for _, d := range loadDashboards(t) {
		for _, p := range d.allPanels() {
			var text string
			for _, tg := range p.Targets {
				text += tg.Expr + "\n" + tg.RawSQL + "\n"
			}
			kpis := kpiNames(text, names)
			if len(kpis) == 0 {
				continue
			}
			t.Run(fmt.Sprintf("%s panel %d %q", d.file, p.ID, p.Title), func(t *testing.T) {
				var steps []float64
				collectThresholdSteps(p.raw, &steps)
				if len(steps) > 0 {
					t.Errorf("panel about %v has threshold steps %v typed in: draw them from carewatch_kpi_threshold", kpis, steps)
				}
			})
		}
	}
}

// collectThresholdSteps finds the values of threshold steps anywhere in a
// panel's JSON (field defaults and overrides alike); the base step (null)
// is not a threshold.
func collectThresholdSteps(raw json.RawMessage, out *[]float64) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if steps, ok := x["steps"].([]any); ok {
				for _, s := range steps {
					if m, ok := s.(map[string]any); ok {
						if f, ok := m["value"].(float64); ok {
							*out = append(*out, f)
						}
					}
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
}

// TestUnitsAreRight checks that ratios are shown as percent and that waits
// kept in seconds are shown in days.
func TestUnitsAreRight(t *testing.T) {
	names := catalogueNames(t)
	p := parser.NewParser(parser.Options{})
	for _, d := range loadDashboards(t) {
		for _, pn := range d.allPanels() {
			panelJSON := string(pn.raw)
			for _, tg := range pn.Targets {
				text := tg.Expr + tg.RawSQL
				for _, k := range kpiNames(text, names) {
					t.Run(fmt.Sprintf("%s panel %d %q shows %s in its unit", d.file, pn.ID, pn.Title, k), func(t *testing.T) {
						switch {
						case strings.HasSuffix(k, "_ratio"):
							if onlyStatus(t, p, tg.Expr, k) {
								return
							}
							// Either Grafana shows it as percent, or a table's SQL
							// writes it out as percent itself.
							asPercent := tg.RawSQL != "" && regexp.MustCompile(`\b100\b`).MatchString(tg.RawSQL) && strings.Contains(tg.RawSQL, "'%'")
							if !strings.Contains(panelJSON, `"percentunit"`) && !asPercent {
								t.Errorf("%s is a ratio: show it with the unit percentunit", k)
							}
						case strings.HasSuffix(k, "_seconds"):
							if onlyStatus(t, p, tg.Expr, k) {
								return
							}
							if !strings.Contains(text, "86400") || !strings.Contains(panelJSON, `"suffix: days"`) {
								t.Errorf("%s is in seconds: divide it by 86400 and show it in days", k)
							}
							if tg.Expr != "" {
								checkDividedByDay(t, p, tg.Expr, k)
							}
						}
					})
				}
			}
		}
	}
}

// onlyStatus reports whether a PromQL query uses KPI k only through
// carewatch_kpi_status, whose values are status codes, not the KPI's unit.
func onlyStatus(t *testing.T, p parser.Parser, expr, k string) bool {
	t.Helper()
	if expr == "" {
		return false
	}
	e, err := interpolate(expr, "promql", plausibleValues)
	if err != nil {
		return false
	}
	ast, err := p.ParseExpr(e)
	if err != nil {
		return false
	}
	status := true
	parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok && vs.Name != exporter.StatusMetric {
			if vs.Name == "carewatch_"+k {
				status = false
			}
			for _, m := range vs.LabelMatchers {
				if m.Name == "kpi" && m.Value == k {
					status = false
				}
			}
		}
		return nil
	})
	return status
}

// checkDividedByDay checks that every selector of the value or thresholds
// of KPI k sits under a division by 86400.
func checkDividedByDay(t *testing.T, p parser.Parser, expr, k string) {
	t.Helper()
	e, err := interpolate(expr, "promql", plausibleValues)
	if err != nil {
		t.Fatal(err)
	}
	ast, err := p.ParseExpr(e)
	if err != nil {
		t.Fatal(err)
	}
	parser.Inspect(ast, func(node parser.Node, path []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok || vs.Name == exporter.StatusMetric {
			return nil
		}
		about := vs.Name == "carewatch_"+k
		for _, m := range vs.LabelMatchers {
			about = about || (m.Name == "kpi" && m.Value == k)
		}
		if !about {
			return nil
		}
		for i := len(path) - 1; i >= 0; i-- {
			if b, ok := path[i].(*parser.BinaryExpr); ok && b.Op == parser.DIV {
				if n, ok := b.RHS.(*parser.NumberLiteral); ok && n.Val == 86400 {
					return nil
				}
			}
		}
		t.Errorf("%s is not divided by 86400", vs)
		return nil
	})
}
