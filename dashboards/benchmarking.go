package dashboards

import (
	"fmt"
	"slices"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/carewatch/carewatch/kpi"
)

// benchmarking is the council beside others, for every KPI of the
// catalogue with benchmarks (own_series): the latest period as bars, year
// by year, and side by side. KPIs in DfE's layout (a scope label:
// council, stat_neighbour, region, england) show the neighbours' median.
func benchmarking(c *catalogue) *dashboard.DashboardBuilder {
	var id ids
	d := newDashboard(c, BenchmarkUID, "Benchmarking",
		"The council beside its statistical neighbours, its region and England, for every KPI of the catalogue that has benchmarks: the latest published period, year by year, and side by side.",
		cadenceRange(c.benchmarks))
	d = d.WithRow(row(id.next(), "Latest published period"))
	for i, k := range c.benchmarks {
		w := uint32(12)
		if i == len(c.benchmarks)-1 && len(c.benchmarks)%2 == 1 {
			w = 24
		}
		by, legend := "max without (instance) ", "{{__name__}}"
		if slices.Contains(k.Labels, "scope") {
			by, legend = "max by (scope, la_code, la_name) ", "{{la_name}} ({{scope}})"
		} else {
			var ls []string
			for _, l := range k.Labels {
				ls = append(ls, "{{"+l+"}}")
			}
			legend = strings.Join(ls, ", ")
		}
		d = d.WithPanel(barPanel(id.next(), size{w, 10}, title(k)+": latest",
			fmt.Sprintf("%s KPI %s. The latest published value of the council and of every benchmark, as carewatch serves it now.", k.Help, k.Name)).
			Targets(promTargets([]promQuery{{expr: scaled(k, by+"(carewatch_"+k.Name+")"), legend: legend, instant: true}})).
			Unit(unit(k)).Decimals(1).Min(0).
			ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdFixed).FixedColor("blue")).
			OverrideByRegexp(".*\\(council\\)", []dashboard.DynamicConfigValue{{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": amber}}}))
	}
	d = d.WithRow(row(id.next(), "Year by year"))
	for i, k := range c.benchmarks {
		w := uint32(12)
		if i == len(c.benchmarks)-1 && len(c.benchmarks)%2 == 1 {
			w = 24
		}
		d = d.WithPanel(seriesPanel(id.next(), size{w, 9}, title(k)+", period by period",
			fmt.Sprintf("%s The council, the median of its statistical neighbours, its region and England, from the store.", k.Help)).
			Targets(sqlTargets(NewSQLQueryBuilder(yearByYear(k)).TimeSeries())).
			Unit(unit(k)).Decimals(1))
	}
	return d
}

// yearByYear is the history of a benchmark KPI: the council, the median of
// the neighbours, the region and England where the KPI is in DfE's layout,
// else every series.
func yearByYear(k *kpi.KPI) string {
	if !slices.Contains(k.Labels, "scope") {
		return `SELECT o.period AS time,
       ` + seriesName(k, "o") + ` AS metric,
       ` + scaled(k, "o.value") + ` AS value
  FROM ` + sqlHistory + ` o
 WHERE o.kpi = '` + k.Name + `'
 ORDER BY 1, 2`
	}
	return `SELECT o.period AS time,
       CASE o.labels->>'scope'
            WHEN 'council' THEN coalesce(o.labels->>'la_name', 'Council')
            WHEN 'stat_neighbour' THEN 'Statistical neighbours (median)'
            WHEN 'region' THEN coalesce(o.labels->>'la_name', 'Region')
            ELSE 'England'
       END AS metric,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ` + scaled(k, "o.value") + `) AS value
  FROM ` + sqlHistory + ` o
 WHERE o.kpi = '` + k.Name + `'
   AND o.labels->>'scope' IN ('council', 'stat_neighbour', 'region', 'england')
   AND o.value IS NOT NULL
 GROUP BY 1, 2
 ORDER BY 1, 2`
}
