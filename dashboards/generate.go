// Package dashboards generates carewatch's Grafana dashboards from a KPI
// catalogue, with Grafana's Foundation SDK: the Overview, a dashboard per
// service, the KPI detail dashboard, Benchmarking and Collector health.
// The JSON files beside this file are its output for the demo council
// (go generate ./dashboards); a council generates its own with
//
//	go run ./dashboards/generate -config carewatch.yml -out DIR
package dashboards

//go:generate go run ./generate -config ../examples/demo/carewatch.yml -out .

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/carewatch/carewatch/kpi"
)

// Datasource variables: every query names its datasource through them, so
// that the dashboards import into a council's own Grafana, whatever its
// datasources' uids.
const (
	PrometheusType = "prometheus"
	prometheusVar  = "prometheus"
	storeVar       = "store"
	// The uids the Compose stack provisions, the variables' defaults.
	prometheusUID = "carewatch-prometheus"
	storeUID      = "carewatch-postgres"
)

// Uids of the dashboards that do not depend on the catalogue; a service's
// is ServiceUID(service).
const (
	OverviewUID  = "carewatch-overview"
	KPIUID       = "carewatch-kpi"
	HealthUID    = "carewatch-collector-health"
	BenchmarkUID = "carewatch-benchmarking"
)

// ServiceUID is the uid of a service's dashboard.
func ServiceUID(service string) string { return "carewatch-" + service }

// File is a generated dashboard: its file name and its JSON.
type File struct {
	Name string
	JSON []byte
}

// Options shape the dashboards beyond the catalogue.
type Options struct {
	// Timezone is the time zone the dashboards show times in: the
	// council's (global.timezone), so that everyone reads its dates and
	// hours; "browser" (each viewer's own) if empty.
	Timezone string
}

