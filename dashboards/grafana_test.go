package dashboards_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// This file reads the dashboards and their provisioning as Grafana would,
// and stands in for Grafana where a query is sent: it substitutes template
// variables and expands the SQL macros, so that the tests can hand every
// query to Prometheus's parser and to PostgreSQL.

// Datasource types, as the provisioning files and the dashboards name them.
const (
	prometheusType = "prometheus"
	postgresType   = "grafana-postgresql-datasource"
)

// dsRef is a datasource reference in a dashboard.
type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string `json:"refId"`
	Datasource *dsRef `json:"datasource"`
	Expr       string `json:"expr"`
	RawSQL     string `json:"rawSql"`
	Format     string `json:"format"`
	Instant    bool   `json:"instant"`
	Range      bool   `json:"range"`
	Hide       bool   `json:"hide"`
}

type panel struct {
	ID         int      `json:"id"`
	Type       string   `json:"type"`
	Title      string   `json:"title"`
	Datasource *dsRef   `json:"datasource"`
	Targets    []target `json:"targets"`
	Repeat     string   `json:"repeat"`
	Panels     []*panel `json:"panels"` // a row's panels
	raw        json.RawMessage
}

func (p *panel) UnmarshalJSON(b []byte) error {
	type plain panel
	if err := json.Unmarshal(b, (*plain)(p)); err != nil {
		return err
	}
	p.raw = append(json.RawMessage(nil), b...)
	return nil
}

type variable struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	Datasource *dsRef   `json:"datasource"`
	Definition string   `json:"definition"`
	Query      varQuery `json:"query"`
	Current    struct {
		Value string `json:"value"`
	} `json:"current"`
	Regex      string `json:"regex"`
	Multi      bool   `json:"multi"`
	IncludeAll bool   `json:"includeAll"`
}

// varQuery is a variable's query: {"query": ...} for a query variable, a
// plugin type for a datasource variable.
type varQuery struct {
	Query string `json:"query"`
}

func (q *varQuery) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &q.Query)
	}
	type plain varQuery
	return json.Unmarshal(b, (*plain)(q))
}

