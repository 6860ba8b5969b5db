package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// upDown maps a 0/1 health gauge to words in colours.
func upDown(down, up string) []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: map[string]dashboard.ValueMappingResult{
		"0": {Text: ptr(down), Color: ptr(red), Index: ptr(int32(0))},
		"1": {Text: ptr(up), Color: ptr(green), Index: ptr(int32(1))},
	}}}}
}

// collectorHealth is carewatch's own health: the daemon, its collectors,
// its data's freshness, and the runs in the store.
func collectorHealth(c *catalogue) *dashboard.DashboardBuilder {
	var id ids
	d := newDashboard(c, HealthUID, "Collector health",
		"Is carewatch itself well: Prometheus reaches it, it reaches its store, each collector's last run, how fresh each KPI's data is, and the runs the store recorded.",
		"now-7d")
	d = d.WithVariable(dashboard.NewQueryVariableBuilder("collector").Label("Collector").
		Datasource(promDatasource()).
		Query(dashboard.StringOrMap{Map: map[string]any{"query": "label_values(carewatch_collector_runs_total, collector)", "refId": "collector"}}).
		Definition("label_values(carewatch_collector_runs_total, collector)").
		Multi(true).IncludeAll(true).Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc))
	gauge := func(title, desc, expr, down, up string) cogPanel {
		return statPanel(id.next(), size{6, 4}, title, desc).
			Targets(promTargets([]promQuery{{expr: expr, legend: title, instant: true}})).
			Mappings(upDown(down, up)).Thresholds(neutralThresholds()).
			ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds))
	}
	coll := `collector=~"${collector:regex}"`
	d = d.WithRow(row(id.next(), "carewatch")).
		WithPanel(gauge("Scrape", "Whether Prometheus reaches carewatch's /metrics.", `min(up{job="carewatch"})`, "Down", "Up")).
		WithPanel(gauge("Store", "Whether carewatch reaches its PostgreSQL store.", "min(carewatch_store_up)", "Unreachable", "Up")).
		WithPanel(gauge("Last configuration reload", "Whether the last reload of the configuration succeeded; a refused file leaves the previous one in force.", "min(carewatch_config_last_reload_successful)", "Refused", "OK")).
		WithPanel(statPanel(id.next(), size{6, 4}, "Version", "carewatch's version, from carewatch_build_info.").
			Targets(promTargets([]promQuery{{expr: "carewatch_build_info", legend: "{{version}}", instant: true}})).
			TextMode(common.BigValueTextModeName).ColorMode(common.BigValueColorModeNone))

	d = d.WithRow(row(id.next(), "Collectors now")).
		WithPanel(tablePanel(id.next(), size{24, 8}, "Collectors now",
			"The last run of each collector: whether it succeeded, how long ago the last success was, its duration, the observations it carried, and the runs and failures in the store's history.").
			Targets(promTargets([]promQuery{
				{expr: "max by (collector) (carewatch_collector_last_run_success{" + coll + "})", instant: true, table: true},
				{expr: "time() - max by (collector) (carewatch_collector_last_success_timestamp_seconds{" + coll + "})", instant: true, table: true},
				{expr: "max by (collector) (carewatch_collector_last_run_duration_seconds{" + coll + "})", instant: true, table: true},
				{expr: "max by (collector) (carewatch_collector_last_run_observations{" + coll + "})", instant: true, table: true},
				{expr: "max by (collector) (carewatch_collector_runs_total{" + coll + "})", instant: true, table: true},
				{expr: "max by (collector) (carewatch_collector_failures_total{" + coll + "})", instant: true, table: true},
			})).
			WithTransformation(dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}).
			WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
				"excludeByName": map[string]any{"Time": true},
				"renameByName": map[string]any{"collector": "Collector", "Value #A": "Last run", "Value #B": "Since last success",
					"Value #C": "Duration", "Value #D": "Observations", "Value #E": "Runs", "Value #F": "Failures"},
			}}).
			OverrideByName("Last run", []dashboard.DynamicConfigValue{{Id: "mappings", Value: upDown("Failed", "Succeeded")}, colouredCells()}).
			OverrideByName("Since last success", []dashboard.DynamicConfigValue{{Id: "unit", Value: "s"}, {Id: "decimals", Value: 0}}).
			OverrideByName("Duration", []dashboard.DynamicConfigValue{{Id: "unit", Value: "s"}, {Id: "decimals", Value: 2}}))

	d = d.WithPanel(seriesPanel(id.next(), size{12, 8}, "Time since last success", "How long ago each collector last succeeded; it climbs while a collector keeps failing.").
		Targets(promTargets([]promQuery{{expr: "time() - carewatch_collector_last_success_timestamp_seconds{" + coll + "}", legend: "{{collector}}"}})).
		Unit("s").Decimals(0)).
		WithPanel(seriesPanel(id.next(), size{12, 8}, "Run duration", "How long each collector's last run took.").
			Targets(promTargets([]promQuery{{expr: "carewatch_collector_last_run_duration_seconds{" + coll + "}", legend: "{{collector}}"}})).
			Unit("s").Decimals(2)).
		WithPanel(seriesPanel(id.next(), size{12, 8}, "Runs and failures", "Runs and failed runs per collector over each interval.").
			Targets(promTargets([]promQuery{
				{expr: "increase(carewatch_collector_runs_total{" + coll + "}[$__rate_interval])", legend: "{{collector}} runs"},
				{expr: "increase(carewatch_collector_failures_total{" + coll + "}[$__rate_interval])", legend: "{{collector}} failures"},
			})).
			Unit("none").Decimals(0).
			OverrideByRegexp(".* failures", []dashboard.DynamicConfigValue{{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": red}}})).
		WithPanel(seriesPanel(id.next(), size{12, 8}, "Observations per run", "Observations each collector's last successful run carried: a sudden drop means rows went missing at the source.").
			Targets(promTargets([]promQuery{{expr: "carewatch_collector_last_run_observations{" + coll + "}", legend: "{{collector}}"}})).
			Unit("none").Decimals(0))

	d = d.WithRow(row(id.next(), "Data freshness")).
		WithPanel(tablePanel(id.next(), size{24, 9}, "Freshness by KPI",
			"For each KPI: the age of its oldest series' period, how old it may grow (max_age), and how many of its series are stale now.").
			Targets(promTargets([]promQuery{
				{expr: "max by (kpi) (time() - carewatch_kpi_period_timestamp_seconds)", instant: true, table: true},
				{expr: "max by (kpi) (carewatch_kpi_max_age_seconds)", instant: true, table: true},
				{expr: "sum by (kpi) (max without (instance) (time() - carewatch_kpi_period_timestamp_seconds) > bool on (kpi) group_left () max without (instance) (carewatch_kpi_max_age_seconds))", instant: true, table: true},
			})).
			WithTransformation(dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}).
			WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
				"excludeByName": map[string]any{"Time": true},
				"renameByName":  map[string]any{"kpi": "KPI", "Value #A": "Oldest period's age", "Value #B": "Max age", "Value #C": "Stale series"},
			}}).
			OverrideByName("Oldest period's age", []dashboard.DynamicConfigValue{{Id: "unit", Value: "s"}, {Id: "decimals", Value: 1}}).
			OverrideByName("Max age", []dashboard.DynamicConfigValue{{Id: "unit", Value: "s"}, {Id: "decimals", Value: 0}}))

	runs := "collector IN (${collector:sqlstring})"
	d = d.WithRow(row(id.next(), "Run history (store)")).
		WithPanel(seriesPanel(id.next(), size{12, 8}, "Run durations", "Every run's duration, from the store's record of runs.").
			Targets(sqlTargets(NewSQLQueryBuilder(`SELECT finished_at AS time,
       collector AS metric,
       duration_seconds AS value
  FROM runs
 WHERE ` + runs + `
   AND $__timeFilter(finished_at)
 ORDER BY 1, 2`).TimeSeries())).
			Unit("s").Decimals(2)).
		WithPanel(statPanel(id.next(), size{6, 8}, "Values revised", "Stored values that a later run changed, in this time range: each is kept as a revision with both runs.").
			Targets(sqlTargets(NewSQLQueryBuilder(`SELECT count(*) AS revised
  FROM revisions
 WHERE $__timeFilter(revised_at)`))).
			Unit("none").Decimals(0).ColorMode(common.BigValueColorModeNone)).
		WithPanel(statPanel(id.next(), size{6, 8}, "Failed runs", "Runs that failed in this time range.").
			Targets(sqlTargets(NewSQLQueryBuilder(`SELECT count(*) FILTER (WHERE status = 'failed') AS failed
  FROM runs
 WHERE ` + runs + `
   AND $__timeFilter(finished_at)`))).
			Unit("none").Decimals(0).
			ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
			Thresholds(dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).
				Steps([]dashboard.Threshold{{Color: neutral}, {Value: ptr(1.0), Color: red}}))).
		WithPanel(wordColumns(tablePanel(id.next(), size{24, 10}, "Recent runs", "The latest runs in this time range, newest first, with what each stored and any error.").
			Targets(sqlTargets(NewSQLQueryBuilder(`SELECT finished_at AS "when",
       collector,
       source,
       status,
       duration_seconds AS duration,
       observations,
       inserted,
       revised,
       error
  FROM runs
 WHERE `+runs+`
   AND $__timeFilter(finished_at)
 ORDER BY finished_at DESC, id DESC
 LIMIT 500`))).
			OverrideByName("duration", []dashboard.DynamicConfigValue{{Id: "unit", Value: "s"}, {Id: "decimals", Value: 2}})))
	return d
}
