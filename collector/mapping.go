package collector

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// Mapper turns the rows of one collector into observations, following the
// collector's metric mappings. It is shared by every source kind: a row is a
// list of column names and a list of values, whatever produced them.
//
// A Mapper is immutable, and may serve several runs at once: each run maps
// its rows through a MapRun of its own (NewRun), which holds what that run
// has produced so far.
type Mapper struct {
	collector    string
	maxSeries    int
	periodColumn string
	// period reads period cells written in the collector's period_format;
	// nil reads dates and RFC 3339 times.
	period  *config.PeriodSpec
	metrics []metricMap
}

// MapRun maps the rows of one run: it binds the columns of each table the
// run reads (Bind) and maps its rows (Map), checking each against what the
// run has produced so far: the series limit, and no (series, period) twice.
type MapRun struct {
	m *Mapper
	// series maps a series key to the row that first produced it; periods
	// maps a (series, period) pair to its row.
	series  map[string]string
	periods map[periodKey]string

	// The table bound last: its columns, and the position of each column
	// each metric reads.
	columns []string
	bound   []binding
}

// binding is where one metric finds its columns in the bound table; -1 is
// none.
type binding struct {
	valueIdx  int
	periodIdx int
	labelIdx  []int
	exprIdx   map[string]int
}

// metricMap is one config.MetricMapping resolved against the catalogue.
type metricMap struct {
	path         string // config path, for errors: metrics[2]
	kpi          *kpi.KPI
	valueColumn  string
	periodColumn string
	// expr computes the value from the columns exprColumns instead of
	// reading valueColumn.
	expr        *config.Expr
	exprColumns []string
	// percent divides the value cell by 100; valueMap turns words into
	// numbers (keys lower-cased).
	percent  bool
	valueMap *valueMap
	// labelColumns and static are aligned with kpi.Labels: for each label,
	// either the column its value comes from or its fixed value.
	labelColumns []string
	static       []string
}

type periodKey struct {
	series string
	sec    int64
	nsec   int32
}