type dashboard struct {
	file          string
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	SchemaVersion int      `json:"schemaVersion"`
	Editable      bool     `json:"editable"`
	Panels        []*panel `json:"panels"`
	Time          struct{ From, To string }
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

// allPanels returns the dashboard's panels, rows' panels included, rows
// themselves excluded.
func (d *dashboard) allPanels() []*panel {
	var out []*panel
	var walk func([]*panel)
	walk = func(ps []*panel) {
		for _, p := range ps {
			if p.Type != "row" {
				out = append(out, p)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// allIDs returns every panel id, rows included.
func (d *dashboard) allIDs() []int {
	var ids []int
	var walk func([]*panel)
	walk = func(ps []*panel) {
		for _, p := range ps {
			ids = append(ids, p.ID)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return ids
}

func (d *dashboard) variable(name string) *variable {
	for i := range d.Templating.List {
		if d.Templating.List[i].Name == name {
			return &d.Templating.List[i]
		}
	}
	return nil
}

// dashboardFiles are the dashboards Grafana's provider loads: every *.json
// of this folder.
func dashboardFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no dashboard in the dashboards folder")
	}
	sort.Strings(files)
	return files
}

func loadDashboard(t testing.TB, file string) *dashboard {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	d := &dashboard{file: file}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return d
}

func loadDashboards(t testing.TB) []*dashboard {
	t.Helper()
	var ds []*dashboard
	for _, f := range dashboardFiles(t) {
		ds = append(ds, loadDashboard(t, f))
	}
	return ds
}

// provisionedDatasources returns the provisioned datasources' types by uid.
func provisionedDatasources(t testing.TB) map[string]string {
	t.Helper()
	files, err := filepath.Glob("provisioning/datasources/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no datasource provisioning file: %v", err)
	}
	out := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Datasources []struct {
				UID  string `yaml:"uid"`
				Type string `yaml:"type"`
			} `yaml:"datasources"`
		}
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, ds := range cfg.Datasources {
			if ds.UID == "" {
				t.Errorf("%s: a datasource without a uid: dashboards could not refer to it", f)
			}
			if _, dup := out[ds.UID]; dup {
				t.Errorf("%s: datasource uid %s provisioned twice", f, ds.UID)
			}
			out[ds.UID] = ds.Type
		}
	}
	return out
}

// query is one query a panel sends, with where it comes from.
type query struct {
	dashboard *dashboard
	panel     *panel
	target    target
	dsType    string
}

func (q query) String() string {
	return fmt.Sprintf("%s panel %d %q query %s", q.dashboard.file, q.panel.ID, q.panel.Title, q.target.RefID)
}

// queries returns every query of every panel of the dashboards.
func queries(ds []*dashboard) []query {
	var out []query
	for _, d := range ds {
		for _, p := range d.allPanels() {
			for _, tg := range p.Targets {
				if tg.Hide {
					continue
				}
				ref := tg.Datasource
				if ref == nil {
					ref = p.Datasource
				}
				typ := ""
				if ref != nil {
					typ = ref.Type
				}
				out = append(out, query{dashboard: d, panel: p, target: tg, dsType: typ})
			}
		}
	}
	return out
}

// plausibleValues are what a performance officer might pick for each
// template variable: several values, one with an apostrophe (the demo
// council has "Children's Front Door"), so that every format is exercised.
var plausibleValues = map[string][]string{
	"service":   {"children", "adults"},
	"kpi":       {"children_sw_caseload_average", "adults_assessment_wait_median_seconds"},
	"team":      {"all", "Children's Front Door", "Adults Long Term East"},
	"collector": {"caseload", "adults_waiting"},
	"la_code":   {"E09000008"},
	"la_name":   {"Croydon"},
	"scope":     {"council", "stat_neighbour"},
	"source":    {"annex_a", "ssda903"},
}

// Grafana's global variables, with values for a dashboard showing the last
// 24 hours at a 30s scrape interval.
var globalValues = map[string]string{
	"__rate_interval": "2m",
	"__interval":      "30s",
	"__interval_ms":   "30000",
	"__range":         "86400s",
	"__range_s":       "86400",
	"__range_ms":      "86400000",
}

// varRef matches $name, ${name}, ${name:format} and [[name]].
var varRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::([a-z]+))?\}|\$([A-Za-z0-9_]+)|\[\[([A-Za-z0-9_]+)\]\]`)

// regexEscape escapes a value as Grafana's Prometheus datasource does for a
// regex: metacharacters get a backslash, itself escaped for the PromQL
// string the regex sits in.
func regexEscape(v string) string {
	var b strings.Builder
	for _, r := range v {
		if strings.ContainsRune(`\$^*{}[]'+?.()|`, r) {
			b.WriteString(`\\`)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// interpolate substitutes template variables in a query the way Grafana
