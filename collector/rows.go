package collector

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// rowFilter is one config.RowFilter, ready to test rows.
type rowFilter struct {
	path   string // filters[0], for errors
	column string
	values map[string]bool
	// keepIf is whether a row whose cell is among values is kept.
	keepIf bool
}

func newFilters(fs []config.RowFilter) []rowFilter {
	out := make([]rowFilter, 0, len(fs))
	for i, f := range fs {
		rf := rowFilter{path: fmt.Sprintf("filters[%d]", i), column: f.Column, values: map[string]bool{}}
		var list []string
		switch {
		case f.Equals != nil:
			list, rf.keepIf = []string{*f.Equals}, true
		case f.NotEquals != nil:
			list, rf.keepIf = []string{*f.NotEquals}, false
		case f.In != nil:
			list, rf.keepIf = f.In, true
		default:
			list, rf.keepIf = f.NotIn, false
		}
		for _, v := range list {
			rf.values[foldCell(v)] = true
		}
		out = append(out, rf)
	}
	return out
}

// foldCell is a cell's text as filters and lookups compare it: trimmed and
// lower-cased.
func foldCell(v any) string {
	return strings.ToLower(strings.TrimSpace(cellText(v)))
}

// cellText is a cell as text.
func cellText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return formatPeriod(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case workbookPercent:
		return x.String()
	}
	return fmt.Sprint(v)
}

// filter keeps the rows of t that pass every filter.
func filter(t *table, filters []rowFilter) error {
	if len(filters) == 0 {
		return nil
	}
	idx := make([]int, len(filters))
	for i, f := range filters {
		if idx[i] = t.column(f.column); idx[i] < 0 {
			return fmt.Errorf("%s has no column %q (named by %s.column); columns present: %s", t.where, f.column, f.path, columnList(t.columns))
		}
	}
	kept := t.rows[:0]
	for _, r := range t.rows {
		keep := true
		for i, f := range filters {
			if f.values[foldCell(r.values[idx[i]])] != f.keepIf {
				keep = false
				break
			}
		}
		if keep {
			kept = append(kept, r)
		}
	}
	t.rows = kept
	return nil
}

// mapTables maps the rows of every table of one run. Any row that does not
// map fails the run: errors say which table, which row, which column.
func mapTables(m *Mapper, tables []*table, run kpi.RunInfo) ([]kpi.Observation, error) {
	mr := m.NewRun()
	var obs []kpi.Observation
	for _, t := range tables {
		if err := mr.Bind(t.where, t.columns); err != nil {
			return nil, err
		}
		for _, r := range t.rows {
			o, err := mr.Map(t.where+", "+r.ref, r.values, run)
			if err != nil {
				return nil, err
			}
			obs = append(obs, o...)
		}
	}
	return obs, nil
}
