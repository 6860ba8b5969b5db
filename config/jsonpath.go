package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// StepKind is the kind of one step of a JSON path.
type StepKind byte

// The kinds of JSON path step.
const (
	// StepKey takes a member of an object: .name or ['name'].
	StepKey StepKind = iota + 1
	// StepIndex takes an element of an array: [3].
	StepIndex
	// StepAll takes every element of an array, or every member of an
	// object: [*] or .*.
	StepAll
)

// MaxJSONPathLength bounds a JSON path's text.
const MaxJSONPathLength = 500

// PathStep is one step of a JSON path.
type PathStep struct {
	Kind  StepKind
	Key   string
	Index int
}

// JSONPath is a parsed path into a JSON document, in the subset of JSONPath
// that turns an API's answer into rows: $ for the root (or the row, in a
// field path), .name and ['name'] for an object's member, [n] for an array's
// element, [*] and .* for all of them. Filters, slices and recursive descent
// are not supported.
type JSONPath struct {
	Text  string
	Steps []PathStep
}

// String returns the path as written.
func (p *JSONPath) String() string { return p.Text }

// Wildcards reports whether the path has a [*] or .* step.
func (p *JSONPath) Wildcards() bool {
	for _, s := range p.Steps {
		if s.Kind == StepAll {
			return true
		}
	}
	return false
}

// ParseJSONPath parses a JSON path. With relative, the path starts at a row
// and may begin with a bare name (location.code); else it must start with $.
func ParseJSONPath(s string, relative bool) (*JSONPath, error) {
	if len(s) > MaxJSONPathLength {
		return nil, fmt.Errorf("the path is %d characters long, more than %d", len(s), MaxJSONPathLength)
	}
	p := &JSONPath{Text: s}
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, errors.New("the path is empty")
	}
	i, off := 0, 1 // off turns an index into t into a character position in s
	switch {
	case t[0] == '$' || t[0] == '@':
		i = 1
		if i < len(t) && t[i] != '.' && t[i] != '[' {
			return nil, fmt.Errorf("path %q: expected . or [ after %c", s, t[0])
		}
	case !relative:
		return nil, fmt.Errorf("path %q must start with $ (the document's root)", s)
	case t[0] != '[':
		// A relative path's first member needs no dot: location.code.
		t, off = "."+t, 0
	}
	for i < len(t) {
		switch t[i] {
		case '.':
			i++
			if i < len(t) && t[i] == '.' {
				return nil, fmt.Errorf("path %q: recursive descent (..) is not supported", s)
			}
			if i < len(t) && t[i] == '*' {
				p.Steps = append(p.Steps, PathStep{Kind: StepAll})
				i++
				continue
			}
			start := i
			for i < len(t) && t[i] != '.' && t[i] != '[' {
				i++
			}
			name := t[start:i]
			if name == "" || strings.ContainsAny(name, " \t]'\"") {
				return nil, fmt.Errorf("path %q: %q is not a member name (write ['a name'] for one with spaces)", s, name)
			}
			p.Steps = append(p.Steps, PathStep{Kind: StepKey, Key: name})
		case '[':
			end := strings.IndexByte(t[i:], ']')
			if q := t[i+1:]; len(q) > 0 && (q[0] == '\'' || q[0] == '"') {
				// A quoted name may hold a ]; find the closing quote first.
				close := strings.IndexByte(q[1:], q[0])
				if close < 0 || len(q) < close+3 || q[close+2] != ']' {
					return nil, fmt.Errorf("path %q: the quoted name at character %d is not closed", s, i+off)
				}
				name := q[1 : close+1]
				if name == "" {
					return nil, fmt.Errorf("path %q: an empty member name", s)
				}
				p.Steps = append(p.Steps, PathStep{Kind: StepKey, Key: name})
				i += close + 4
				continue
			}
			if end < 0 {
				return nil, fmt.Errorf("path %q: the [ at character %d is not closed", s, i+off)
			}
			inner := strings.TrimSpace(t[i+1 : i+end])
			switch {
			case inner == "*":
				p.Steps = append(p.Steps, PathStep{Kind: StepAll})
			default:
				n, err := strconv.Atoi(inner)
				if err != nil || n < 0 || strings.HasPrefix(inner, "+") {
					return nil, fmt.Errorf("path %q: [%s] is not supported: use [n] (n from 0), [*] or ['name']", s, inner)
				}
				p.Steps = append(p.Steps, PathStep{Kind: StepIndex, Index: n})
			}
			i += end + 1
		default:
			return nil, fmt.Errorf("path %q: unexpected %q at character %d", s, t[i], i+off)
		}
	}
	return p, nil
}
