package exporter

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/carewatch/carewatch/kpi"
)

// The snapshot writes its text exposition itself, in the format 0.0.4 that
// expfmt writes, because going through a registry costs about fifty times
// more per series: every metric is built, sorted and encoded as protobuf
// first. The families and the order of their lines are the registry's
// (see family); TestTextIsWhatARegistryRenders holds the two to the same
// bytes.

// lineTemplate writes the lines of one family for series of one KPI: the
// metric name and label pairs in name order, with the constant labels the
// family adds (kpi, level) already in place.
type lineTemplate struct {
	// lits are the text between the label values: lits[0], the value of
	// label idx[0], lits[1], ... ending with the space before the sample.
	lits []string
	idx  []int
}

// newLineTemplate makes the template of family name for series whose label
// values are aligned with labels, adding the constant pairs consts.
func newLineTemplate(name string, labels []string, consts [][2]string) lineTemplate {
	type pair struct {
		name, value string
		idx         int
	}
	pairs := make([]pair, 0, len(labels)+len(consts))
	for i, l := range labels {
		pairs = append(pairs, pair{name: l, idx: i})
	}
	for _, c := range consts {
		pairs = append(pairs, pair{name: c[0], value: c[1], idx: -1})
	}
	if len(pairs) == 0 {
		return lineTemplate{lits: []string{name + " "}}
	}
	slices.SortFunc(pairs, func(a, b pair) int { return strings.Compare(a.name, b.name) })
	var t lineTemplate
	cur := []byte(name + "{")
	for k, p := range pairs {
		if k > 0 {
			cur = append(cur, ',')
		}
		cur = append(append(cur, p.name...), `="`...)
		if p.idx < 0 {
			cur = append(appendLabelValue(cur, p.value), '"')
			continue
		}
		t.lits = append(t.lits, string(cur))
		t.idx = append(t.idx, p.idx)
		cur = []byte{'"'}
	}
	t.lits = append(t.lits, string(append(cur, "} "...)))
	return t
}

// append writes the line of the series with the given label values.
func (t *lineTemplate) append(buf []byte, labels []string, v float64) []byte {
	buf = append(buf, t.lits[0]...)
	for i, j := range t.idx {
		buf = appendLabelValue(buf, labels[j])
		buf = append(buf, t.lits[i+1]...)
	}
	return append(appendFloat(buf, v), '\n')
}