// Generate returns the dashboards for catalogue cat, in file name order.
func Generate(cat kpi.Catalogue, o Options) ([]File, error) {
	if o.Timezone == "" {
		o.Timezone = "browser"
	}
	c := newCatalogue(cat)
	c.timezone = o.Timezone
	var out []File
	add := func(name string, b *dashboard.DashboardBuilder) error {
		d, err := b.Build()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := setPanelDatasources(&d); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		// Not HTML-escaped: the SQL's -> and < stay readable in the files.
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		// The SDK's own marshalling of nested parts escapes them anyway:
		// undo it, which JSON allows (they are plain characters in a string).
		data := buf.Bytes()
		for _, r := range [][2]string{{`\u003c`, "<"}, {`\u003e`, ">"}, {`\u0026`, "&"}} {
			data = bytes.ReplaceAll(data, []byte(r[0]), []byte(r[1]))
		}
		out = append(out, File{Name: name, JSON: data})
		return nil
	}
	if err := add("overview.json", overview(c)); err != nil {
		return nil, err
	}
	if err := add("kpi.json", kpiDetail(c)); err != nil {
		return nil, err
	}
	if err := add("collector-health.json", collectorHealth(c)); err != nil {
		return nil, err
	}
	if len(c.benchmarks) > 0 {
		if err := add("benchmarking.json", benchmarking(c)); err != nil {
			return nil, err
		}
	}
	for _, s := range c.services {
		if err := add("service-"+s+".json", service(c, s)); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// setPanelDatasources gives every panel its queries' datasource, which
// Grafana shows in the panel editor and uses for queries that name none.
func setPanelDatasources(d *dashboard.Dashboard) error {
	for _, p := range d.Panels {
		if p.Panel == nil || p.Panel.Datasource != nil || len(p.Panel.Targets) == 0 {
			continue
		}
		b, err := json.Marshal(p.Panel.Targets[0])
		if err != nil {
			return err
		}
		var t struct {
			Datasource *common.DataSourceRef `json:"datasource"`
		}
		if err := json.Unmarshal(b, &t); err != nil {
			return err
		}
		p.Panel.Datasource = t.Datasource
	}
	return nil
}

// catalogue is the catalogue as the dashboards see it: the council's own
// KPIs by service, the benchmark KPIs, and every label name.
type catalogue struct {
	timezone   string
	all        []*kpi.KPI
	services   []string
	byService  map[string][]*kpi.KPI
	benchmarks []*kpi.KPI
	labels     []string
}

func newCatalogue(cat kpi.Catalogue) *catalogue {
	c := &catalogue{byService: map[string][]*kpi.KPI{}}
	for _, name := range cat.Names() {
		k := cat[name]
		c.all = append(c.all, k)
		for _, l := range k.Labels {
			if !slices.Contains(c.labels, l) {
				c.labels = append(c.labels, l)
			}
		}
		if len(k.OwnSeries) > 0 {
			c.benchmarks = append(c.benchmarks, k)
			continue
		}
		s := ServiceOf(k.Name)
		if _, ok := c.byService[s]; !ok {
			c.services = append(c.services, s)
		}
		c.byService[s] = append(c.byService[s], k)
	}
	sort.Strings(c.labels)
	sort.Strings(c.services)
	return c
}

// ServiceOf is the service a KPI belongs to: the first word of its name
// (children_..., adults_...), as the alert rules say.
func ServiceOf(name string) string {
	s, _, _ := strings.Cut(name, "_")
	return s
}

// CadenceDays is how many days a chart of a KPI shows, from how fresh its
// data must be: twenty periods of data, at least two weeks and at most five
// years (days for daily data, years for annual); 90 days when the catalogue
// does not say. The alert rules build their links the same way.
func CadenceDays(maxAge time.Duration) int {
	if maxAge <= 0 {
		return 90
	}
	d := int((20 * maxAge).Hours() / 24)
	return min(max(d, 14), 1826)
}

// cadenceRange is the time range of a dashboard of these KPIs: the longest
// cadence among them.
func cadenceRange(ks []*kpi.KPI) string {
	days := 14
	for _, k := range ks {
		days = max(days, CadenceDays(k.MaxAge))
	}
	return fmt.Sprintf("now-%dd", days)
}

// title is a KPI's title: its help text up to the first bracket or full
// stop, as the alerts say it.
func title(k *kpi.KPI) string {
	t := k.Help
	if i := strings.IndexAny(t, "(."); i > 0 {
		t = t[:i]
	}
	t = strings.TrimSpace(t)
	if t == "" {
		return k.Name
	}
	return t
}

// unit is how Grafana shows a KPI's values: ratios as percent, seconds as
// days (the queries divide by 86400), anything else as a number with the
// unit's name.
func unit(k *kpi.KPI) string {
	switch k.Unit {
	case "ratio":
		return "percentunit"
	case "seconds":
		return "suffix: days"
	case "":
		return "none"
	default:
		return "suffix: " + k.Unit
	}
}

// scaled is a PromQL or SQL value expression of k in the unit unit(k) shows.
func scaled(k *kpi.KPI, expr string) string {
	if k.Unit == "seconds" {
		return expr + " / 86400"
	}
	return expr
}

func ptr[T any](v T) *T { return &v }

func promDatasource() common.DataSourceRef {
	return common.DataSourceRef{Type: ptr(PrometheusType), Uid: ptr("${" + prometheusVar + "}")}
}

func storeDatasource() common.DataSourceRef {
	return common.DataSourceRef{Type: ptr(PostgresType), Uid: ptr("${" + storeVar + "}")}
}

// datasourceVariables are the two datasource variables every dashboard
// starts with, defaulting to the Compose stack's datasources.
func datasourceVariables(d *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return d.
		WithVariable(dashboard.NewDatasourceVariableBuilder(prometheusVar).Label("Prometheus").Type(PrometheusType).
			Current(dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: ptr("Prometheus")}, Value: dashboard.StringOrArrayOfString{String: ptr(prometheusUID)}})).
		WithVariable(dashboard.NewDatasourceVariableBuilder(storeVar).Label("Store").Type(PostgresType).
			Current(dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: ptr("carewatch store")}, Value: dashboard.StringOrArrayOfString{String: ptr(storeUID)}}))
}

// newDashboard starts a dashboard with carewatch's common settings: the
// datasource variables, the links to the other dashboards (which carry the
// variables and open on their own time ranges) and a time range.
func newDashboard(c *catalogue, uid, name, description, from string) *dashboard.DashboardBuilder {
	d := dashboard.NewDashboardBuilder("carewatch · "+name).
		Uid(uid).
		Description(description).
		Tags([]string{"carewatch"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Timezone(c.timezone).
		Time(from, "now").
		Refresh("1m").
		Link(dashboard.NewDashboardLinkBuilder("carewatch dashboards").Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"carewatch"}).AsDropdown(true).IncludeVars(true).KeepTime(false).Icon("external link"))
	return datasourceVariables(d)
}