// does for the datasource language ("promql" or "sql"). Values come from
// values (each variable's selection, and any of Grafana's global variables
// to set differently) and globalValues. A plain reference to
// a variable ($team) takes its first value: it is only right in a panel
// repeated by that variable, where Grafana sets one value per copy, and the
// tests check that. It fails on a variable it does not know.
func interpolate(s, lang string, values map[string][]string) (string, error) {
	var err error
	out := varRef.ReplaceAllStringFunc(s, func(m string) string {
		sm := varRef.FindStringSubmatch(m)
		name, format := sm[1], sm[2]
		if name == "" {
			name = sm[3]
		}
		if name == "" {
			name = sm[4]
		}
		if v, ok := values[name]; ok && strings.HasPrefix(name, "__") && len(v) == 1 {
			return v[0]
		}
		if g, ok := globalValues[name]; ok {
			return g
		}
		if strings.HasPrefix(name, "__") && lang == "sql" {
			return m // a SQL macro: expandSQLMacros's business
		}
		vals, ok := values[name]
		if !ok || len(vals) == 0 {
			err = fmt.Errorf("unknown template variable %s", m)
			return m
		}
		switch format {
		case "":
			return vals[0]
		case "regex":
			esc := make([]string, len(vals))
			for i, v := range vals {
				esc[i] = regexEscape(v)
			}
			if len(esc) == 1 {
				return esc[0]
			}
			return "(" + strings.Join(esc, "|") + ")"
		case "sqlstring":
			q := make([]string, len(vals))
			for i, v := range vals {
				q[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
			}
			return strings.Join(q, ",")
		default:
			err = fmt.Errorf("format %q of %s is not one the tests know", format, m)
			return m
		}
	})
	return out, err
}

// macroRef matches Grafana's SQL macros with their arguments.
var macroRef = regexp.MustCompile(`\$__([A-Za-z]+)\(([^()]*)\)`)

// expandSQLMacros expands Grafana's PostgreSQL macros as its datasource
// does for the time range [from, to]. It fails on a macro it does not know,
// so that a query never reaches PostgreSQL with a $__ left in it.
func expandSQLMacros(s string, from, to time.Time) (string, error) {
	lit := func(t time.Time) string { return "'" + t.UTC().Format(time.RFC3339) + "'" }
	var err error
	out := macroRef.ReplaceAllStringFunc(s, func(m string) string {
		sm := macroRef.FindStringSubmatch(m)
		name, args := sm[1], strings.TrimSpace(sm[2])
		switch name {
		case "timeFilter":
			return fmt.Sprintf("%s BETWEEN %s AND %s", args, lit(from), lit(to))
		case "timeFrom":
			return lit(from)
		case "timeTo":
			return lit(to)
		case "unixEpochFilter":
			return fmt.Sprintf("%s >= %d AND %s <= %d", args, from.Unix(), args, to.Unix())
		default:
			err = fmt.Errorf("SQL macro %s is not one the tests expand", m)
			return m
		}
	})
	if err == nil && strings.Contains(out, "$") {
		if m := regexp.MustCompile(`\$[A-Za-z_{]\S*`).FindString(out); m != "" {
			err = fmt.Errorf("%s is left in the query after expansion", m)
		}
	}
	return out, err
}

// varsUsed returns the names of the template variables s refers to.
func varsUsed(s string) []string {
	var names []string
	for _, sm := range varRef.FindAllStringSubmatch(s, -1) {
		for _, n := range []string{sm[1], sm[3], sm[4]} {
			if n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

// variableQuery returns the PromQL inside a query variable's
// label_values(...) or query_result(...), which Grafana sends to
// Prometheus as a series selector or an expression.
var variableFunc = regexp.MustCompile(`^\s*(label_values|query_result)\((.*)\)\s*$`)

func variablePromQL(v variable) (expr string, label string, err error) {
	q := v.Query.Query
	if q == "" {
		q = v.Definition
	}
	m := variableFunc.FindStringSubmatch(q)
	if m == nil {
		return "", "", fmt.Errorf("variable %s: query %q is neither label_values(...) nor query_result(...)", v.Name, q)
	}
	if m[1] == "query_result" {
		return m[2], "", nil
	}
	i := strings.LastIndex(m[2], ",")
	if i < 0 {
		return "", strings.TrimSpace(m[2]), nil
	}
	return strings.TrimSpace(m[2][:i]), strings.TrimSpace(m[2][i+1:]), nil
}

// TestEveryVariableIsUsed fails on a template variable that nothing refers
// to: a drop-down that changes nothing on the page misleads the reader.
func TestEveryVariableIsUsed(t *testing.T) {
	for _, d := range loadDashboards(t) {
		t.Run(d.file, func(t *testing.T) {
			used := map[string]bool{}
			refer := func(s string) {
				for _, n := range varsUsed(s) {
					used[n] = true
				}
			}
			for _, p := range d.allPanels() {
				refer(string(p.raw))
				if p.Repeat != "" {
					used[p.Repeat] = true
				}
			}
			for _, v := range d.Templating.List {
				refer(v.Query.Query)
				refer(v.Definition)
			}
			for _, v := range d.Templating.List {
				if !used[v.Name] {
					t.Errorf("variable %s is offered but no panel or other variable uses it", v.Name)
				}
			}
		})
	}
}
