package dashboards

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
)

// teamMatch is the PromQL matcher of the team variable. Its empty
// alternative keeps every series without a team label (the service as a
// whole, benchmarks, council-wide KPIs), whatever teams are chosen: "All"
// is all.
const teamMatch = `team=~"${team:regex}|"`

// sqlTeamMatch is the same in SQL, for the series alias a.
func sqlTeamMatch(a string) string {
	return sqlLabel(a, "team") + " IN ('', ${team:sqlstring})"
}

// sqlOwn keeps the council's own series of the KPI k (kpis alias), not its
// benchmarks, for series alias a.
func sqlOwn(a string) string {
	return "(k.own_series IS NULL OR " + a + ".labels @> k.own_series)"
}

// ownOnly keeps, of the series a PromQL expression returns, the council's
// own: a series carewatch marks as a benchmark (carewatch_kpi_benchmark,
// from the KPI's own_series) is left out, as the alert rules leave it out.
// expr's series must keep every label of the KPI's series.
func ownOnly(expr string) string {
	return "(" + expr + ") unless max without (instance) (carewatch_kpi_benchmark)"
}

// overview answers "what needs attention, what changed".
func overview(c *catalogue) *dashboard.DashboardBuilder {
	var id ids
	d := newDashboard(c, OverviewUID, "Overview",
		"What needs attention and what changed: every KPI of the basket with its RAG status, by service and team; what is red or amber now and since when, and what is stale; the status changes in the time range. Statuses and thresholds are carewatch's own, computed from the KPI catalogue. Click a KPI to open its detail.",
		"now-7d")
	d = d.
		WithVariable(dashboard.NewQueryVariableBuilder("service").Label("Service").
			Datasource(promDatasource()).
			Query(dashboard.StringOrMap{Map: map[string]any{"query": "label_values(carewatch_kpi_info, kpi)", "refId": "service"}}).
			Definition("label_values(carewatch_kpi_info, kpi)").
			Regex(`/^([^_]+)_/`).
			Multi(true).IncludeAll(true).Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc)).
		WithVariable(dashboard.NewQueryVariableBuilder("kpi").Label("KPI").
			Datasource(promDatasource()).
			Query(dashboard.StringOrMap{Map: map[string]any{"query": `label_values(carewatch_kpi_info{kpi=~"${service:regex}_.*"}, kpi)`, "refId": "kpi"}}).
			Definition(`label_values(carewatch_kpi_info{kpi=~"${service:regex}_.*"}, kpi)`).
			Multi(true).IncludeAll(true).Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc)).
		WithVariable(dashboard.NewQueryVariableBuilder("team").Label("Team").
			Description("Teams to show. Series without a team (a service as a whole, benchmarks, council-wide KPIs) always show.").
			Datasource(promDatasource()).
			Query(dashboard.StringOrMap{Map: map[string]any{"query": `label_values(carewatch_kpi_period_timestamp_seconds{kpi=~"${kpi:regex}"}, team)`, "refId": "team"}}).
			Definition(`label_values(carewatch_kpi_period_timestamp_seconds{kpi=~"${kpi:regex}"}, team)`).
			Multi(true).IncludeAll(true).Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc))

	// Tiles: neutral at 0, coloured from one series up.
	own := ownOnly(`max without (instance) (carewatch_kpi_status{kpi=~"${kpi:regex}", ` + teamMatch + `})`)
	tile := func(title, desc, expr, colour string) *stat.PanelBuilder {
		return statPanel(id.next(), size{4, 4}, title, desc).
			Targets(promTargets([]promQuery{{expr: expr, legend: title, instant: true}})).
			Unit("none").Decimals(0).
			ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
			Thresholds(dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).
				Steps([]dashboard.Threshold{{Color: neutral}, {Value: ptr(1.0), Color: colour}}))
	}
	d = d.WithRow(row(id.next(), "Now")).
		WithPanel(tile("Red", "The council's own series whose latest value is beyond its red threshold (benchmarks left out).", "count(("+own+") == 2) or vector(0)", red)).
		WithPanel(tile("Amber", "The council's own series whose latest value is beyond its amber threshold but not its red one.", "count(("+own+") == 1) or vector(0)", amber)).
		WithPanel(tile("Green", "The council's own series within their thresholds.", "count(("+own+") == 0) or vector(0)", green)).
		WithPanel(tile("Unknown", "The council's own rated series whose latest value is missing (not collected, suppressed, or nothing to divide by).", "count(("+own+") == -1) or vector(0)", grey)).
		WithPanel(tile("Stale", "The council's own series whose latest value describes a period older than its KPI's max_age (benchmarks left out).",
			"count("+ownOnly(`max without (instance) (time() - carewatch_kpi_period_timestamp_seconds{kpi=~"${kpi:regex}", `+teamMatch+`}) > on (kpi) group_left () max without (instance) (carewatch_kpi_max_age_seconds)`)+") or vector(0)", red)).
		WithPanel(tile("Collectors failing", "Collectors whose latest run failed, after its retries: their KPIs keep their last good values.",
			"count(max without (instance) (carewatch_collector_last_run_success) == 0) or vector(0)", red))

	// What needs attention: red, then amber, then stale, from the store.
	attention := `SELECT split_part(l.kpi, '_', 1) AS service,
       l.kpi,
       ` + sqlLabel("l", "team") + ` AS team,
       CASE WHEN k.max_age IS NOT NULL AND l.period + k.max_age < now() AND coalesce(l.status, '') NOT IN ('red', 'amber') THEN 'stale' ELSE l.status END AS status,
       l.status_since AS since,
       to_char(l.value * u.scale, 'FM999999990.0') || u.suffix AS value,
       to_char(l.amber * u.scale, 'FM999999990.0') || u.suffix AS amber,
       to_char(l.red * u.scale, 'FM999999990.0') || u.suffix AS red,
       l.period,
       ` + labelColumns(c, "l") + `
       ` + sqlDays + ` AS days
  FROM kpi_latest l
  JOIN kpis k ON k.name = l.kpi AND k.retired_at IS NULL
  ` + sqlUnit + `
 WHERE (l.status IN ('red', 'amber') OR (k.max_age IS NOT NULL AND l.period + k.max_age < now()))
   AND ` + sqlOwn("l") + `
   AND split_part(l.kpi, '_', 1) IN (${service:sqlstring})
   AND l.kpi IN (${kpi:sqlstring})
   AND ` + sqlTeamMatch("l") + `
 ORDER BY CASE l.status WHEN 'red' THEN 0 WHEN 'amber' THEN 1 ELSE 2 END, l.status_since, l.kpi, team`
	d = d.WithRow(row(id.next(), "What needs attention")).
		WithPanel(kpiTable(c, tablePanel(id.next(), size{24, 9}, "Red and amber now, then stale",
			"The council's own series that are red or amber now (red first, longest first), then those whose data is stale, from the store: since is when the series took its status. Click a KPI for its detail."),
			NewSQLQueryBuilder(attention)))

	// What changed: status changes in the range, red and amber first.
	changed := `SELECT split_part(s.kpi, '_', 1) AS service,
       s.kpi,
       ` + sqlLabel("s", "team") + ` AS team,
       coalesce(e.from_status, 'new') AS "from",
       e.to_status AS "to",
       e.at AS "when",
       e.period,
       ` + labelColumns(c, "s") + `
       ` + sqlDays + ` AS days
  FROM status_events e
  JOIN series s ON s.id = e.series_id
  JOIN kpis k ON k.name = s.kpi
 WHERE $__timeFilter(e.at)
   AND ` + sqlOwn("s") + `
   AND split_part(s.kpi, '_', 1) IN (${service:sqlstring})
   AND s.kpi IN (${kpi:sqlstring})
   AND ` + sqlTeamMatch("s") + `
 ORDER BY CASE e.to_status WHEN 'red' THEN 0 WHEN 'amber' THEN 1 ELSE 2 END, e.at DESC, e.id DESC
 LIMIT 500`
	d = d.WithRow(row(id.next(), "What changed")).
		WithPanel(kpiTable(c, tablePanel(id.next(), size{24, 9}, "Changed status in the range",
			"Every status change of the council's own series in the dashboard's time range, from the store: to red and amber first, newest first. Click a KPI for its detail."),
			NewSQLQueryBuilder(changed)))

	// The matrix of every rated KPI by team, one per service.
	matrix := tablePanel(id.next(), size{12, 12}, "$service: status by team",
		"One row per team, one column per KPI with thresholds; the colour is the council's own series' RAG status now (carewatch_kpi_status; benchmarks are on the Benchmarking dashboard). Click a cell for the series' detail. KPIs without thresholds are in the table of every KPI below.").
		Targets(promTargets([]promQuery{{expr: ownOnly(`max without (instance) (carewatch_kpi_status{kpi=~"${service}_.*", kpi=~"${kpi:regex}", ` + teamMatch + `})`), instant: true, table: true}})).
		Repeat("service").RepeatDirection(dashboard.PanelRepeatDirectionH).MaxPerRow(2).
		Mappings(statusMapping()).
		Thresholds(neutralThresholds()).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
		Decimals(0).
		Align(common.FieldTextAlignmentCenter).
		CellOptions(common.TableCellOptions{TableColoredBackgroundCellOptions: &common.TableColoredBackgroundCellOptions{Type: common.TableCellDisplayModeColorBackground, Mode: ptr(common.TableCellBackgroundDisplayModeBasic)}}).
		WithTransformation(dashboard.DataTransformerConfig{Id: "groupingToMatrix", Options: map[string]any{
			"columnField": "kpi", "rowField": "team", "valueField": "Value", "emptyValue": "null"}}).
		OverrideByName(`team\kpi`, []dashboard.DynamicConfigValue{
			{Id: "displayName", Value: "team"},
			{Id: "custom.cellOptions", Value: map[string]any{"type": "auto"}},
			{Id: "custom.align", Value: "left"},
			{Id: "custom.width", Value: 220},
		})
	for _, k := range c.all {
		if !k.HasThresholds() || len(k.OwnSeries) > 0 {
			continue
		}
		var vars [][2]string
		for _, l := range k.Labels {
			switch l {
			case "team":
				vars = append(vars, [2]string{"team", "${__data.fields[0]:percentencode}"})
			case "service":
				vars = append(vars, [2]string{"service", "${service:percentencode}"})
			}
		}
		matrix = matrix.OverrideByName(k.Name, []dashboard.DynamicConfigValue{
			{Id: "displayName", Value: title(k)},
			{Id: "links", Value: []any{dataLink("Detail of "+title(k), kpiLink(k.Name, vars, fmt.Sprint(CadenceDays(k.MaxAge))))}},
		})
	}
	d = d.WithRow(row(id.next(), "RAG status by team")).WithPanel(matrix)

	// Every KPI, with or without a team, benchmarks included.
	every := `SELECT split_part(l.kpi, '_', 1) AS service,
       l.kpi,
       ` + sqlLabel("l", "team") + ` AS team,
       CASE WHEN ` + sqlOwn("l") + ` THEN '' ELSE 'benchmark' END AS benchmark,
       coalesce(l.status, 'not rated') AS status,
       CASE WHEN k.max_age IS NOT NULL AND l.period + k.max_age < now() THEN 'stale' ELSE 'fresh' END AS freshness,
       to_char(l.value * u.scale, 'FM999999990.0') || u.suffix AS value,
       to_char(l.amber * u.scale, 'FM999999990.0') || u.suffix AS amber,
       to_char(l.red * u.scale, 'FM999999990.0') || u.suffix AS red,
       l.period,
       l.collected_at AS collected,
       ` + labelColumns(c, "l") + `
       ` + sqlDays + ` AS days
  FROM kpi_latest l
  JOIN kpis k ON k.name = l.kpi AND k.retired_at IS NULL
  ` + sqlUnit + `
 WHERE split_part(l.kpi, '_', 1) IN (${service:sqlstring})
   AND l.kpi IN (${kpi:sqlstring})
   AND ` + sqlTeamMatch("l") + `
 ORDER BY CASE l.status WHEN 'red' THEN 0 WHEN 'amber' THEN 1 WHEN 'unknown' THEN 2 WHEN 'green' THEN 4 ELSE 3 END, freshness DESC, l.kpi, team, l.labels::text`
	d = d.WithRow(row(id.next(), "Every KPI")).
		WithPanel(kpiTable(c, tablePanel(id.next(), size{24, 12}, "Every KPI: latest value, status and freshness",
			"The latest value of every series of every KPI in the catalogue, with or without a team, benchmarks included, in its unit (ratios as percent, waits in days), with its status and whether its data is stale. Click a KPI for its detail."),
			NewSQLQueryBuilder(every)))
	return d
}

// labelColumns selects every label of the catalogue as a column of its own
// (hidden in the tables), for the links to the KPI detail dashboard.
func labelColumns(c *catalogue, a string) string {
	var cols []string
	for _, l := range c.labels {
		cols = append(cols, sqlLabel(a, l)+` AS "label_`+l+`",`)
	}
	return strings.Join(cols, "\n       ")
}
