package collector

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/transform"

	"github.com/carewatch/carewatch/config"
)

// table is what a file or an HTTP answer holds, before mapping: named
// columns and rows of cells. A cell is a string, nil (a JSON null or a value
// a path did not find), a bool, or a time.Time (a date cell of a workbook).
type table struct {
	// where names the table in errors: `file "a.csv"`, `GET https://…`.
	where string
	// name is the table's name in a query: see config.TableName.
	name    string
	columns []string
	rows    []tableRow
}

type tableRow struct {
	// ref names the row in errors, as its reader sees it: `row 12` (the
	// spreadsheet's row number, or the CSV line), `$.data[3]`.
	ref    string
	values []any
}

// column returns the position of the column called name, or -1.
func (t *table) column(name string) int {
	for i, c := range t.columns {
		if c == name {
			return i
		}
	}
	return -1
}

// addColumn appends a column whose cells value gives.
func (t *table) addColumn(name string, value func(r *tableRow) any) error {
	if t.column(name) >= 0 {
		return fmt.Errorf("%s already has a column %q", t.where, name)
	}
	t.columns = append(t.columns, name)
	for i := range t.rows {
		t.rows[i].values = append(t.rows[i].values, value(&t.rows[i]))
	}
	return nil
}

// checkEvery is how many rows a reader goes between looks at its context.
const checkEvery = 1024

// utf8BOM is the byte-order mark Excel puts at the start of "CSV UTF-8".
var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// readCSV reads CSV text: the header on the row opts.HeaderRow (counted in
// lines, as a text editor or a spreadsheet shows them), data below it.
// Rows that are blank (every field empty or spaces) are skipped; a row with
// fewer fields than the header is an error, since that is what a file cut
// short looks like.
func readCSV(ctx context.Context, data []byte, opts config.TableOptions) (*table, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("the file is empty")
	}
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
		return nil, errors.New(`the text is UTF-16 (Excel's "Unicode Text"): save it as "CSV UTF-8" or CSV`)
	}
	var r io.Reader
	enc := opts.Encoding
	switch enc {
	case config.EncodingWindows1252:
		r = transform.NewReader(bytes.NewReader(data), charmap.Windows1252.NewDecoder())
	case config.EncodingLatin1:
		r = transform.NewReader(bytes.NewReader(data), charmap.ISO8859_1.NewDecoder())
	default:
		enc = config.EncodingUTF8
		r = bytes.NewReader(bytes.TrimPrefix(data, utf8BOM))
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	delim := ','
	if opts.Delimiter != "" {
		delim, _ = utf8.DecodeRuneInString(opts.Delimiter)
	}
	cr.Comma = delim
	// Leading spaces before a quoted field (`a, "b"`) are common in hand-made
	// exports; trimming them would swallow empty fields between tabs.
	cr.TrimLeadingSpace = !unicode.IsSpace(delim)
	headerRow := max(opts.HeaderRow, 1)

	t := &table{}
	headerLine := 0
	for n := 0; ; n++ {
		if n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("row %d: %v (a quote left open usually means the file was cut short)", pe.StartLine, pe.Err)
			}
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		if enc == config.EncodingUTF8 {
			for _, f := range rec {
				if !utf8.ValidString(f) {
					return nil, fmt.Errorf("row %d is not valid UTF-8 text: if the file was saved by Excel as plain CSV, set encoding: windows-1252", line)
				}
			}
		}
		if t.columns == nil {
			if line < headerRow {
				continue
			}
			headerLine = line
			t.columns = make([]string, len(rec))
			for i, c := range rec {
				t.columns[i] = strings.TrimSpace(c)
			}
			if blank(rec) {
				return nil, fmt.Errorf("the header (row %d) is blank", line)
			}
			continue
		}
		if blank(rec) {
			continue
		}
		if len(rec) < len(t.columns) {
			return nil, fmt.Errorf("row %d has %d fields, but the header (row %d) has %d: is the file cut short?", line, len(rec), headerLine, len(t.columns))
		}
		for i := len(t.columns); i < len(rec); i++ {
			if strings.TrimSpace(rec[i]) != "" {
				return nil, fmt.Errorf("row %d has %d fields, but the header (row %d) has %d", line, len(rec), headerLine, len(t.columns))
			}
		}
		values := make([]any, len(t.columns))
		for i := range values {
			values[i] = rec[i]
		}
		t.rows = append(t.rows, tableRow{ref: "row " + strconv.Itoa(line), values: values})
	}
	if t.columns == nil {
		return nil, fmt.Errorf("there is no header row: the text ends before row %d", headerRow)
	}
	return t, nil
}

func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// workbookPercent is a workbook cell formatted as a percentage: the ratio
// it holds, as the workbook writes it (0.142 for a cell showing 14.2%).
type workbookPercent string

// String is the cell as the workbook shows it: 14.2%.
func (p workbookPercent) String() string { return shiftDecimal(string(p)) + "%" }

