package dashboards_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/carewatch/carewatch/internal/debian"
)

// overviewSeries is a council as carewatch exports it: its own series of a
// team KPI and of a benchmarked KPI, and two benchmarks of the latter (a
// statistical neighbour and England), every one red, amber, green or
// stale, so that counting a benchmark shows.
var overviewSeries = []struct{ series, values string }{
	{`carewatch_kpi_status{job="carewatch",instance="a:9839",kpi="children_sw_caseload_average",service="children",team="North"}`, "2x10"},
	{`carewatch_kpi_status{job="carewatch",instance="a:9839",kpi="children_sw_caseload_average",service="children",team="South"}`, "0x10"},
	{`carewatch_kpi_status{job="carewatch",instance="a:9839",kpi="children_sw_dfe_caseload_average",la_code="E09000008",la_name="Croydon",scope="council"}`, "1x10"},
	{`carewatch_kpi_status{job="carewatch",instance="a:9839",kpi="children_sw_dfe_caseload_average",la_code="E09000022",la_name="Lambeth",scope="stat_neighbour"}`, "2x10"},
	{`carewatch_kpi_status{job="carewatch",instance="a:9839",kpi="children_sw_dfe_caseload_average",la_code="E92000001",la_name="England",scope="england"}`, "1x10"},
	{`carewatch_kpi_benchmark{job="carewatch",instance="a:9839",kpi="children_sw_dfe_caseload_average",la_code="E09000022",la_name="Lambeth",scope="stat_neighbour"}`, "1x10"},
	{`carewatch_kpi_benchmark{job="carewatch",instance="a:9839",kpi="children_sw_dfe_caseload_average",la_code="E92000001",la_name="England",scope="england"}`, "1x10"},
	// Every period is the epoch: older than either max_age at 10 minutes.
	{`carewatch_kpi_period_timestamp_seconds{job="carewatch",instance="a:9839",kpi="children_sw_caseload_average",service="children",team="North"}`, "0x10"},
	{`carewatch_kpi_period_timestamp_seconds{job="carewatch",instance="a:9839",kpi="children_sw_dfe_caseload_average",la_code="E09000008",la_name="Croydon",scope="council"}`, "0x10"},
	{`carewatch_kpi_period_timestamp_seconds{job="carewatch",instance="a:9839",kpi="children_sw_dfe_caseload_average",la_code="E09000022",la_name="Lambeth",scope="stat_neighbour"}`, "0x10"},
	{`carewatch_kpi_period_timestamp_seconds{job="carewatch",instance="a:9839",kpi="children_sw_dfe_caseload_average",la_code="E92000001",la_name="England",scope="england"}`, "0x10"},
	{`carewatch_kpi_max_age_seconds{job="carewatch",instance="a:9839",kpi="children_sw_caseload_average"}`, "60x10"},
	{`carewatch_kpi_max_age_seconds{job="carewatch",instance="a:9839",kpi="children_sw_dfe_caseload_average"}`, "60x10"},
}

// The Overview's counts and its RAG matrix are about the council's own
// series: Prometheus's engine (promtool test rules) evaluates the queries
// of the generated JSON over series where every benchmark is red, amber
// or stale, and none of them is counted or shown.
func TestTheOverviewCountsOnlyTheCouncilsOwnSeries(t *testing.T) {
	promtool, err := debian.Find("promtool", "prometheus")
	if err != nil {
		t.Fatal(err)
	}
	d := loadDashboard(t, "overview.json")
	values := map[string][]string{
		"service": {"children"},
		"kpi":     {"children_sw_caseload_average", "children_sw_dfe_caseload_average"},
		"team":    {"North", "South"},
	}
	want := map[string][]map[string]any{
		"Red":     {{"labels": "{}", "value": 1}},
		"Amber":   {{"labels": "{}", "value": 1}},
		"Green":   {{"labels": "{}", "value": 1}},
		"Unknown": {{"labels": "{}", "value": 0}},
		"Stale":   {{"labels": "{}", "value": 2}},
		"$service: status by team": {
			{"labels": `{job="carewatch",kpi="children_sw_caseload_average",service="children",team="North"}`, "value": 2},
			{"labels": `{job="carewatch",kpi="children_sw_caseload_average",service="children",team="South"}`, "value": 0},
			{"labels": `{job="carewatch",kpi="children_sw_dfe_caseload_average",la_code="E09000008",la_name="Croydon",scope="council"}`, "value": 1},
		},
	}
	var tests []map[string]any
	for _, p := range d.allPanels() {
		samples, ok := want[p.Title]
		if !ok {
			continue
		}
		delete(want, p.Title)
		if len(p.Targets) != 1 {
			t.Fatalf("panel %q has %d queries", p.Title, len(p.Targets))
		}
		expr, err := interpolate(p.Targets[0].Expr, "promql", values)
		if err != nil {
			t.Fatalf("panel %q: %v", p.Title, err)
		}
		if !strings.Contains(expr, "carewatch_kpi_benchmark") {
			t.Errorf("panel %q does not leave out the series carewatch_kpi_benchmark marks: %s", p.Title, expr)
		}
		tests = append(tests, map[string]any{"expr": expr, "eval_time": "10m", "exp_samples": samples})
	}
	for title := range want {
		t.Errorf("the Overview has no panel %q", title)
	}
	var input []map[string]string
	for _, s := range overviewSeries {
		input = append(input, map[string]string{"series": s.series, "values": s.values})
	}
	b, err := yaml.Marshal(map[string]any{
		"evaluation_interval": "1m",
		"tests":               []map[string]any{{"interval": "1m", "input_series": input, "promql_expr_test": tests}},
	})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "overview.test.yml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(t.Context(), promtool, "test", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}