// promQuery is an instant or range PromQL query.
type promQuery struct {
	expr, legend string
	instant      bool
	table        bool
}

// ids hands out a dashboard's panel ids.
type ids struct{ n uint32 }

func (i *ids) next() uint32 { i.n++; return i.n }

// Colours, and the status codes of carewatch_kpi_status.
const (
	red     = "red"
	amber   = "orange"
	green   = "green"
	grey    = "#8e8e8e"
	neutral = "text"
)

// statusMapping shows carewatch_kpi_status codes as words in their colours.
func statusMapping() []dashboard.ValueMapping {
	m := func(text, colour string, i int32) dashboard.ValueMappingResult {
		return dashboard.ValueMappingResult{Text: ptr(text), Color: ptr(colour), Index: ptr(i)}
	}
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: map[string]dashboard.ValueMappingResult{
		"2": m("Red", red, 0), "1": m("Amber", amber, 1), "0": m("Green", green, 2), "-1": m("Unknown", grey, 3),
	}}}}
}

// wordMapping shows the store's words for statuses, freshness and runs in
// their colours.
func wordMapping() []dashboard.ValueMapping {
	m := func(text, colour string, i int32) dashboard.ValueMappingResult {
		return dashboard.ValueMappingResult{Text: ptr(text), Color: ptr(colour), Index: ptr(i)}
	}
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: map[string]dashboard.ValueMappingResult{
		"red": m("Red", red, 0), "amber": m("Amber", amber, 1), "green": m("Green", green, 2), "unknown": m("Unknown", grey, 3),
		"not rated": m("Not rated", "transparent", 4), "stale": m("Stale", red, 5), "fresh": m("Fresh", green, 6),
		"success": m("Success", green, 7), "failed": m("Failed", red, 8),
	}}}}
}

// neutralThresholds colours by mappings alone: no number is a threshold.
func neutralThresholds() *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).
		Steps([]dashboard.Threshold{{Color: neutral}})
}

// colouredCells makes a table column show its mapped colour as background.
func colouredCells() dashboard.DynamicConfigValue {
	return dashboard.DynamicConfigValue{Id: "custom.cellOptions", Value: map[string]any{"type": "color-background", "mode": "basic"}}
}

// kpiLink is the URL of the KPI detail dashboard on one series, over the
// KPI's cadence; vars holds var-NAME=VALUE pairs, VALUE already a Grafana
// expression or text.
func kpiLink(kpiExpr string, vars [][2]string, days string) string {
	var b strings.Builder
	b.WriteString("/d/" + KPIUID + "?var-kpi=" + kpiExpr)
	for _, v := range vars {
		b.WriteString("&var-" + v[0] + "=" + v[1])
	}
	b.WriteString("&from=now-" + days + "d&to=now&${" + prometheusVar + ":queryparam}&${" + storeVar + ":queryparam}")
	return b.String()
}

// dataLink is a link on a field's values.
func dataLink(title, url string) map[string]any {
	return map[string]any{"title": title, "url": url, "targetBlank": false}
}

// sqlLabel is a series label in SQL, ” where the series has none.
func sqlLabel(alias, label string) string {
	return fmt.Sprintf("coalesce(%s.labels->>'%s', '')", alias, label)
}

// sqlUnit scales a KPI's stored values to the unit the tables show them in
// (ratios as percent, seconds as days), for a table with rows of many KPIs;
// it needs kpis k.
const sqlUnit = `CROSS JOIN LATERAL (
    SELECT CASE k.unit WHEN 'ratio' THEN 100 WHEN 'seconds' THEN 1.0 / 86400 ELSE 1 END AS scale,
           CASE k.unit WHEN 'ratio' THEN '%' WHEN 'seconds' THEN ' days' ELSE ' ' || k.unit END AS suffix
) u`

// sqlDays is the KPI's cadence in days, as CadenceDays computes it.
const sqlDays = `CASE WHEN k.max_age IS NULL THEN 90
            ELSE least(greatest(floor(extract(epoch FROM k.max_age) * 20 / 86400), 14), 1826)::int END`