// NewMapper resolves cc's metric mappings against the catalogue. cc has been
// loaded and validated by package config, which checked every rule of a
// mapping (each KPI label given once, by a column or a static value; a value
// column or a parsed expression) and parsed its expressions and period
// format: NewMapper trusts it. maxSeries bounds the series one run may
// produce (design decision 8: a collector that would create more fails).
func NewMapper(cc *config.CollectorConfig, cat kpi.Catalogue, maxSeries int) (*Mapper, error) {
	if cc == nil {
		return nil, errors.New("collector mapping: no collector config")
	}
	if maxSeries <= 0 {
		return nil, fmt.Errorf("collector %q: max_series must be positive, got %d", cc.Name, maxSeries)
	}
	if len(cc.Metrics) == 0 {
		return nil, fmt.Errorf("collector %q: no metrics to map", cc.Name)
	}
	m := &Mapper{
		collector:    cc.Name,
		maxSeries:    maxSeries,
		periodColumn: cc.PeriodColumn,
		period:       cc.Period,
	}
	for i, mm := range cc.Metrics {
		path := fmt.Sprintf("metrics[%d]", i)
		k := cat[mm.KPI]
		if k == nil {
			return nil, fmt.Errorf("collector %q: %s.kpi: no KPI %q in the catalogue", cc.Name, path, mm.KPI)
		}
		mp := metricMap{
			path:         path,
			kpi:          k,
			valueColumn:  mm.ValueColumn,
			periodColumn: firstNonEmpty(mm.PeriodColumn, cc.PeriodColumn),
			labelColumns: make([]string, len(k.Labels)),
			static:       make([]string, len(k.Labels)),
			percent:      mm.Percent,
		}
		if mm.Expression != nil {
			mp.expr, mp.exprColumns = mm.Expression, mm.Expression.Columns()
		}
		if len(mm.ValueMap) > 0 {
			mp.valueMap = newValueMap(mm.ValueMap)
		}
		for j, label := range k.Labels {
			if col, ok := mm.Labels[label]; ok {
				mp.labelColumns[j] = col
			} else {
				mp.static[j] = mm.StaticLabels[label]
			}
		}
		m.metrics = append(m.metrics, mp)
	}
	return m, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// NewRun starts mapping the rows of one run.
func (m *Mapper) NewRun() *MapRun {
	return &MapRun{m: m, series: map[string]string{}, periods: map[periodKey]string{}}
}

// Bind binds the columns of the run's next table, in order, keeping what
// the run has produced so far; where names the table in errors (`file
// "a.csv"`, or "" for a query's rows). Every column the mappings name must
// be present exactly once.
func (r *MapRun) Bind(where string, columns []string) error {
	m := r.m
	r.columns, r.bound = nil, nil
	rows := "the rows have"
	if where != "" {
		rows = where + " has"
	}
	find := func(path, col string) (int, error) {
		idx := -1
		for i, c := range columns {
			if c != col {
				continue
			}
			if idx >= 0 {
				return -1, fmt.Errorf("collector %q: column %q (named by %s) appears more than once in %s", m.collector, col, path, firstNonEmpty(where, "the rows"))
			}
			idx = i
		}
		if idx < 0 {
			return -1, fmt.Errorf("collector %q: %s no column %q (named by %s); columns present: %s",
				m.collector, rows, col, path, columnList(columns))
		}
		return idx, nil
	}
	bound := make([]binding, len(m.metrics))
	for i := range m.metrics {
		mp, b := &m.metrics[i], &bound[i]
		var err error
		b.valueIdx = -1
		if mp.expr != nil {
			b.exprIdx = make(map[string]int, len(mp.exprColumns))
			for _, col := range mp.exprColumns {
				if b.exprIdx[col], err = find(mp.path+".value_expression", col); err != nil {
					return err
				}
			}
		} else if b.valueIdx, err = find(mp.path+".value_column", mp.valueColumn); err != nil {
			return err
		}
		b.periodIdx = -1
		if mp.periodColumn != "" {
			path := "period_column"
			if mp.periodColumn != m.periodColumn {
				path = mp.path + ".period_column"
			}
			if b.periodIdx, err = find(path, mp.periodColumn); err != nil {
				return err
			}
		}
		b.labelIdx = make([]int, len(mp.labelColumns))
		for j, col := range mp.labelColumns {
			b.labelIdx[j] = -1
			if col == "" {
				continue
			}
			if b.labelIdx[j], err = find(mp.path+".labels."+mp.kpi.Labels[j], col); err != nil {
				return err
			}
		}
	}
	r.columns, r.bound = slices.Clone(columns), bound
	return nil
}

func columnList(columns []string) string {
	if len(columns) == 0 {
		return "(none)"
	}
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = strconv.Quote(c)
	}
	return strings.Join(quoted, ", ")
}

