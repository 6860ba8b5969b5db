package exporter

import (
	"slices"
	"sort"

	"github.com/carewatch/carewatch/kpi"
)

// defaultPageShift makes pages of 32 series states (about 4.5 KB): an update
// that changes one series of a KPI copies its page, not the KPI's series.
const defaultPageShift = 5

// pagedSeries holds a KPI entry's series states, in order, in pages of
// 1<<shift states (the last may be shorter). Snapshots made by an update
// share the pages it did not change with the snapshot they came from, so
// that a run changing a few series of many KPIs copies a few pages of each
// rather than every series of every KPI it touches. Pages are never
// written once a snapshot holds them.
type pagedSeries struct {
	pages [][]kpi.SeriesState
	n     int
	shift uint8
}

// paged cuts series into pages of 1<<shift states without copying them.
func paged(series []kpi.SeriesState, shift uint8) pagedSeries {
	size := 1 << shift
	ps := make([][]kpi.SeriesState, 0, (len(series)+size-1)/size)
	for lo := 0; lo < len(series); lo += size {
		hi := min(lo+size, len(series))
		ps = append(ps, series[lo:hi:hi])
	}
	return pagedSeries{pages: ps, n: len(series), shift: shift}
}

// len is the number of series.
func (p *pagedSeries) len() int { return p.n }

// at returns the state at position i, which the caller must not change.
func (p *pagedSeries) at(i int) *kpi.SeriesState {
	return &p.pages[i>>p.shift][i&(1<<p.shift-1)]
}

// search finds the position of the series with the given label values,
// ordered by cmp, as slices.BinarySearchFunc does.
func (p *pagedSeries) search(labels []string, cmp func(a, b []string) int) (int, bool) {
	i := sort.Search(p.n, func(i int) bool { return cmp(p.at(i).Labels, labels) >= 0 })
	return i, i < p.n && cmp(p.at(i).Labels, labels) == 0
}

// pageWriter makes a copy of a pagedSeries whose pages are copied only
// when first written: the copy shares every page it does not write with
// the original.
type pageWriter struct {
	p      pagedSeries
	copied []bool
}

func newPageWriter(p *pagedSeries) *pageWriter {
	return &pageWriter{
		p:      pagedSeries{pages: slices.Clone(p.pages), n: p.n, shift: p.shift},
		copied: make([]bool, len(p.pages)),
	}
}

// set replaces the state at position i.
func (w *pageWriter) set(i int, st kpi.SeriesState) {
	k := i >> w.p.shift
	if !w.copied[k] {
		w.p.pages[k] = slices.Clone(w.p.pages[k])
		w.copied[k] = true
	}
	w.p.pages[k][i&(1<<w.p.shift-1)] = st
}
