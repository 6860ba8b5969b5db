package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// size is a panel's place: its width and height on Grafana's 24-column
// grid; the dashboard builder puts it after the one before.
type size struct{ w, h uint32 }

func (s size) grid() dashboard.GridPos { return dashboard.GridPos{W: s.w, H: s.h} }

// promTargets turns PromQL queries into the panel's targets A, B, C...
func promTargets(qs []promQuery) []cog.Builder[variants.Dataquery] {
	var out []cog.Builder[variants.Dataquery]
	for i, q := range qs {
		b := prometheus.NewDataqueryBuilder().
			RefId(string(rune('A' + i))).
			Datasource(promDatasource()).
			Expr(q.expr).
			EditorMode(prometheus.QueryEditorModeCode)
		if q.legend != "" {
			b = b.LegendFormat(q.legend)
		} else {
			b = b.LegendFormat("__auto")
		}
		if q.instant {
			b = b.Instant()
		} else {
			b = b.Range()
		}
		if q.table {
			b = b.Format(prometheus.PromQueryFormatTable)
		}
		out = append(out, b)
	}
	return out
}

func sqlTargets(qs ...*SQLQueryBuilder) []cog.Builder[variants.Dataquery] {
	var out []cog.Builder[variants.Dataquery]
	for i, q := range qs {
		out = append(out, q.RefID(string(rune('A'+i))))
	}
	return out
}

// statPanel is a single number (or word) with its colour.
func statPanel(id uint32, s size, title, description string) *stat.PanelBuilder {
	return stat.NewPanelBuilder().Id(id).Title(title).Description(description).GridPos(s.grid()).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false)).
		GraphMode(common.BigValueGraphModeNone).
		ColorMode(common.BigValueColorModeBackground).
		TextMode(common.BigValueTextModeValue).
		JustifyMode(common.BigValueJustifyModeAuto).
		Orientation(common.VizOrientationAuto)
}

// tablePanel is a table with Grafana's usual options.
func tablePanel(id uint32, s size, title, description string) *table.PanelBuilder {
	return table.NewPanelBuilder().Id(id).Title(title).Description(description).GridPos(s.grid()).
		ShowHeader(true).CellHeight(common.TableCellHeightSm).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"}).CountRows(false)).
		Filterable(true)
}

// seriesPanel is a time series chart.
func seriesPanel(id uint32, s size, title, description string) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().Id(id).Title(title).Description(description).GridPos(s.grid()).
		LineWidth(2).FillOpacity(0).ShowPoints(common.VisibilityModeAlways).PointSize(5).
		SpanNulls(common.BoolOrFloat64{Bool: ptr(false)}).
		Legend(common.NewVizLegendOptionsBuilder().ShowLegend(true).DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementRight).Calcs([]string{"lastNotNull"})).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
}

// barPanel is a horizontal bar gauge.
func barPanel(id uint32, s size, title, description string) *bargauge.PanelBuilder {
	return bargauge.NewPanelBuilder().Id(id).Title(title).Description(description).GridPos(s.grid()).
		Orientation(common.VizOrientationHorizontal).DisplayMode(common.BarGaugeDisplayModeBasic).
		ShowUnfilled(true).ValueMode(common.BarGaugeValueModeColor).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false))
}

func row(id uint32, title string) *dashboard.RowBuilder {
	return dashboard.NewRowBuilder(title).Id(id)
}

// cogPanel is any panel builder.
type cogPanel = cog.Builder[dashboard.Panel]
