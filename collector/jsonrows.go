package collector

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/carewatch/carewatch/config"
)

// jsonNode is a value a JSON path found, with the concrete path to it
// ($.data[3].location), for errors.
type jsonNode struct {
	value any
	path  string
}

// walkPath follows steps from v, found at path at, and returns every value
// they lead to, in document order (an object's members in name order). A
// step that finds nothing (a missing member, an index past the end, a member
// of something that is not an object) ends that branch.
func walkPath(v any, steps []config.PathStep, at string) []jsonNode {
	if len(steps) == 0 {
		return []jsonNode{{v, at}}
	}
	step, rest := steps[0], steps[1:]
	switch step.Kind {
	case config.StepKey:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		child, ok := obj[step.Key]
		if !ok {
			return nil
		}
		return walkPath(child, rest, at+memberPath(step.Key))
	case config.StepIndex:
		arr, ok := v.([]any)
		if !ok || step.Index >= len(arr) {
			return nil
		}
		return walkPath(arr[step.Index], rest, at+"["+strconv.Itoa(step.Index)+"]")
	case config.StepAll:
		var out []jsonNode
		switch x := v.(type) {
		case []any:
			for i, child := range x {
				out = append(out, walkPath(child, rest, at+"["+strconv.Itoa(i)+"]")...)
			}
		case map[string]any:
			for _, k := range sortedMapKeys(x) {
				out = append(out, walkPath(x[k], rest, at+memberPath(k))...)
			}
		}
		return out
	}
	return nil
}

func memberPath(key string) string {
	if isPlainMember(key) {
		return "." + key
	}
	return "[" + strconv.Quote(key) + "]"
}

func isPlainMember(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func sortedMapKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// jsonField is one column of a JSON answer's rows: a path from the row.
type jsonField struct {
	name string
	path *config.JSONPath
}

// jsonKind names a JSON value's kind, for errors.
func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("a %T", v)
}

// jsonTable turns a decoded JSON document into a table: rows found by the
// rows path, columns by the field paths from each row (or, without fields,
// the members of the row objects). A field a row lacks is a missing value;
// a field no row has is an error, since that is what a renamed field looks
// like. Numbers stay as their text, so that nothing is lost to rounding
// before the Mapper reads them.
func jsonTable(doc any, rows *config.JSONPath, fields []jsonField) (*table, error) {
	nodes := walkPath(doc, rows.Steps, "$")
	if len(nodes) == 0 {
		hint := ""
		if obj, ok := doc.(map[string]any); ok {
			hint = fmt.Sprintf("; the answer's top-level members: %s", columnList(sortedMapKeys(obj)))
		} else {
			hint = fmt.Sprintf("; the answer is %s", jsonKind(doc))
		}
		return nil, fmt.Errorf("the rows path %s finds nothing in the answer%s", rows, hint)
	}
	// $.data means the same as $.data[*] when it finds one array.
	if len(nodes) == 1 && !rows.Wildcards() {
		if arr, ok := nodes[0].value.([]any); ok {
			base := nodes[0].path
			nodes = make([]jsonNode, len(arr))
			for i, v := range arr {
				nodes[i] = jsonNode{v, base + "[" + strconv.Itoa(i) + "]"}
			}
		}
	}
	t := &table{}
	if len(fields) == 0 {
		names := map[string]bool{}
		for _, n := range nodes {
			obj, ok := n.value.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s is %s, not an object: give http.fields to say which values are the columns", n.path, jsonKind(n.value))
			}
			for k := range obj {
				names[k] = true
			}
		}
		for k := range names {
			p := &config.JSONPath{Text: memberPath(k)[1:], Steps: []config.PathStep{{Kind: config.StepKey, Key: k}}}
			fields = append(fields, jsonField{name: k, path: p})
		}
		sort.Slice(fields, func(i, j int) bool { return fields[i].name < fields[j].name })
	}
	found := make([]int, len(fields))
	for _, f := range fields {
		t.columns = append(t.columns, f.name)
	}
	for _, n := range nodes {
		values := make([]any, len(fields))
		for i, f := range fields {
			got := walkPath(n.value, f.path.Steps, n.path)
			if len(got) == 0 {
				continue // absent: a missing value
			}
			found[i]++
			switch v := got[0].value.(type) {
			case nil, string, bool:
				values[i] = v
			case json.Number:
				values[i] = string(v)
			default:
				return nil, fmt.Errorf("%s (field %q) is %s, not a value", got[0].path, f.name, jsonKind(v))
			}
		}
		t.rows = append(t.rows, tableRow{ref: n.path, values: values})
	}
	for i, f := range fields {
		if found[i] == 0 && len(nodes) > 0 {
			return nil, fmt.Errorf("field %q (path %s) is in none of the %d rows found by %s: has the API renamed it?", f.name, f.path, len(nodes), rows)
		}
	}
	return t, nil
}
