package dashboards

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/carewatch/carewatch/kpi"
)

// service is a service's dashboard: for every KPI of the service in the
// catalogue, its series now (value, status, period) and its history
// against its thresholds, in the KPI's own unit and title.
func service(c *catalogue, s string) *dashboard.DashboardBuilder {
	var id ids
	ks := c.byService[s]
	name := strings.ToUpper(s[:1]) + s[1:]
	d := newDashboard(c, ServiceUID(s), name,
		fmt.Sprintf("Every KPI of the %s service in the catalogue: its series now, with their RAG status, and their history against their thresholds, by team. Generated from the KPI catalogue, so a KPI added to carewatch.yml appears here. Click a row for the series' detail.", s),
		cadenceRange(ks))
	d = d.WithVariable(dashboard.NewQueryVariableBuilder("team").Label("Team").
		Description("Teams to show. Series without a team (the service as a whole, council-wide KPIs) always show.").
		Datasource(promDatasource()).
		Query(dashboard.StringOrMap{Map: map[string]any{"query": fmt.Sprintf(`label_values(carewatch_kpi_period_timestamp_seconds{kpi=~"%s_.*"}, team)`, s), "refId": "team"}}).
		Definition(fmt.Sprintf(`label_values(carewatch_kpi_period_timestamp_seconds{kpi=~"%s_.*"}, team)`, s)).
		Multi(true).IncludeAll(true).Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc))
	for _, k := range ks {
		d = d.WithRow(row(id.next(), title(k)))
		d = d.WithPanel(kpiTable(c, tablePanel(id.next(), size{10, 9}, title(k)+": now",
			fmt.Sprintf("%s KPI %s. Each series' latest value from the store, its RAG status and the period it describes; %s is better. Click a row for the series' detail.", k.Help, k.Name, strings.TrimSuffix(k.Direction.String(), "_is_better"))),
			NewSQLQueryBuilder(nowSQL(c, k))).
			Unit(unit(k)).Decimals(1).
			OverrideByName("period", []dashboard.DynamicConfigValue{{Id: "unit", Value: "dateTimeAsIsoNoDateIfToday"}}))
		d = d.WithPanel(history(id.next(), size{14, 9}, k, title(k)+": history against its thresholds",
			fmt.Sprintf("%s History of every series in the time range, from the store, with the amber and red thresholds in force for each series on each date (dashed): targets that move over time show as they moved.", k.Help),
			"coalesce(o.labels->>'team', '') IN ('', ${team:sqlstring})"))
	}
	return d
}

// seriesName is a series' name in a chart: its label values, the service
// left out (the dashboard says it), else the KPI's title.
func seriesName(k *kpi.KPI, a string) string {
	var parts []string
	for _, l := range k.Labels {
		if l != "service" {
			parts = append(parts, fmt.Sprintf("%s.labels->>'%s'", a, l))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("'%s'", strings.ReplaceAll(title(k), "'", "''"))
	}
	return fmt.Sprintf("coalesce(nullif(concat_ws(', ', %s), ''), '%s')", strings.Join(parts, ", "), strings.ReplaceAll(title(k), "'", "''"))
}

// nowSQL is a KPI's series now, for a service dashboard's table.
func nowSQL(c *catalogue, k *kpi.KPI) string {
	return `SELECT l.kpi,
       ` + seriesName(k, "l") + ` AS series,
       ` + scaled(k, "l.value") + ` AS value,
       coalesce(l.status, 'not rated') AS status,
       CASE WHEN k.max_age IS NOT NULL AND l.period + k.max_age < now() THEN 'stale' ELSE 'fresh' END AS freshness,
       l.period,
       ` + labelColumns(c, "l") + `
       ` + sqlDays + ` AS days
  FROM kpi_latest l
  JOIN kpis k ON k.name = l.kpi
 WHERE l.kpi = '` + k.Name + `'
   AND coalesce(l.labels->>'team', '') IN ('', ${team:sqlstring})
 ORDER BY CASE l.status WHEN 'red' THEN 0 WHEN 'amber' THEN 1 ELSE 2 END, l.value ` + worstFirst(k) + `, series`
}

// worstFirst orders a KPI's values worst first.
func worstFirst(k *kpi.KPI) string {
	if k.Direction == kpi.LowerIsBetter {
		return "DESC NULLS LAST"
	}
	return "ASC NULLS LAST"
}

// history is a chart of a KPI's stored values in the time range, with the
// thresholds in force for each series as dashed lines; where filters the
// observations (alias o).
func history(id uint32, s size, k *kpi.KPI, panelTitle, description, where string) *timeseries.PanelBuilder {
	values := `SELECT o.period AS time,
       ` + seriesName(k, "o") + ` AS metric,
       ` + scaled(k, "o.value") + ` AS value
  FROM ` + sqlHistory + ` o
 WHERE o.kpi = '` + k.Name + `'
   AND ` + where + `
 ORDER BY 1, 2`
	qs := []*SQLQueryBuilder{NewSQLQueryBuilder(values).TimeSeries()}
	if k.HasThresholds() {
		// A threshold line is a step line: a point where each series'
		// values begin and end in the range and one at each step of its
		// trajectory between them, not one per value.
		thresholds := `WITH span AS (
    SELECT o.series_id, min(o.period) AS first, max(o.period) AS last
      FROM ` + sqlHistory + ` o
     WHERE o.kpi = '` + k.Name + `'
       AND ` + where + `
     GROUP BY o.series_id
)
SELECT p.at AS time,
       ` + seriesName(k, "s") + ` || ' ' || l.level || ' threshold' AS metric,
       ` + scaled(k, "CASE l.level WHEN 'amber' THEN "+sqlThresholdAt("amber", "p.at")+" ELSE "+sqlThresholdAt("red", "p.at")+" END") + ` AS value
  FROM span
  JOIN series s ON s.id = span.series_id
  JOIN kpis k ON k.name = s.kpi
  ` + sqlOverride + `
 CROSS JOIN LATERAL (
    SELECT span.first AS at
    UNION SELECT span.last
    UNION SELECT (t.st->>'from')::timestamptz
            FROM jsonb_array_elements(k.trajectory || coalesce(r.ov->'trajectory', '[]')) AS t(st)
           WHERE (t.st->>'from')::timestamptz > span.first AND (t.st->>'from')::timestamptz < span.last
) p
 CROSS JOIN (VALUES ('amber'), ('red')) AS l(level)
 ORDER BY 1, 2`
		qs = append(qs, NewSQLQueryBuilder(thresholds).TimeSeries())
	}
	p := seriesPanel(id, s, panelTitle, description).
		Targets(sqlTargets(qs...)).
		Unit(unit(k)).Decimals(1).
		OverrideByRegexp(".* amber threshold$", []dashboard.DynamicConfigValue{
			{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": amber}},
			{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}},
			{Id: "custom.showPoints", Value: "never"},
			{Id: "custom.lineWidth", Value: 1},
			{Id: "custom.lineInterpolation", Value: "stepAfter"},
			{Id: "custom.spanNulls", Value: true},
		}).
		OverrideByRegexp(".* red threshold$", []dashboard.DynamicConfigValue{
			{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": red}},
			{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}},
			{Id: "custom.showPoints", Value: "never"},
			{Id: "custom.lineWidth", Value: 1},
			{Id: "custom.lineInterpolation", Value: "stepAfter"},
			{Id: "custom.spanNulls", Value: true},
		})
	return p
}