// Map turns one row of the bound table into one observation per metric
// mapping. row names the row in errors: "row 3", `file "a.csv", row 12`,
// `$.data[3]`; values are aligned with the bound columns. A row without a
// period column describes the run's date: midnight of run.At in
// run.Location.
func (r *MapRun) Map(row string, values []any, run kpi.RunInfo) ([]kpi.Observation, error) {
	m := r.m
	if r.bound == nil {
		return nil, fmt.Errorf("collector %q: %s mapped before the columns were bound", m.collector, row)
	}
	if len(values) != len(r.columns) {
		return nil, fmt.Errorf("collector %q: %s has %d values for %d columns", m.collector, row, len(values), len(r.columns))
	}
	if run.Location == nil {
		return nil, fmt.Errorf("collector %q: the run has no time zone", m.collector)
	}
	obs := make([]kpi.Observation, 0, len(m.metrics))
	for i := range m.metrics {
		mp, b := &m.metrics[i], &r.bound[i]
		o := kpi.Observation{KPI: mp.kpi, Labels: make([]string, len(mp.labelColumns)), Row: row}
		for j, idx := range b.labelIdx {
			if idx < 0 {
				o.Labels[j] = mp.static[j]
				continue
			}
			v, err := labelValue(values[idx])
			if err != nil {
				return nil, fmt.Errorf("collector %q: %s, column %q: label %q of KPI %q: %w",
					m.collector, row, r.columns[idx], mp.kpi.Labels[j], mp.kpi.Name, err)
			}
			o.Labels[j] = v
		}
		v, col, err := mp.value(b, values)
		if err != nil {
			if col < 0 {
				return nil, fmt.Errorf("collector %q: %s: %s: %w", m.collector, row, mp.path, err)
			}
			return nil, fmt.Errorf("collector %q: %s, column %q: %w", m.collector, row, r.columns[col], err)
		}
		o.Value = v
		if b.periodIdx < 0 {
			o.Period = runDate(run)
		} else if o.Period, err = m.periodOf(values[b.periodIdx], run.Location); err != nil {
			return nil, fmt.Errorf("collector %q: %s, column %q: %w", m.collector, row, r.columns[b.periodIdx], err)
		}
		if err := r.track(row, o); err != nil {
			return nil, err
		}
		obs = append(obs, o)
	}
	return obs, nil
}

// value reads or computes the metric's value from a row. On error it also
// returns the position of the column at fault.
func (mp *metricMap) value(b *binding, values []any) (kpi.Value, int, error) {
	if mp.expr != nil {
		bad := -1
		v, err := evalExpr(mp.expr, func(col string) (kpi.Value, error) {
			idx := b.exprIdx[col]
			x, err := numberValue(values[idx])
			if err != nil {
				bad = idx
			}
			return x, err
		})
		return v, bad, err
	}
	cell := values[b.valueIdx]
	if mp.valueMap != nil {
		v, err := mappedValue(cell, mp.valueMap)
		return v, b.valueIdx, err
	}
	if mp.percent {
		v, err := percentValue(cell)
		return v, b.valueIdx, err
	}
	v, err := numberValue(cell)
	return v, b.valueIdx, err
}

// periodOf reads a period cell: in the collector's period_format when it has
// one and the cell is text, else as periodValue does.
func (m *Mapper) periodOf(v any, loc *time.Location) (time.Time, error) {
	if m.period != nil {
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case []byte:
			s = string(x)
		case int64:
			s = strconv.FormatInt(x, 10)
		case float64:
			// A query's result holds a year such as 2025 as a number.
			if x != math.Trunc(x) || math.Abs(x) > 1e15 {
				return time.Time{}, fmt.Errorf("period %v is not in the form %s", x, m.period.Format)
			}
			s = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			return periodValue(v, loc)
		}
		if strings.TrimSpace(s) == "" {
			return time.Time{}, errors.New("the period is empty")
		}
		t, err := m.period.Read(s, loc)
		if err != nil {
			return time.Time{}, fmt.Errorf("period %s is %w", quoteShort(s), err)
		}
		return t, nil
	}
	return periodValue(v, loc)
}

// track records the observation's series and period for the run, failing
// when the run passes its series limit or repeats a (series, period).
func (r *MapRun) track(row string, o kpi.Observation) error {
	m := r.m
	key := seriesKey(o.KPI, o.Labels)
	if _, ok := r.series[key]; !ok {
		if len(r.series) >= m.maxSeries {
			// The labels are left out on purpose: a run that explodes its
			// series is most likely labelling by something personal.
			return fmt.Errorf("collector %q: %s: KPI %q takes the run past its limit of %d series (max_series); labels must be bounded (service, team, age band), never a person's name or ID",
				m.collector, row, o.KPI.Name, m.maxSeries)
		}
		r.series[key] = row
	}
	pk := periodKey{series: key, sec: o.Period.Unix(), nsec: int32(o.Period.Nanosecond())}
	if first, ok := r.periods[pk]; ok {
		rows := first + " and " + row + " both give"
		if first == row {
			rows = row + " gives twice"
		}
		return fmt.Errorf("collector %q: %s KPI %q series %s for period %s: the value is ambiguous",
			m.collector, rows, o.KPI.Name, kpi.LabelString(o.KPI, o.Labels), formatPeriod(o.Period))
	}
	r.periods[pk] = row
	return nil
}