// cellKind is what a workbook cell's number format says its number is.
type cellKind byte

const (
	plainNumber cellKind = iota
	dateNumber
	percentNumber
)

// readXLSX reads one worksheet of a workbook: the sheet named opts.Sheet,
// or the first. Its header is on row opts.HeaderRow. A number formatted as a
// date becomes a time.Time; one formatted as a percentage becomes a
// workbookPercent, so that 0.142 shown as 14.2% is the ratio 0.142 whatever
// the mapping's percent says. limit bounds the unpacked workbook.
func readXLSX(ctx context.Context, data []byte, opts config.TableOptions, limit int64) (t *table, err error) {
	// The workbook is someone else's file: whatever the library makes of
	// a malformed one, it fails this run only.
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("not a readable XLSX workbook: %v", r)
		}
	}()
	f, err := openWorkbook(data, limit)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	sheet, err := pickSheet(f.GetSheetList(), opts.Sheet)
	if err != nil {
		return nil, err
	}
	w := &worksheet{f: f, sheet: sheet, kinds: map[int]cellKind{}, where: "sheet " + strconv.Quote(sheet)}
	if props, err := f.GetWorkbookProps(); err == nil && props.Date1904 != nil {
		w.date1904 = *props.Date1904
	}
	rows, err := f.Rows(sheet)
	if err != nil {
		return nil, fmt.Errorf("sheet %q: %v", sheet, err)
	}
	defer func() { _ = rows.Close() }()

	headerRow := max(opts.HeaderRow, 1)
	where := w.where
	t = &table{}
	for n := 1; rows.Next(); n++ {
		if n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		cells, err := rows.Columns(excelize.Options{RawCellValue: true})
		if err != nil {
			return nil, fmt.Errorf("%s, row %d: %v", where, n, err)
		}
		if n < headerRow {
			continue
		}
		if t.columns == nil {
			if n > headerRow || blank(cells) {
				return nil, fmt.Errorf("%s: the header (row %d) is blank", where, headerRow)
			}
			t.columns = make([]string, len(cells))
			for i, c := range cells {
				t.columns[i] = strings.TrimSpace(c)
			}
			continue
		}
		if blank(cells) {
			continue
		}
		values, err := w.row(cells, len(t.columns), n)
		if err != nil {
			return nil, err
		}
		t.rows = append(t.rows, tableRow{ref: where + ", row " + strconv.Itoa(n), values: values})
	}
	if err := rows.Error(); err != nil {
		return nil, fmt.Errorf("%s: %v", where, err)
	}
	if t.columns == nil {
		return nil, fmt.Errorf("%s has no header row: it ends before row %d", where, headerRow)
	}
	return t, nil
}

// openWorkbook opens an XLSX workbook that unpacks to at most limit bytes.
func openWorkbook(data []byte, limit int64) (*excelize.File, error) {
	if len(data) == 0 {
		return nil, errors.New("the file is empty")
	}
	f, err := excelize.OpenReader(bytes.NewReader(data), excelize.Options{UnzipSizeLimit: limit, UnzipXMLSizeLimit: limit})
	if err != nil {
		if strings.Contains(err.Error(), "unzip size") {
			return nil, fmt.Errorf("the workbook unpacks to more than the source's max_file_size (%s)", config.ByteSize(limit))
		}
		return nil, fmt.Errorf("not a readable XLSX workbook (is it damaged, cut short, or an old .xls?): %v", err)
	}
	return f, nil
}

// pickSheet returns the sheet of sheets named want, ignoring case and
// surrounding spaces, or the first sheet when want is empty.
func pickSheet(sheets []string, want string) (string, error) {
	if want == "" {
		if len(sheets) == 0 {
			return "", errors.New("the workbook has no worksheet")
		}
		return sheets[0], nil
	}
	found := ""
	for _, s := range sheets {
		if strings.EqualFold(strings.TrimSpace(s), strings.TrimSpace(want)) {
			found = s
		}
	}
	if found == "" {
		quoted := make([]string, len(sheets))
		for i, s := range sheets {
			quoted[i] = strconv.Quote(s)
		}
		return "", fmt.Errorf("the workbook has no sheet %q; its sheets: %s", want, strings.Join(quoted, ", "))
	}
	return found, nil
}

// worksheet reads the cells of one sheet of a workbook: numbers formatted
// as dates become times, numbers formatted as percentages become ratios.
type worksheet struct {
	f        *excelize.File
	sheet    string
	where    string
	date1904 bool
	kinds    map[int]cellKind // by style ID
}

