package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/table"
)

// kpiTable is a table of series from the store whose rows link to the KPI
// detail dashboard: the query selects kpi, one label_NAME column per label
// of the catalogue and days (the KPI's cadence), which stay hidden, and
// may select status, freshness, since, period, when and collected.
func kpiTable(c *catalogue, p *table.PanelBuilder, q *SQLQueryBuilder) *table.PanelBuilder {
	var vars [][2]string
	for _, l := range c.labels {
		vars = append(vars, [2]string{l, "${__data.fields.label_" + l + ":percentencode}"})
	}
	link := kpiLink("${__data.fields.kpi}", vars, "${__data.fields.days}")
	p = p.Targets(sqlTargets(q)).
		OverrideByRegexp("^(label_.*|days)$", []dashboard.DynamicConfigValue{{Id: "custom.hidden", Value: true}}).
		OverrideByName("kpi", []dashboard.DynamicConfigValue{{Id: "links", Value: []any{dataLink("Detail of this series", link)}}})
	return wordColumns(p)
}

// wordColumns colours the columns that hold the store's words (status,
// from, to, freshness) and shows times as times.
func wordColumns(p *table.PanelBuilder) *table.PanelBuilder {
	for _, col := range []string{"status", "from", "to", "freshness"} {
		p = p.OverrideByName(col, []dashboard.DynamicConfigValue{{Id: "mappings", Value: wordMapping()}, colouredCells()})
	}
	for _, col := range []string{"since", "when", "collected"} {
		p = p.OverrideByName(col, []dashboard.DynamicConfigValue{{Id: "unit", Value: "dateTimeFromNow"}})
	}
	return p.OverrideByName("period", []dashboard.DynamicConfigValue{{Id: "unit", Value: "dateTimeAsIsoNoDateIfToday"}})
}

// sqlOverride picks, for series alias s of KPI alias k, the override of
// the catalogue that applies to it (the most specific match, the first of
// equals), as kpi.KPI.ThresholdsAt does; NULL when none does.
const sqlOverride = `CROSS JOIN LATERAL (
    SELECT (SELECT x.v FROM jsonb_array_elements(k.overrides) WITH ORDINALITY AS x(v, i)
             WHERE s.labels @> (x.v->'match')
             ORDER BY (SELECT count(*) FROM jsonb_object_keys(x.v->'match')) DESC, x.i
             LIMIT 1) AS ov
) r`

// sqlThresholdAt is the level ("amber" or "red") threshold in force for a
// series on the date period: its override's trajectory and boundary, else
// the KPI's trajectory and boundary, as kpi.KPI.ThresholdsAt judges it. It
// needs kpis k and sqlOverride's r: the targets that move over time show
// as they moved.
func sqlThresholdAt(level, period string) string {
	step := func(steps string) string {
		return `(SELECT (t.st->>'` + level + `')::double precision
             FROM jsonb_array_elements(` + steps + `) WITH ORDINALITY AS t(st, i)
            WHERE (t.st->>'from')::timestamptz <= ` + period + ` AND t.st->>'` + level + `' IS NOT NULL
            ORDER BY t.i DESC LIMIT 1)`
	}
	return `coalesce(` + step("r.ov->'trajectory'") + `,
            (r.ov->>'` + level + `')::double precision,
            ` + step("k.trajectory") + `,
            k.` + level + `)`
}

// sqlHistory is the rows a chart of the dashboard's time range reads, with
// the columns of kpi_observations: the store's kpi_history, which gives
// every stored value over a range of up to six months and each month's
// latest value over a longer one, so that a chart of five years reads
// about 60 points a series rather than 1,826.
const sqlHistory = `kpi_history($__timeFrom(), $__timeTo())`