func seriesKey(k *kpi.KPI, values []string) string {
	var b strings.Builder
	b.WriteString(k.Name)
	for _, v := range values {
		b.WriteByte(0xff) // not valid UTF-8, so it cannot occur in a label value
		b.WriteString(v)
	}
	return b.String()
}

func formatPeriod(t time.Time) string {
	h, mi, s := t.Clock()
	if h == 0 && mi == 0 && s == 0 && t.Nanosecond() == 0 {
		return t.Format("2006-01-02")
	}
	return t.Format(time.RFC3339)
}

// runDate is midnight, in the run's time zone, of the day the run started.
func runDate(run kpi.RunInfo) time.Time {
	y, mo, d := run.At.In(run.Location).Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, run.Location)
}

// suppressed holds the symbols official statistics use for a value that is
// missing, suppressed or not applicable (DfE, ONS: bare or in brackets), and
// the spreadsheet errors that mean the same: #DIV/0! is a division by zero,
// #N/A a value not available.
var suppressed = map[string]bool{
	"x": true, "c": true, "z": true, "u": true, "low": true, ":": true, "..": true,
	"#div/0!": true, "#n/a": true,
}

// numberValue reads a value cell. NULL, an empty cell, a suppression symbol
// and a non-finite number (what a division by zero gives) are missing, never 0.
// Text may have padding spaces and thousands separators (1,234); text with a
// percent sign (14.2%) is refused, since only a mapping that says percent
// reads it as a ratio.
func numberValue(v any) (kpi.Value, error) {
	var f float64
	switch x := v.(type) {
	case nil:
		return kpi.Missing, nil
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int64:
		f = float64(x)
	case int32:
		f = float64(x)
	case int:
		f = float64(x)
	case int16:
		f = float64(x)
	case int8:
		f = float64(x)
	case uint64:
		f = float64(x)
	case uint32:
		f = float64(x)
	case uint:
		f = float64(x)
	case uint16:
		f = float64(x)
	case uint8:
		f = float64(x)
	case []byte:
		return parseNumber(string(x), false)
	case string:
		return parseNumber(x, false)
	case workbookPercent:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return kpi.Missing, fmt.Errorf("value %s is not a number", quoteShort(x.String()))
		}
		return finite(f), nil
	case bool:
		return kpi.Missing, fmt.Errorf("value %t is a boolean, not a number", x)
	case time.Time:
		return kpi.Missing, fmt.Errorf("value %s is a time, not a number", x.Format(time.RFC3339))
	default:
		return kpi.Missing, fmt.Errorf("value of type %T is not a number", v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return kpi.Missing, nil
	}
	return kpi.Known(f), nil
}

// percentValue reads a cell holding a percentage, 14.2 or 14.2%, as the
// ratio 0.142. A workbook cell formatted as a percentage already holds the
// ratio.
func percentValue(v any) (kpi.Value, error) {
	switch x := v.(type) {
	case string:
		return parseNumber(x, true)
	case []byte:
		return parseNumber(string(x), true)
	case workbookPercent:
		return numberValue(x)
	}
	n, err := numberValue(v)
	if err != nil || !n.Valid {
		return n, err
	}
	return kpi.Known(n.V / 100), nil
}

