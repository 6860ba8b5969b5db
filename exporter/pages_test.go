package exporter

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/carewatch/carewatch/kpi"
)

func compareFirst(a, b []string) int { return strings.Compare(a[0], b[0]) }

// TestPagedSeries holds paged series to the flat slice they were cut from,
// for every page size up to beyond the number of series: positions,
// searches of present and absent series, and writes that copy only the
// pages they touch.
func TestPagedSeries(t *testing.T) {
	flat := make([]kpi.SeriesState, 0, 37)
	for i := range 37 {
		flat = append(flat, kpi.SeriesState{Labels: []string{fmt.Sprintf("s%03d", 2*i+1)}, RunID: int64(i)})
	}
	for shift := range uint8(7) {
		t.Run(fmt.Sprintf("pages of %d", 1<<shift), func(t *testing.T) {
			p := paged(slices.Clone(flat), shift)
			if p.len() != len(flat) {
				t.Fatalf("len %d, want %d", p.len(), len(flat))
			}
			for i := range flat {
				if got := p.at(i).RunID; got != int64(i) {
					t.Fatalf("at(%d) holds state %d", i, got)
				}
			}
			for n := range 2*len(flat) + 2 {
				label := []string{fmt.Sprintf("s%03d", n)}
				wantAt, wantFound := slices.BinarySearchFunc(flat, label, func(st kpi.SeriesState, l []string) int { return compareFirst(st.Labels, l) })
				at, found := p.search(label, compareFirst)
				if at != wantAt || found != wantFound {
					t.Fatalf("search(%s) = %d, %v; want %d, %v", label[0], at, found, wantAt, wantFound)
				}
			}

			w := newPageWriter(&p)
			for _, i := range []int{0, 5, 6, len(flat) - 1} {
				st := *p.at(i)
				st.RunID = 100 + int64(i)
				w.set(i, st)
			}
			for i := range flat {
				if got := p.at(i).RunID; got != int64(i) {
					t.Fatalf("the write changed the original at %d: %d", i, got)
				}
				want := int64(i)
				if i == 0 || i == 5 || i == 6 || i == len(flat)-1 {
					want = 100 + int64(i)
				}
				if got := w.p.at(i).RunID; got != want {
					t.Fatalf("the copy holds %d at %d, want %d", got, i, want)
				}
			}
			for k := range p.pages {
				written := k == 0 || k == 5>>shift || k == 6>>shift || k == (len(flat)-1)>>shift
				shared := &p.pages[k][0] == &w.p.pages[k][0]
				if shared == written {
					t.Errorf("page %d: shared %v, written %v", k, shared, written)
				}
			}
		})
	}
}
