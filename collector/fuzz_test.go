package collector

import (
	"bytes"
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// The parsers read other people's files and answers: whatever they are
// given, they return a value or an error, never a panic, and what they
// return keeps its promises. Run one with, e.g.,
// go test ./collector -run '^$' -fuzz FuzzReadCSV -fuzztime 2m.

func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("team,vacant\r\nnorth,0.1\r\n"), 1, byte(','), false)
	f.Add([]byte("\ufefftitle,,\r\n\r\na;b;c\r\n\"x;y\";2;3\r\n;;\r\n"), 3, byte(';'), false)
	f.Add([]byte("a,b\r\n\"open,1\r\n"), 1, byte(','), false)
	f.Add([]byte("a\tb\n1\t\n\t\n"), 1, byte('\t'), false)
	f.Add([]byte("caf\xe9,x\r\n1,2\r\n"), 1, byte(','), true)
	f.Add([]byte("\xff\xfea\x00"), 1, byte(','), false)
	f.Fuzz(func(t *testing.T, data []byte, headerRow int, delim byte, cp1252 bool) {
		opts := config.TableOptions{Format: config.FormatCSV, HeaderRow: headerRow % 8, Delimiter: string(rune(delim)), Encoding: config.EncodingUTF8}
		if cp1252 {
			opts.Encoding = config.EncodingWindows1252
		}
		if delim == '"' || delim == '\r' || delim == '\n' || delim >= utf8.RuneSelf || delim == 0 {
			opts.Delimiter = ","
		}
		tb, err := readCSV(context.Background(), data, opts)
		if err != nil {
			if tb != nil {
				t.Fatal("a table and an error")
			}
			return
		}
		for _, r := range tb.rows {
			if len(r.values) != len(tb.columns) {
				t.Fatalf("%s has %d values for %d columns", r.ref, len(r.values), len(tb.columns))
			}
			if blankValues(r.values) {
				t.Fatalf("%s is blank but was kept", r.ref)
			}
			for _, v := range r.values {
				if s, _ := v.(string); opts.Encoding == config.EncodingUTF8 && !utf8.ValidString(s) {
					t.Fatalf("%s holds invalid UTF-8", r.ref)
				}
			}
		}
	})
}

func blankValues(vs []any) bool {
	for _, v := range vs {
		if strings.TrimSpace(cellText(v)) != "" {
			return false
		}
	}
	return true
}

func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{"1,234", "-1,234,567.5", "14.2%", " 14.2 % ", "1e3%", "[c]", "..", "x", "", "NaN", "1,23", ",123", "1,,234", "+1,234", "0.142", "1e400", "-0", "#DIV/0!", "12,5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseNumber(s, false)
		if err != nil {
			if v.Valid {
				t.Fatal("a value and an error")
			}
			return
		}
		if v.Valid && (math.IsNaN(v.V) || math.IsInf(v.V, 0)) {
			t.Fatalf("%q gives %v: not finite", s, v.V)
		}
		p, perr := parseNumber(s, true)
		if perr != nil {
			t.Fatalf("%q reads as a number but not as a percentage: %v", s, perr)
		}
		if p.Valid != v.Valid {
			t.Fatalf("%q: %v as a number, %v as a percentage", s, v, p)
		}
		if !v.Valid || strings.HasSuffix(strings.TrimSpace(s), "%") {
			return
		}
		// As a percentage, the same text is a hundredth (the text is
		// shifted, not divided, so allow the last bit).
		if want := v.V / 100; p.V != want && math.Abs(p.V-want) > 1e-15*math.Max(1, math.Abs(want)) && !(want == 0 && p.V == 0) {
			if !math.IsInf(p.V, 0) && p.V != 0 {
				t.Fatalf("%q: %v as a percentage, want %v", s, p.V, want)
			}
		}
	})
}

func FuzzExpression(f *testing.F) {
	for _, s := range []string{
		"a / (a + b)", `"Vacant FTE" / ("Vacant FTE" + "In post FTE")`, "-a * -(b - 3.5)", "((((a))))", "a / 0", "1 / (a - a)",
		"a +", "(a", `"unclosed`, "a $ b", strings.Repeat("(", 70) + "a" + strings.Repeat(")", 70), "1..2", ".5 * a",
	} {
		f.Add(s, "1.5", "x")
	}
	f.Fuzz(func(t *testing.T, expr, a, b string) {
		e, err := config.ParseExpression(expr)
		if err != nil {
			return
		}
		// What String renders parses back to the same expression.
		again, err := config.ParseExpression(e.String())
		if err != nil || again.String() != e.String() {
			t.Fatalf("%q renders as %q, which reads back as %v (%v)", expr, e.String(), again, err)
		}
		cells := map[string]any{}
		for i, c := range e.Columns() {
			if i%2 == 0 {
				cells[c] = a
			} else {
				cells[c] = b
			}
		}
		v, err := evalExpr(e, func(col string) (kpi.Value, error) { return numberValue(cells[col]) })
		if err == nil && v.Valid && (math.IsNaN(v.V) || math.IsInf(v.V, 0)) {
			t.Fatalf("%q gives %v: not finite", expr, v.V)
		}
	})
}