// valueMap is a metric's value_map: words, matched ignoring case and
// padding, and their numbers.
type valueMap struct {
	numbers map[string]float64
	// words are the words as configured, quoted and sorted, for errors.
	words string
}

func newValueMap(m map[string]float64) *valueMap {
	vm := &valueMap{numbers: make(map[string]float64, len(m))}
	quoted := make([]string, 0, len(m))
	for word, v := range m {
		vm.numbers[strings.ToLower(strings.TrimSpace(word))] = v
		quoted = append(quoted, strconv.Quote(word))
	}
	slices.Sort(quoted)
	vm.words = strings.Join(quoted, ", ")
	return vm
}

// mappedValue reads a cell through a value_map: a word becomes its number
// (ignoring case and padding); a number stays itself; a missing cell stays
// missing.
func mappedValue(v any, words *valueMap) (kpi.Value, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []byte:
		s = string(x)
	default:
		return numberValue(v)
	}
	t := strings.TrimSpace(s)
	if t == "" || isSuppressed(t) {
		return kpi.Missing, nil
	}
	if f, ok := words.numbers[strings.ToLower(t)]; ok {
		return kpi.Known(f), nil
	}
	if n, err := parseNumber(t, false); err == nil {
		return n, nil
	}
	return kpi.Missing, fmt.Errorf("value %s is not one of the value_map's words (%s)", quoteShort(s), words.words)
}

// maxNumberText bounds the text read as a number: beyond it, a cell is
// not a number but a wrong column.
const maxNumberText = 64

// parseNumber reads a number written as text. With percent, or when the text
// ends in %, it is a percentage and the ratio is returned; the decimal point
// is moved in the text rather than divided by, so 19.2% is exactly the
// nearest float64 to 0.192.
func parseNumber(s string, percent bool) (kpi.Value, error) {
	t := strings.TrimSpace(s)
	if t == "" || isSuppressed(t) {
		return kpi.Missing, nil
	}
	if len(t) > maxNumberText {
		return kpi.Missing, fmt.Errorf("value %s is not a number", quoteShort(s))
	}
	if rest, ok := strings.CutSuffix(t, "%"); ok {
		if !percent {
			return kpi.Missing, fmt.Errorf("value %s is a percentage: set percent: true on the mapping (of a _ratio KPI) to store it as a ratio (0.125 for 12.5%%)", quoteShort(s))
		}
		t = strings.TrimSpace(rest)
	}
	t, ok := ungroup(t)
	if !ok {
		return kpi.Missing, fmt.Errorf("value %s is not a number", quoteShort(s))
	}
	text := t
	if percent && !strings.ContainsAny(t, "eEnNiI") {
		text = t + "e-2"
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return kpi.Missing, fmt.Errorf("value %s is not a number", quoteShort(s))
	}
	if percent && text == t {
		f /= 100
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return kpi.Missing, nil
	}
	return kpi.Known(f), nil
}

// ungroup takes the thousands separators out of a number such as
// -1,234,567.5. Commas anywhere else (12,5 is a decimal comma, not a UK
// number) leave the text as it is for ParseFloat to refuse.
func ungroup(t string) (string, bool) {
	if !strings.Contains(t, ",") {
		return t, true
	}
	sign := ""
	if t != "" && (t[0] == '-' || t[0] == '+') {
		sign, t = t[:1], t[1:]
	}
	whole, frac, hasFrac := strings.Cut(t, ".")
	groups := strings.Split(whole, ",")
	if len(groups[0]) < 1 || len(groups[0]) > 3 {
		return "", false
	}
	for i, g := range groups {
		if i > 0 && len(g) != 3 {
			return "", false
		}
		for j := 0; j < len(g); j++ {
			if g[j] < '0' || g[j] > '9' {
				return "", false
			}
		}
	}
	out := sign + strings.Join(groups, "")
	if hasFrac {
		out += "." + frac
	}
	return out, true
}

func isSuppressed(s string) bool {
	s = strings.ToLower(s)
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	return suppressed[s]
}

