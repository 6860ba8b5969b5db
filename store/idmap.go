package store

import (
	"cmp"
	"slices"
)

// idMap maps series IDs to values, kept as two slices sorted by ID.
//
// A run may carry a million series, and the store looks each of them up in
// what it remembers at least twice a run. Runs visit their series in ID
// order (see batch), so the lookups are one merge of two sorted lists
// instead of a million probes into a hash table far larger than the CPU's
// caches.
type idMap[V any] struct {
	ids  []int64
	vals []V
}

// len returns the number of IDs in m.
func (m *idMap[V]) len() int { return len(m.ids) }

// get returns the value of id.
func (m *idMap[V]) get(id int64) (V, bool) {
	if i, ok := slices.BinarySearch(m.ids, id); ok {
		return m.vals[i], true
	}
	var zero V
	return zero, false
}

// update sets the value of id if m holds it, and reports whether it did.
func (m *idMap[V]) update(id int64, v V) bool {
	if i, ok := slices.BinarySearch(m.ids, id); ok {
		m.vals[i] = v
		return true
	}
	return false
}

// join calls fn, in order, for every ID of ids (sorted, ascending) with its
// value in m and whether m holds it.
func (m *idMap[V]) join(ids []int64, fn func(i int, v V, ok bool)) {
	j := 0
	var zero V
	for i, id := range ids {
		// Gallop past IDs of m below id: runs usually touch a small part of
		// what a long-running process remembers.
		if j < len(m.ids) && m.ids[j] < id {
			j += sortSearch(m.ids[j:], id)
		}
		if j < len(m.ids) && m.ids[j] == id {
			fn(i, m.vals[j], true)
		} else {
			fn(i, zero, false)
		}
	}
}

// sortSearch returns the index of the first of ids (sorted) not below id,
// looking close to the start first.
func sortSearch(ids []int64, id int64) int {
	hi := 1
	for hi < len(ids) && ids[hi] < id {
		hi *= 2
	}
	lo := hi / 2
	hi = min(hi+1, len(ids))
	n, _ := slices.BinarySearch(ids[lo:hi], id)
	return lo + n
}

// set adds or replaces the values of ids, which need not be sorted.
func (m *idMap[V]) set(ids []int64, vals []V) {
	if len(ids) == 0 {
		return
	}
	if !slices.IsSorted(ids) {
		// Sorted, a copy: the caller's slices stay as they are.
		type pair struct {
			id int64
			v  V
		}
		add := make([]pair, len(ids))
		for i := range ids {
			add[i] = pair{ids[i], vals[i]}
		}
		slices.SortStableFunc(add, func(a, b pair) int { return cmp.Compare(a.id, b.id) })
		ids, vals = make([]int64, len(add)), make([]V, len(add))
		for i, p := range add {
			ids[i], vals[i] = p.id, p.v
		}
	}
	// A run's new series come sorted already, a million at a time: sorting
	// them again would cost more than the merge.
	outIDs := make([]int64, 0, len(m.ids)+len(ids))
	outVals := make([]V, 0, len(m.ids)+len(ids))
	i := 0
	for k := range ids {
		// The last value given for an ID wins.
		if k+1 < len(ids) && ids[k+1] == ids[k] {
			continue
		}
		for i < len(m.ids) && m.ids[i] < ids[k] {
			outIDs, outVals = append(outIDs, m.ids[i]), append(outVals, m.vals[i])
			i++
		}
		if i < len(m.ids) && m.ids[i] == ids[k] {
			i++
		}
		outIDs, outVals = append(outIDs, ids[k]), append(outVals, vals[k])
	}
	outIDs, outVals = append(outIDs, m.ids[i:]...), append(outVals, m.vals[i:]...)
	m.ids, m.vals = outIDs, outVals
}

// clear forgets every ID.
func (m *idMap[V]) clear() { m.ids, m.vals = nil, nil }