func FuzzJSONRows(f *testing.F) {
	f.Add([]byte(`{"data": [{"a": {"b": 1}, "c": "x"}, {"a": null}]}`), "$.data[*]", "a.b")
	f.Add([]byte(`[[1, 2], [3]]`), "$[*][*]", "$")
	f.Add([]byte(`{"x": {"y z": [true, "1"]}}`), "$.x['y z']", "@")
	f.Add([]byte(`{"r": {"b": {"k": 1}, "a": {"k": 2}}}`), "$.r.*", "k")
	f.Add([]byte(`{"data": [1,, 2]}`), "$.data", "[0]")
	f.Fuzz(func(t *testing.T, data []byte, rows, field string) {
		doc, err := decodeJSON(data)
		if err != nil {
			return
		}
		rp, err := config.ParseJSONPath(rows, false)
		if err != nil {
			return
		}
		fp, err := config.ParseJSONPath(field, true)
		if err != nil {
			return
		}
		tb, err := jsonTable(doc, rp, []jsonField{{name: "f", path: fp}})
		if err != nil {
			return
		}
		for _, r := range tb.rows {
			if len(r.values) != 1 {
				t.Fatalf("%s has %d values", r.ref, len(r.values))
			}
			switch r.values[0].(type) {
			case nil, string, bool:
			default:
				t.Fatalf("%s: a %T is not a cell", r.ref, r.values[0])
			}
		}
	})
}

func FuzzReadXLSX(f *testing.F) {
	if data, err := os.ReadFile("../examples/hr/data/establishment_2025-03-31.xlsx"); err == nil {
		f.Add(data, "Establishment", 4)
		f.Add(data[:len(data)/3], "", 1)
		f.Add(bytes.Replace(data, []byte("sheet"), []byte("shXet"), 1), "", 1)
	}
	f.Add([]byte("PK\x03\x04"), "", 1)
	f.Fuzz(func(t *testing.T, data []byte, sheet string, header int) {
		tb, err := readXLSX(context.Background(), data, config.TableOptions{Format: config.FormatXLSX, Sheet: sheet, HeaderRow: header % 8}, 1<<20)
		if err != nil {
			return
		}
		for _, r := range tb.rows {
			if len(r.values) != len(tb.columns) {
				t.Fatalf("%s has %d values for %d columns", r.ref, len(r.values), len(tb.columns))
			}
		}
	})
}

func TestShiftDecimalMovesThePointTwoPlaces(t *testing.T) {
	for in, want := range map[string]string{
		"0.142": "14.2", "0.2": "20", "1": "100", "0": "0", "-0.05": "-5", "0.123456": "12.3456", "12.5": "1250", "0.001": "0.1",
	} {
		if got := shiftDecimal(in); got != want {
			t.Errorf("shiftDecimal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCustomNumberFormatsAreClassified(t *testing.T) {
	for code, want := range map[string]cellKind{
		"0.0%":                      percentNumber,
		`0.0"%"`:                    plainNumber, // a literal % in quotes
		"dd/mm/yyyy":                dateNumber,
		"[$-809]dd mmmm yyyy;@":     dateNumber,
		"[h]:mm:ss":                 dateNumber,
		"#,##0":                     plainNumber,
		"#,##0.00;[Red]-#,##0.00":   plainNumber,
		`_-"£"* #,##0.00_-`:         plainNumber,
		`0 "days"`:                  plainNumber,
		"0.00E+00":                  plainNumber,
		`[$£-809]#,##0.00`:          plainNumber,
		"mmm-yy":                    dateNumber,
		`\d\a\y 0`:                  plainNumber,
		"General":                   plainNumber,
		"[Blue]0.0%;[Red]-0.0%":     percentNumber,
		"yyyy-mm-dd hh:mm":          dateNumber,
		`#,##0 "FTE";-#,##0 "FTE"`:  plainNumber,
		"0;-0;;@":                   plainNumber,
		"[>=100]0;[<100]0.0":        plainNumber,
		`0.0\%`:                     plainNumber,
		"mm:ss.0":                   dateNumber,
		`"Week "0`:                  plainNumber,
		"0.000":                     plainNumber,
		"#,##0.0,,\"m\"":            plainNumber,
		"d-mmm":                     dateNumber,
		"ddd":                       dateNumber,
		"[$-F800]dddd, mmmm dd, yy": dateNumber,
	} {
		if got := customFormatKind(code); got != want {
			t.Errorf("customFormatKind(%q) = %d, want %d", code, got, want)
		}
	}
}