// quoteShort quotes a cell for an error message, cut so that a wrong column
// holding long text does not flood the log.
func quoteShort(s string) string {
	const limit = 64
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

// labelValue reads a label cell: text as it is (trimmed, since fixed-width
// CHAR columns come padded), numbers formatted plainly. A NULL or empty label
// is an error: Prometheus cannot tell an empty label from an absent one. So
// is one longer than kpi.MaxLabelValueBytes, named by its length and a short
// prefix only, since a long cell may hold text that does not belong in a log.
func labelValue(v any) (string, error) {
	var s string
	switch x := v.(type) {
	case nil:
		return "", errors.New("the label value is NULL")
	case string:
		s = x
	case []byte:
		s = string(x)
	case int64:
		s = strconv.FormatInt(x, 10)
	case int32:
		s = strconv.FormatInt(int64(x), 10)
	case int:
		s = strconv.Itoa(x)
	case int16:
		s = strconv.FormatInt(int64(x), 10)
	case int8:
		s = strconv.FormatInt(int64(x), 10)
	case uint64:
		s = strconv.FormatUint(x, 10)
	case uint32:
		s = strconv.FormatUint(uint64(x), 10)
	case uint:
		s = strconv.FormatUint(uint64(x), 10)
	case uint16:
		s = strconv.FormatUint(uint64(x), 10)
	case uint8:
		s = strconv.FormatUint(uint64(x), 10)
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		s = strconv.FormatFloat(float64(x), 'f', -1, 32)
	case bool:
		s = strconv.FormatBool(x)
	case time.Time:
		s = formatPeriod(x)
	case workbookPercent:
		s = x.String()
	default:
		return "", fmt.Errorf("a value of type %T cannot be a label", v)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("the label value is empty")
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("the label value %s is not valid UTF-8", quoteShort(s))
	}
	if len(s) > kpi.MaxLabelValueBytes {
		return "", fmt.Errorf("the label value is %d bytes long, more than the limit of %d (it begins %s)",
			len(s), kpi.MaxLabelValueBytes, quoteShort(s))
	}
	return s, nil
}

// periodLayouts are the date forms a period cell may take; a date without a
// zone is midnight in the run's time zone.
var periodLayouts = []string{"2006-01-02", "02/01/2006", "2006-01-02 15:04:05"}

// periodValue reads a period cell. A time.Time that carries no zone of its
// own (lib/pq returns DATE and TIMESTAMP in an unnamed zero-offset zone) is a
// local calendar value and is read in loc, so that a DATE column, a date
// string and the run's date give the same instant for the same day; a
// timestamp with a zone (TIMESTAMPTZ, RFC 3339) is kept as the instant it is.
func periodValue(v any, loc *time.Location) (time.Time, error) {
	var s string
	switch x := v.(type) {
	case nil:
		return time.Time{}, errors.New("the period is NULL")
	case time.Time:
		if x.IsZero() {
			return time.Time{}, errors.New("the period is the zero time")
		}
		if name, off := x.Zone(); name == "" && off == 0 {
			y, mo, d := x.Date()
			h, mi, sec := x.Clock()
			return time.Date(y, mo, d, h, mi, sec, x.Nanosecond(), loc), nil
		}
		return x, nil
	case string:
		s = x
	case []byte:
		s = string(x)
	default:
		return time.Time{}, fmt.Errorf("a value of type %T cannot be a period", v)
	}
	t := strings.TrimSpace(s)
	for _, layout := range periodLayouts {
		if p, err := time.ParseInLocation(layout, t, loc); err == nil {
			return p, nil
		}
	}
	if p, err := time.Parse(time.RFC3339Nano, t); err == nil {
		return p, nil
	}
	return time.Time{}, fmt.Errorf("period %s is not a date (2006-01-02, 02/01/2006) or an RFC 3339 time", quoteShort(s))
}
