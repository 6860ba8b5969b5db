package store

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/carewatch/carewatch/kpi"
)

func TestSortChangesOrdersByKPIThenLabels(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ks := []*kpi.KPI{{Name: "b_kpi"}, {Name: "a_kpi"}, {Name: "c_kpi"}}
	for _, n := range []int{0, 1, 2, 17, 5000} {
		var changes []kpi.StatusChange
		seen := make(map[string]bool)
		for len(changes) < n {
			k := ks[r.IntN(len(ks))]
			labels := []string{"team_" + strconv.Itoa(r.IntN(50)), strconv.Itoa(r.IntN(40))}
			key := k.Name + "|" + strings.Join(labels, "|")
			if seen[key] {
				continue
			}
			seen[key] = true
			// Value tells the changes apart once they are moved.
			changes = append(changes, kpi.StatusChange{KPI: k, Labels: labels, Value: kpi.Known(float64(len(changes)))})
		}
		want := slices.Clone(changes)
		slices.SortFunc(want, func(a, b kpi.StatusChange) int {
			if c := strings.Compare(a.KPI.Name, b.KPI.Name); c != 0 {
				return c
			}
			return slices.Compare(a.Labels, b.Labels)
		})
		sortChanges(changes)
		for i := range want {
			if changes[i].KPI != want[i].KPI || !slices.Equal(changes[i].Labels, want[i].Labels) || changes[i].Value != want[i].Value {
				t.Fatalf("%d changes: position %d holds %s%v (%v), want %s%v (%v)", n, i,
					changes[i].KPI.Name, changes[i].Labels, changes[i].Value, want[i].KPI.Name, want[i].Labels, want[i].Value)
			}
		}
	}
}

func TestApplyStatusRecordSetsEveryStatusItRecords(t *testing.T) {
	for _, sorted := range []bool{true, false} {
		var s Store
		s.statuses.set([]int64{5, 7}, []kpi.Status{kpi.StatusGreen, kpi.StatusAmber})
		rec := &statusRecord{last: 12}
		add := []int64{3, 5, 9}
		if !sorted {
			add = []int64{9, 3, 5}
		}
		for _, id := range add {
			rec.add(id, kpi.StatusRed)
		}
		s.applyStatusRecord(rec)
		want := map[int64]kpi.Status{3: kpi.StatusRed, 5: kpi.StatusRed, 7: kpi.StatusAmber, 9: kpi.StatusRed}
		if s.statuses.len() != len(want) || s.statusSeen != 12 {
			t.Errorf("sorted %v: %d statuses held, seen %d", sorted, s.statuses.len(), s.statusSeen)
		}
		for id, st := range want {
			if got, ok := s.statuses.get(id); !ok || got != st {
				t.Errorf("sorted %v: series %d holds %v, %v; want %v", sorted, id, got, ok, st)
			}
		}
	}
}
