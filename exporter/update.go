package exporter

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/carewatch/carewatch/kpi"
)

// entryDiff is what changed in a KPI entry that Snapshot.with made from old:
// the positions (in the new entry) whose value, status or period lines
// changed, or, with all, that series came or thresholds moved, so that
// positions no longer line up with the old entry's.
type entryDiff struct {
	old                    *kpiEntry
	values, status, period []int
	all, thresholds        bool
}

// changed returns the positions of kind's lines that changed, sorted, or
// true if every line may have.
func (d *entryDiff) changed(kind partKind) ([]int, bool) {
	switch {
	case d.all:
		return nil, true
	case kind == partValues:
		return d.values, false
	case kind == partStatus:
		return d.status, false
	case kind == partPeriods:
		return d.period, false
	case kind == partThresholds:
		return nil, d.thresholds
	case kind == partBenchmarks:
		// Whether a series is a benchmark depends on its labels alone.
		return nil, false
	}
	return nil, true
}

// with returns a snapshot of s with the states of series replacing those of
// the same series (unless of an older period), or added beside them, and health replacing the health
// of every collector. Entries of KPIs the states do not touch are shared
// with s. It leaves out, as problems, what NewSnapshot would; states of
// KPIs s does not export are among them.
func (s *Snapshot) with(series []kpi.SeriesState, health []kpi.CollectorHealth) (*Snapshot, map[*kpiEntry]*entryDiff) {
	n := &Snapshot{
		kpis:      slices.Clone(s.kpis),
		collector: s.collector,
		problems:  slices.Clip(s.problems),
		series:    s.series,
	}
	n.health = cleanHealth(health, n.problem)

	index := make(map[string]int, len(n.kpis))
	for i, e := range n.kpis {
		index[e.k.Name] = i
	}
	updates := make(map[int][]kpi.SeriesState)
	total := 0
	for i := range series {
		st := &series[i]
		if st.KPI == nil {
			n.drop(errors.New("series state without a KPI"))
			continue
		}
		j, ok := index[st.KPI.Name]
		if !ok {
			n.drop(fmt.Errorf("kpi %q: series %s: KPI is not exported", st.KPI.Name, kpi.LabelString(st.KPI, st.Labels)))
			continue
		}
		e := n.kpis[j]
		if err := checkSeries(e.k, st); err != nil {
			n.drop(fmt.Errorf("kpi %q: series %s: %w", e.k.Name, kpi.LabelString(st.KPI, st.Labels), err))
			continue
		}
		updates[j] = append(updates[j], *st)
		total += len(st.Labels)
	}

	// Label values are copied, in one allocation, as NewSnapshot does.
	labels := make([]string, 0, total)
	diffs := make(map[*kpiEntry]*entryDiff, len(updates))
	for j, upd := range updates {
		old := n.kpis[j]
		for i := range upd {
			start := len(labels)
			labels = append(labels, upd[i].Labels...)
			upd[i].Labels = labels[start:len(labels):len(labels)]
			upd[i].KPI = old.k
		}
		slices.SortStableFunc(upd, old.compare)
		upd = slices.CompactFunc(upd, func(a, b kpi.SeriesState) bool {
			if slices.Equal(a.Labels, b.Labels) {
				n.drop(fmt.Errorf("kpi %q: series %s: more than one state; the first is kept", old.k.Name, kpi.LabelString(old.k, b.Labels)))
				return true
			}
			return false
		})
		e, d := old.merge(upd)
		n.kpis[j] = e
		n.series += e.series.len() - old.series.len()
		diffs[e] = d
	}
	return n, diffs
}

// merge returns a copy of e with upd (sorted, one state per series) in
// place of the states of the same series, and what changed. The copy
// shares with e the pages of series that upd leaves as they are.
func (e *kpiEntry) merge(upd []kpi.SeriesState) (*kpiEntry, *entryDiff) {
	// A run usually writes series stored already: each is found by a
	// binary search, and the entry's other series are not compared.
	at := make([]int, len(upd))
	for j := range upd {
		i, found := e.series.search(upd[j].Labels, e.compareLabels)
		if !found {
			return e.mergeNew(upd)
		}
		at[j] = i
	}
	ne := *e
	d := &entryDiff{old: e}
	w := newPageWriter(&e.series)
	for j, p := range at {
		old := e.series.at(p)
		if upd[j].Period.Before(old.Period) {
			continue
		}
		d.note(p, old, &upd[j])
		w.set(p, upd[j])
	}
	ne.series = w.p
	if d.thresholds {
		ne.thresholdOrder = ne.orderThresholds()
	}
	return &ne, d
}

// note records what changed at position p from o to u.
func (d *entryDiff) note(p int, o, u *kpi.SeriesState) {
	if o.Value.Valid != u.Value.Valid || math.Float64bits(o.Value.V) != math.Float64bits(u.Value.V) {
		d.values = append(d.values, p)
	}
	if o.Status != u.Status {
		d.status = append(d.status, p)
	}
	if !o.Period.Equal(u.Period) {
		d.period = append(d.period, p)
	}
	if o.Thresholds != u.Thresholds {
		d.thresholds = true
	}
}

// mergeNew is merge for updates that add series: positions move, so every
// line may have, and every page is new.
func (e *kpiEntry) mergeNew(upd []kpi.SeriesState) (*kpiEntry, *entryDiff) {
	ne := *e
	d := &entryDiff{old: e}
	n := e.series.len()
	out := make([]kpi.SeriesState, 0, n+len(upd))
	i, j := 0, 0
	for i < n || j < len(upd) {
		c := 0
		switch {
		case j == len(upd):
			c = -1
		case i == n:
			c = 1
		default:
			c = e.compareLabels(e.series.at(i).Labels, upd[j].Labels)
		}
		switch {
		case c < 0:
			out = append(out, *e.series.at(i))
			i++
		case c > 0:
			out = append(out, upd[j])
			d.all = true
			j++
		case upd[j].Period.Before(e.series.at(i).Period):
			out = append(out, *e.series.at(i))
			i++
			j++
		default:
			d.note(len(out), e.series.at(i), &upd[j])
			out = append(out, upd[j])
			i++
			j++
		}
	}
	ne.series = paged(out, e.series.shift)
	if d.all || d.thresholds {
		ne.thresholdOrder = ne.orderThresholds()
	}
	return &ne, d
}
