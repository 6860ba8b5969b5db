package store

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestIDMap(t *testing.T) {
	var m idMap[string]
	m.set([]int64{30, 10, 20, 10}, []string{"thirty", "ten?", "twenty", "ten"})

	t.Run("set keeps IDs sorted and the last value given", func(t *testing.T) {
		if !slices.Equal(m.ids, []int64{10, 20, 30}) || !slices.Equal(m.vals, []string{"ten", "twenty", "thirty"}) {
			t.Errorf("ids %v vals %v", m.ids, m.vals)
		}
	})
	t.Run("set merges new IDs and replaces old ones", func(t *testing.T) {
		m.set([]int64{25, 5, 20, 40}, []string{"twenty-five", "five", "TWENTY", "forty"})
		if !slices.Equal(m.ids, []int64{5, 10, 20, 25, 30, 40}) ||
			!slices.Equal(m.vals, []string{"five", "ten", "TWENTY", "twenty-five", "thirty", "forty"}) {
			t.Errorf("ids %v vals %v", m.ids, m.vals)
		}
	})
	t.Run("set takes sorted IDs as they come, the last value of a repeated one", func(t *testing.T) {
		var n idMap[string]
		n.set([]int64{10, 30}, []string{"ten", "thirty"})
		ids, vals := []int64{5, 10, 10, 20, 40}, []string{"five", "ten?", "TEN", "twenty", "forty"}
		n.set(ids, vals)
		if !slices.Equal(n.ids, []int64{5, 10, 20, 30, 40}) ||
			!slices.Equal(n.vals, []string{"five", "TEN", "twenty", "thirty", "forty"}) {
			t.Errorf("ids %v vals %v", n.ids, n.vals)
		}
		unsorted := []int64{40, 5}
		n.set(unsorted, []string{"FORTY", "FIVE"})
		if !slices.Equal(unsorted, []int64{40, 5}) {
			t.Errorf("set reordered its argument: %v", unsorted)
		}
		if v, _ := n.get(40); v != "FORTY" {
			t.Errorf("get(40) = %q", v)
		}
	})
	t.Run("get finds held IDs only", func(t *testing.T) {
		if v, ok := m.get(25); !ok || v != "twenty-five" {
			t.Errorf("get(25) = %q, %v", v, ok)
		}
		if v, ok := m.get(26); ok {
			t.Errorf("get(26) = %q, found", v)
		}
	})
	t.Run("update changes held IDs only", func(t *testing.T) {
		if !m.update(30, "THIRTY") {
			t.Error("update(30) found nothing")
		}
		if m.update(31, "thirty-one") {
			t.Error("update(31) found an ID")
		}
		if v, _ := m.get(30); v != "THIRTY" || m.len() != 6 {
			t.Errorf("get(30) = %q with %d IDs", v, m.len())
		}
	})
	t.Run("join reports every queried ID in order", func(t *testing.T) {
		query := []int64{1, 5, 6, 25, 40, 41}
		var got []string
		m.join(query, func(i int, v string, ok bool) {
			if !ok {
				v = "-"
			}
			got = append(got, v)
		})
		if want := []string{"-", "five", "-", "twenty-five", "forty", "-"}; !slices.Equal(got, want) {
			t.Errorf("join %v = %v, want %v", query, got, want)
		}
	})
	t.Run("clear forgets everything", func(t *testing.T) {
		m.clear()
		if _, ok := m.get(5); ok || m.len() != 0 {
			t.Error("an ID survived clear")
		}
	})
}

func TestIDMapJoinAgreesWithGet(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var m idMap[int64]
	ids := make([]int64, 5000)
	for i := range ids {
		ids[i] = r.Int64N(20000)
	}
	m.set(ids, ids)
	for _, n := range []int{0, 1, 7, 100, 3000} {
		query := make([]int64, n)
		for i := range query {
			query[i] = r.Int64N(21000) - 500
		}
		slices.Sort(query)
		query = slices.Compact(query)
		m.join(query, func(i int, v int64, ok bool) {
			want, wantOK := m.get(query[i])
			if ok != wantOK || v != want {
				t.Fatalf("%d queries: join(%d) = %d, %v; get = %d, %v", n, query[i], v, ok, want, wantOK)
			}
		})
	}
}
