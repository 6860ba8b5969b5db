package store

import (
	"encoding/json"
	"fmt"

	"github.com/carewatch/carewatch/kpi"
)

// labelReader turns the series' labels, as PostgreSQL prints a jsonb
// object of strings ({"team": "north", "service": "children"}), into label
// values aligned with a KPI's labels. Reading a million series at start-up,
// encoding/json's map decoding would cost more than the query: this reads
// the common form directly and leaves anything unusual (escapes, other
// spacing) to encoding/json. It also keeps one copy of each distinct value,
// since a million series share a few thousand team and authority names.
//
// The values of many series are cut from one larger slice, a few thousand
// series at a time, rather than allocated one series at a time.
type labelReader struct {
	interned map[string]string
	m        map[string]string
	slab     []string
}

func newLabelReader() *labelReader {
	return &labelReader{interned: make(map[string]string), m: make(map[string]string)}
}

// labelSlab is how many label values a labelReader allocates at a time.
const labelSlab = 8192

// values returns the label values of doc in the order of k.Labels, or false
// if its label names are not exactly k's.
func (r *labelReader) values(k *kpi.KPI, doc []byte) ([]string, bool, error) {
	n := len(k.Labels)
	if len(r.slab) < n {
		r.slab = make([]string, max(labelSlab, n))
	}
	values := r.slab[:n:n]
	if found, ok := r.fast(k, doc, values); ok {
		if found != n {
			return nil, false, nil
		}
		r.slab = r.slab[n:]
		return values, true, nil
	}
	clear(r.m)
	if err := json.Unmarshal(doc, &r.m); err != nil {
		return nil, false, fmt.Errorf("labels: %w", err)
	}
	aligned, ok := alignLabels(k, r.m)
	if !ok {
		return nil, false, nil
	}
	for i, v := range aligned {
		values[i] = r.intern([]byte(v))
	}
	r.slab = r.slab[n:]
	return values, true, nil
}

// fast reads doc in PostgreSQL's jsonb output form, filling values; it
// returns how many of k's labels it found, and false if doc is not in that
// form (or names a label twice or one k does not have).
func (r *labelReader) fast(k *kpi.KPI, doc []byte, values []string) (int, bool) {
	if len(doc) < 2 || doc[0] != '{' || doc[len(doc)-1] != '}' || len(k.Labels) > 64 {
		return 0, false
	}
	i, found := 1, 0
	var seen uint64
	str := func() ([]byte, bool) {
		if i >= len(doc) || doc[i] != '"' {
			return nil, false
		}
		start := i + 1
		for j := start; j < len(doc); j++ {
			switch doc[j] {
			case '\\':
				return nil, false
			case '"':
				i = j + 1
				return doc[start:j], true
			}
		}
		return nil, false
	}
	if len(doc) == 2 {
		return 0, true
	}
	for {
		name, ok := str()
		if !ok || i+2 > len(doc) || doc[i] != ':' || doc[i+1] != ' ' {
			return 0, false
		}
		i += 2
		v, ok := str()
		if !ok {
			return 0, false
		}
		idx := -1
		for j, l := range k.Labels {
			if l == string(name) {
				idx = j
				break
			}
		}
		if idx < 0 || seen&(1<<idx) != 0 {
			return 0, false
		}
		seen |= 1 << idx
		values[idx] = r.intern(v)
		found++
		switch {
		case i == len(doc)-1:
			return found, true
		case i+2 < len(doc) && doc[i] == ',' && doc[i+1] == ' ':
			i += 2
		default:
			return 0, false
		}
	}
}

func (r *labelReader) intern(b []byte) string {
	if s, ok := r.interned[string(b)]; ok {
		return s
	}
	s := string(b)
	r.interned[s] = s
	return s
}