// appendLabelValue escapes a label value as the text format does.
func appendLabelValue(buf []byte, v string) []byte {
	plain := true
	for i := 0; i < len(v) && plain; i++ {
		plain = v[i] != '\\' && v[i] != '"' && v[i] != '\n'
	}
	if plain {
		return append(buf, v...)
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			buf = append(buf, `\\`...)
		case '"':
			buf = append(buf, `\"`...)
		case '\n':
			buf = append(buf, `\n`...)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

// appendFloat writes a sample value as expfmt does.
func appendFloat(buf []byte, f float64) []byte {
	switch {
	case f == 0:
		return append(buf, '0')
	case math.IsNaN(f):
		return append(buf, "NaN"...)
	case math.IsInf(f, +1):
		return append(buf, "+Inf"...)
	case math.IsInf(f, -1):
		return append(buf, "-Inf"...)
	}
	return strconv.AppendFloat(buf, f, 'g', -1, 64)
}

// appendHeader writes a family's HELP and TYPE lines.
func appendHeader(buf []byte, name, help, typ string) []byte {
	buf = append(append(append(buf, "# HELP "...), name...), ' ')
	for i := 0; i < len(help); i++ {
		switch c := help[i]; c {
		case '\\':
			buf = append(buf, `\\`...)
		case '\n':
			buf = append(buf, `\n`...)
		default:
			buf = append(buf, c)
		}
	}
	buf = append(append(append(buf, "\n# TYPE "...), name...), ' ')
	return append(append(buf, typ...), '\n')
}

// entryText holds the templates of a KPI entry's lines.
type entryText struct {
	help                              string
	value, status, amber, red, period lineTemplate
	benchmark                         lineTemplate
	maxAge, info                      lineTemplate
}

func newEntryText(k *kpi.KPI, help string) entryText {
	named := [][2]string{{kpiLabel, k.Name}}
	level := func(l string) [][2]string { return [][2]string{{kpiLabel, k.Name}, {levelLabel, l}} }
	return entryText{
		help:      help,
		value:     newLineTemplate(k.MetricName(), k.Labels, nil),
		status:    newLineTemplate(StatusMetric, k.Labels, named),
		amber:     newLineTemplate(ThresholdMetric, k.Labels, level("amber")),
		red:       newLineTemplate(ThresholdMetric, k.Labels, level("red")),
		period:    newLineTemplate(PeriodMetric, k.Labels, named),
		benchmark: newLineTemplate(BenchmarkMetric, k.Labels, named),
		maxAge:    newLineTemplate(MaxAgeMetric, nil, named),
		info: newLineTemplate(InfoMetric, nil, [][2]string{
			{kpiLabel, k.Name}, {"metric", k.MetricName()}, {"unit", k.Unit}, {"direction", k.Direction.String()}, {"help", k.Help},
		}),
	}
}

// The text methods write what the emit methods of the same part send.

func (e *kpiEntry) textValues(buf []byte, lo, hi int) []byte {
	for i := lo; i < hi; i++ {
		if st := e.series.at(i); hasLine(partValues, st) {
			buf = e.text.value.append(buf, st.Labels, st.Value.V)
		}
	}
	return buf
}

func (e *kpiEntry) textStatus(buf []byte, lo, hi int) []byte {
	for i := lo; i < hi; i++ {
		if st := e.series.at(i); hasLine(partStatus, st) {
			buf = e.text.status.append(buf, st.Labels, st.Status.Number())
		}
	}
	return buf
}

func (e *kpiEntry) textBenchmarks(buf []byte, lo, hi int) []byte {
	if len(e.k.OwnSeries) == 0 {
		return buf
	}
	for i := lo; i < hi; i++ {
		if st := e.series.at(i); e.k.IsBenchmark(st.Labels) {
			buf = e.text.benchmark.append(buf, st.Labels, 1)
		}
	}
	return buf
}

func (e *kpiEntry) textThresholds(buf []byte, lo, hi int) []byte {
	for _, o := range e.thresholdOrder[lo:hi] {
		st := e.series.at(int(o >> 1))
		if o&1 == 0 {
			buf = e.text.amber.append(buf, st.Labels, st.Thresholds.Amber.Value)
		} else {
			buf = e.text.red.append(buf, st.Labels, st.Thresholds.Red.Value)
		}
	}
	return buf
}

func (e *kpiEntry) textPeriods(buf []byte, lo, hi int) []byte {
	for i := lo; i < hi; i++ {
		if st := e.series.at(i); hasLine(partPeriods, st) {
			buf = e.text.period.append(buf, st.Labels, unixSeconds(st.Period))
		}
	}
	return buf
}

func (s *Snapshot) textMaxAges(buf []byte, _, _ int) []byte {
	for _, e := range s.kpis {
		if e.k.MaxAge > 0 {
			buf = e.text.maxAge.append(buf, nil, e.k.MaxAge.Seconds())
		}
	}
	return buf
}

// textInfo writes the info lines in registry order: by their label values
// in label name order, and direction and help sort before kpi.
func (s *Snapshot) textInfo(buf []byte, _, _ int) []byte {
	es := slices.Clone(s.kpis)
	slices.SortStableFunc(es, func(a, b *kpiEntry) int {
		if c := strings.Compare(a.infoLabel[2], b.infoLabel[2]); c != 0 {
			return c
		}
		return strings.Compare(a.infoLabel[3], b.infoLabel[3])
	})
	for _, e := range es {
		buf = e.text.info.append(buf, nil, 1)
	}
	return buf
}