// kindOf says how the number in cell is formatted.
func (w *worksheet) kindOf(cell string) cellKind {
	if ct, err := w.f.GetCellType(w.sheet, cell); err != nil || (ct != excelize.CellTypeNumber && ct != excelize.CellTypeUnset) {
		return plainNumber
	}
	id, err := w.f.GetCellStyle(w.sheet, cell)
	if err != nil {
		return plainNumber
	}
	if k, ok := w.kinds[id]; ok {
		return k
	}
	k := plainNumber
	if st, err := w.f.GetStyle(id); err == nil {
		if st.CustomNumFmt != nil {
			k = customFormatKind(*st.CustomNumFmt)
		} else {
			k = builtinFormatKind(st.NumFmt)
		}
	}
	w.kinds[id] = k
	return k
}

// row returns the values of row n, whose raw cells are cells, for a table
// of width columns; a cell beyond them that holds something is an error.
func (w *worksheet) row(cells []string, width, n int) ([]any, error) {
	for i := width; i < len(cells); i++ {
		if strings.TrimSpace(cells[i]) != "" {
			name, _ := excelize.CoordinatesToCellName(i+1, n)
			return nil, fmt.Errorf("%s, row %d: cell %s holds %s beyond the header's last column", w.where, n, name, quoteShort(cells[i]))
		}
	}
	values := make([]any, width)
	for i := range values {
		if i >= len(cells) {
			values[i] = ""
			continue
		}
		v, err := w.value(cells[i], i, n)
		if err != nil {
			return nil, err
		}
		values[i] = v
	}
	return values, nil
}

// value is the value of the raw cell in column i of row n.
func (w *worksheet) value(raw string, i, n int) (any, error) {
	if _, err := strconv.ParseFloat(strings.TrimSpace(raw), 64); err != nil {
		return raw, nil
	}
	name, err := excelize.CoordinatesToCellName(i+1, n)
	if err != nil {
		return raw, nil
	}
	switch w.kindOf(name) {
	case dateNumber:
		serial, _ := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		tm, err := excelize.ExcelDateToTime(serial, w.date1904)
		if err != nil {
			return nil, fmt.Errorf("%s, row %d: cell %s: %v", w.where, n, name, err)
		}
		// A workbook's date has no zone: it is a calendar date, read in the
		// collector's time zone like a date written as text.
		y, mo, d := tm.Date()
		h, mi, s := tm.Clock()
		return time.Date(y, mo, d, h, mi, s, 0, time.FixedZone("", 0)), nil
	case percentNumber:
		return workbookPercent(strings.TrimSpace(raw)), nil
	}
	return raw, nil
}

// builtinFormatKind classifies Excel's built-in number formats: 9 and 10
// are percentages, 14 to 22, 45 to 47 and the East Asian 27 to 36 and 50 to
// 58 are dates and times.
func builtinFormatKind(id int) cellKind {
	switch {
	case id == 9 || id == 10:
		return percentNumber
	case id >= 14 && id <= 22, id >= 27 && id <= 36, id >= 45 && id <= 47, id >= 50 && id <= 58:
		return dateNumber
	}
	return plainNumber
}

// customFormatKind classifies a custom number format code by what is left
// once quoted text, escaped characters and [colour] or [$-locale] sections
// are taken out: a % makes a percentage, a day, month or year code a date.
func customFormatKind(code string) cellKind {
	var b strings.Builder
	for i := 0; i < len(code); i++ {
		switch c := code[i]; c {
		case '"':
			if j := strings.IndexByte(code[i+1:], '"'); j >= 0 {
				i += j + 1
			} else {
				i = len(code)
			}
		case '\\', '_', '*':
			i++ // the next character is literal, or padding
		case '[':
			j := strings.IndexByte(code[i+1:], ']')
			if j < 0 {
				i = len(code)
				continue
			}
			inner := strings.ToLower(code[i+1 : i+1+j])
			// Elapsed-time codes [h], [mm], [ss] are times.
			if inner != "" && strings.Trim(inner, "hms") == "" {
				b.WriteByte('h')
			}
			i += j + 1
		default:
			b.WriteByte(c)
		}
	}
	s := strings.ToLower(b.String())
	// Only the format for positive numbers decides.
	s, _, _ = strings.Cut(s, ";")
	switch {
	case strings.Contains(s, "%"):
		return percentNumber
	case strings.ContainsAny(s, "dymhs"):
		return dateNumber
	}
	return plainNumber
}

// shiftDecimal multiplies a decimal number written as text by 100 by moving
// its point, so that no rounding creeps in: 0.142 becomes 14.2.
func shiftDecimal(s string) string {
	if strings.ContainsAny(s, "eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return s
		}
		return strconv.FormatFloat(f*100, 'g', 15, 64)
	}
	sign := ""
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		sign, s = s[:1], s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	for len(frac) < 2 {
		frac += "0"
	}
	whole += frac[:2]
	frac = frac[2:]
	whole = strings.TrimLeft(whole, "0")
	if whole == "" {
		whole = "0"
	}
	if frac = strings.TrimRight(frac, "0"); frac != "" {
		return sign + whole + "." + frac
	}
	return sign + whole
}
