package dashboards

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// kpiDetail is one series of one KPI: its value and status now, its
// history against its thresholds, its status changes and revisions, and
// every other series of the KPI beside it (the benchmarks where the KPI
// has them). Its variables are the KPI and one per label of the catalogue,
// each a single value: a label the KPI does not have offers no value and
// is empty, which matches series without it. Links from the other
// dashboards and from alerts set them all, and a time range that fits the
// KPI's cadence.
func kpiDetail(c *catalogue) *dashboard.DashboardBuilder {
	var id ids
	d := newDashboard(c, KPIUID, "KPI detail",
		"One series of one KPI: its value and status now, its history against its thresholds, its status changes and revisions, and the KPI's other series (its benchmarks) beside it. Alerts and the other dashboards link here with the series' labels and a time range fitting the KPI's cadence.",
		"now-90d")
	d = d.WithVariable(dashboard.NewQueryVariableBuilder("kpi").Label("KPI").
		Datasource(promDatasource()).
		Query(dashboard.StringOrMap{Map: map[string]any{"query": "label_values(carewatch_kpi_info, kpi)", "refId": "kpi"}}).
		Definition("label_values(carewatch_kpi_info, kpi)").
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc))
	var prom []string
	for _, l := range c.labels {
		q := fmt.Sprintf(`label_values(carewatch_kpi_period_timestamp_seconds{kpi="$kpi"}, %s)`, l)
		d = d.WithVariable(dashboard.NewQueryVariableBuilder(l).Label(l).
			Description("The series' " + l + "; empty for a KPI without this label.").
			Datasource(promDatasource()).
			Query(dashboard.StringOrMap{Map: map[string]any{"query": q, "refId": l}}).
			Definition(q).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc))
		prom = append(prom, fmt.Sprintf(`%s=~"${%s:regex}"`, l, l))
	}
	sel := `{kpi="$kpi", ` + strings.Join(prom, ", ") + `}`
	// seriesOf is the series' condition on alias a, which has kpi and
	// labels. The charts put it on kpi_history's rows (o), where
	// PostgreSQL takes it into each of the function's branches.
	seriesOf := func(a string) string {
		conds := []string{a + ".kpi = '$kpi'"}
		for _, l := range c.labels {
			conds = append(conds, fmt.Sprintf(`%s IN (${%s:sqlstring})`, sqlLabel(a, l), l))
		}
		return strings.Join(conds, "\n   AND ")
	}
	series := seriesOf("s")

	d = d.WithRow(row(id.next(), "Now"))
	d = d.WithPanel(statPanel(id.next(), size{8, 5}, "Value now",
		"The series' latest value from the store, in the KPI's unit (ratios as percent, waits in days).").
		Targets(sqlTargets(NewSQLQueryBuilder(`SELECT to_char(l.value * u.scale, 'FM999999990.0') || u.suffix AS value
  FROM kpi_latest l
  JOIN series s ON s.id = l.series_id
  JOIN kpis k ON k.name = l.kpi
  ` + sqlUnit + `
 WHERE ` + series))).
		ColorMode(common.BigValueColorModeNone).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Fields("/.*/").Values(false)))
	d = d.WithPanel(statPanel(id.next(), size{8, 5}, "Status now",
		"The series' RAG status now, as carewatch judged it against the catalogue's thresholds (carewatch_kpi_status).").
		Targets(promTargets([]promQuery{{expr: `max without (instance) (carewatch_kpi_status` + sel + `)`, legend: "status", instant: true}})).
		Mappings(statusMapping()).Thresholds(neutralThresholds()).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
		NoValue("Not rated"))
	d = d.WithPanel(statPanel(id.next(), size{8, 5}, "Period it describes",
		"The period the series' latest value describes (a snapshot date, a month, a reporting year), and whether it is older than the KPI's max_age.").
		Targets(sqlTargets(NewSQLQueryBuilder(`SELECT to_char(l.period, 'DD Mon YYYY') ||
       CASE WHEN k.max_age IS NOT NULL AND l.period + k.max_age < now() THEN ' (stale)' ELSE '' END AS period
  FROM kpi_latest l
  JOIN series s ON s.id = l.series_id
  JOIN kpis k ON k.name = l.kpi
 WHERE ` + series))).
		ColorMode(common.BigValueColorModeNone).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Fields("/.*/").Values(false)))

	d = d.WithRow(row(id.next(), "History"))
	scale := "o.value * u.scale"
	values := `SELECT o.period AS time,
       'value' AS metric,
       ` + scale + ` AS value
  FROM ` + sqlHistory + ` o
  JOIN kpis k ON k.name = o.kpi
  ` + sqlUnit + `
 WHERE ` + seriesOf("o") + `
 ORDER BY 1`
	thresholds := `SELECT o.period AS time,
       l.level || ' threshold' AS metric,
       CASE l.level WHEN 'amber' THEN ` + sqlThresholdAt("amber", "o.period") + `
                    ELSE ` + sqlThresholdAt("red", "o.period") + ` END * u.scale AS value
  FROM ` + sqlHistory + ` o
  JOIN series s ON s.id = o.series_id
  JOIN kpis k ON k.name = s.kpi
  ` + sqlOverride + `
  ` + sqlUnit + `
 CROSS JOIN (VALUES ('amber'), ('red')) AS l(level)
 WHERE ` + seriesOf("o") + `
 ORDER BY 1, 2`
	d = d.WithPanel(seriesPanel(id.next(), size{24, 10}, "History against its thresholds",
		"Every stored value of the series in the time range, in the KPI's unit (ratios as percent, waits in days), with the amber and red thresholds in force on each date (dashed): a target that moves over time (a trajectory in the catalogue) shows as it moved.").
		Targets(sqlTargets(NewSQLQueryBuilder(values).TimeSeries(), NewSQLQueryBuilder(thresholds).TimeSeries())).
		Decimals(1).
		OverrideByName("amber threshold", []dashboard.DynamicConfigValue{
			{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": amber}},
			{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}},
			{Id: "custom.showPoints", Value: "never"},
		}).
		OverrideByName("red threshold", []dashboard.DynamicConfigValue{
			{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": red}},
			{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}},
			{Id: "custom.showPoints", Value: "never"},
		}))

	d = d.WithRow(row(id.next(), "Changes"))
	d = d.WithPanel(wordColumns(tablePanel(id.next(), size{12, 9}, "Status changes",
		"Every change of the series' RAG status in the time range, with the value and thresholds that made it, and why: its value crossed a threshold, or the target moved.").
		Targets(sqlTargets(NewSQLQueryBuilder(`SELECT e.at AS "when",
       coalesce(e.from_status, 'new') AS "from",
       e.to_status AS "to",
       coalesce(e.reason, '') AS reason,
       to_char(e.value * u.scale, 'FM999999990.0') || u.suffix AS value,
       to_char(e.amber * u.scale, 'FM999999990.0') || u.suffix AS amber,
       to_char(e.red * u.scale, 'FM999999990.0') || u.suffix AS red,
       e.period
  FROM status_events e
  JOIN series s ON s.id = e.series_id
  JOIN kpis k ON k.name = s.kpi
  ` + sqlUnit + `
 WHERE ` + series + `
   AND $__timeFilter(e.at)
 ORDER BY e.at DESC, e.id DESC
 LIMIT 500`)))))
	d = d.WithPanel(wordColumns(tablePanel(id.next(), size{12, 9}, "Values and their revisions",
		"Every stored value of the series in the time range, newest period first, with the collector and time of the run that stored it, and how often a later run revised it (the first value it had).").
		Targets(sqlTargets(NewSQLQueryBuilder(`SELECT o.period,
       to_char(o.value * u.scale, 'FM999999990.0') || u.suffix AS value,
       o.collector,
       o.collected_at AS collected,
       count(r.revised_at) AS revisions,
       to_char((array_agg(r.old_value ORDER BY r.revised_at))[1] * u.scale, 'FM999999990.0') || u.suffix AS "first value"
  FROM kpi_observations o
  JOIN series s ON s.id = o.series_id
  JOIN kpis k ON k.name = s.kpi
  `+sqlUnit+`
  LEFT JOIN revisions r ON r.series_id = o.series_id AND r.period = o.period
 WHERE `+series+`
   AND $__timeFilter(o.period)
 GROUP BY o.period, o.value, o.collector, o.collected_at, u.scale, u.suffix
 ORDER BY o.period DESC
 LIMIT 500`))).
		OverrideByName("revisions", []dashboard.DynamicConfigValue{{Id: "unit", Value: "none"}, {Id: "decimals", Value: 0}})))

	d = d.WithRow(row(id.next(), "Beside it"))
	d = d.WithPanel(kpiTable(c, tablePanel(id.next(), size{24, 9}, "Every series of this KPI now",
		"The latest value of every series of the KPI: the council's own teams and, where the KPI has them, its benchmarks (statistical neighbours, region, England) beside it. Click a row to open that series."),
		NewSQLQueryBuilder(`SELECT s.kpi,
       concat_ws(', ', VARIADIC ARRAY(SELECT value FROM jsonb_each_text(s.labels) ORDER BY key)) AS series,
       CASE WHEN `+sqlOwn("s")+` THEN 'own' ELSE 'benchmark' END AS kind,
       to_char(l.value * u.scale, 'FM999999990.0') || u.suffix AS value,
       coalesce(l.status, 'not rated') AS status,
       l.period,
       `+labelColumns(c, "s")+`
       `+sqlDays+` AS days
  FROM kpi_latest l
  JOIN series s ON s.id = l.series_id
  JOIN kpis k ON k.name = l.kpi
  `+sqlUnit+`
 WHERE s.kpi = '$kpi'
 ORDER BY kind DESC, l.value * u.scale`)))
	return d
}
