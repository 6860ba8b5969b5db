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
// list of column names (given once to Bind) and a list of values (given to
// Map), whatever produced them.
//
// A Mapper serves one run at a time: Bind starts a run and forgets the series
// and periods of the previous one, and Map checks each row against what the
// run has produced so far (the series limit, and no (series, period) twice).
type Mapper struct {
	collector    string
	maxSeries    int
	periodColumn string
	metrics      []metricMap

	bound   bool
	columns []string
	// series maps a series key to the row that first produced it; periods
	// maps a (series, period) pair to its row.
	series  map[string]int
	periods map[periodKey]int
}

// metricMap is one config.MetricMapping resolved against the catalogue.
type metricMap struct {
	path         string // config path, for errors: metrics[2]
	kpi          *kpi.KPI
	valueColumn  string
	periodColumn string
	// labelColumns and static are aligned with kpi.Labels: for each label,
	// either the column its value comes from or its fixed value.
	labelColumns []string
	static       []string

	// Column positions, set by Bind; -1 means none.
	valueIdx  int
	periodIdx int
	labelIdx  []int
}

type periodKey struct {
	series string
	sec    int64
	nsec   int32
}

// NewMapper resolves cc's metric mappings against the catalogue. Every KPI
// must exist in cat and every one of its labels must be given exactly once,
// by a column or a static value. maxSeries bounds the series one run may
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
	}
	for i, mm := range cc.Metrics {
		path := fmt.Sprintf("metrics[%d]", i)
		k := cat[mm.KPI]
		if k == nil {
			return nil, fmt.Errorf("collector %q: %s.kpi: no KPI %q in the catalogue", cc.Name, path, mm.KPI)
		}
		if mm.ValueColumn == "" {
			return nil, fmt.Errorf("collector %q: %s.value_column is required", cc.Name, path)
		}
		mp := metricMap{
			path:         path,
			kpi:          k,
			valueColumn:  mm.ValueColumn,
			periodColumn: firstNonEmpty(mm.PeriodColumn, cc.PeriodColumn),
			labelColumns: make([]string, len(k.Labels)),
			static:       make([]string, len(k.Labels)),
		}
		for j, label := range k.Labels {
			col, fromColumn := mm.Labels[label]
			val, fromStatic := mm.StaticLabels[label]
			switch {
			case fromColumn && fromStatic:
				return nil, fmt.Errorf("collector %q: %s: label %q of KPI %q is given both in labels and in static_labels", cc.Name, path, label, k.Name)
			case fromColumn:
				if col == "" {
					return nil, fmt.Errorf("collector %q: %s.labels.%s: the column name is empty", cc.Name, path, label)
				}
				mp.labelColumns[j] = col
			case fromStatic:
				if val == "" {
					return nil, fmt.Errorf("collector %q: %s.static_labels.%s: the value is empty", cc.Name, path, label)
				}
				mp.static[j] = val
			default:
				return nil, fmt.Errorf("collector %q: %s: label %q of KPI %q is given neither in labels nor in static_labels", cc.Name, path, label, k.Name)
			}
		}
		for _, field := range []struct {
			name string
			m    map[string]string
		}{{"labels", mm.Labels}, {"static_labels", mm.StaticLabels}} {
			for label := range field.m {
				if k.LabelIndex(label) < 0 {
					return nil, fmt.Errorf("collector %q: %s.%s: KPI %q has no label %q (its labels: %s)",
						cc.Name, path, field.name, k.Name, label, strings.Join(k.Labels, ", "))
				}
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

// Bind starts a run whose rows have the given columns, in order. Every column
// the mappings name must be present exactly once.
func (m *Mapper) Bind(columns []string) error {
	m.bound = false
	m.columns = slices.Clone(columns)
	m.series = make(map[string]int)
	m.periods = make(map[periodKey]int)
	find := func(path, col string) (int, error) {
		idx := -1
		for i, c := range columns {
			if c != col {
				continue
			}
			if idx >= 0 {
				return -1, fmt.Errorf("collector %q: column %q (named by %s) appears more than once in the rows", m.collector, col, path)
			}
			idx = i
		}
		if idx < 0 {
			return -1, fmt.Errorf("collector %q: the rows have no column %q (named by %s); columns present: %s",
				m.collector, col, path, columnList(columns))
		}
		return idx, nil
	}
	for i := range m.metrics {
		mp := &m.metrics[i]
		var err error
		if mp.valueIdx, err = find(mp.path+".value_column", mp.valueColumn); err != nil {
			return err
		}
		mp.periodIdx = -1
		if mp.periodColumn != "" {
			path := "period_column"
			if mp.periodColumn != m.periodColumn {
				path = mp.path + ".period_column"
			}
			if mp.periodIdx, err = find(path, mp.periodColumn); err != nil {
				return err
			}
		}
		mp.labelIdx = make([]int, len(mp.labelColumns))
		for j, col := range mp.labelColumns {
			mp.labelIdx[j] = -1
			if col == "" {
				continue
			}
			if mp.labelIdx[j], err = find(mp.path+".labels."+mp.kpi.Labels[j], col); err != nil {
				return err
			}
		}
	}
	m.bound = true
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

// Map turns one row into one observation per metric mapping. row is the
// row's 1-based position, used in errors; values are aligned with the
// columns given to Bind. A row without a period column describes the run's
// date: midnight of run.At in run.Location.
func (m *Mapper) Map(row int, values []any, run kpi.RunInfo) ([]kpi.Observation, error) {
	if !m.bound {
		return nil, fmt.Errorf("collector %q: row %d mapped before the columns were bound", m.collector, row)
	}
	if len(values) != len(m.columns) {
		return nil, fmt.Errorf("collector %q: row %d has %d values for %d columns", m.collector, row, len(values), len(m.columns))
	}
	if run.Location == nil {
		return nil, fmt.Errorf("collector %q: the run has no time zone", m.collector)
	}
	obs := make([]kpi.Observation, 0, len(m.metrics))
	for i := range m.metrics {
		mp := &m.metrics[i]
		o := kpi.Observation{KPI: mp.kpi, Labels: make([]string, len(mp.labelColumns))}
		for j, idx := range mp.labelIdx {
			if idx < 0 {
				o.Labels[j] = mp.static[j]
				continue
			}
			v, err := labelValue(values[idx])
			if err != nil {
				return nil, fmt.Errorf("collector %q: row %d, column %q: label %q of KPI %q: %w",
					m.collector, row, m.columns[idx], mp.kpi.Labels[j], mp.kpi.Name, err)
			}
			o.Labels[j] = v
		}
		v, err := numberValue(values[mp.valueIdx])
		if err != nil {
			return nil, fmt.Errorf("collector %q: row %d, column %q: %w", m.collector, row, m.columns[mp.valueIdx], err)
		}
		o.Value = v
		if mp.periodIdx < 0 {
			o.Period = runDate(run)
		} else if o.Period, err = periodValue(values[mp.periodIdx], run.Location); err != nil {
			return nil, fmt.Errorf("collector %q: row %d, column %q: %w", m.collector, row, m.columns[mp.periodIdx], err)
		}
		if err := m.track(row, o); err != nil {
			return nil, err
		}
		obs = append(obs, o)
	}
	return obs, nil
}

// track records the observation's series and period for the run, failing
// when the run passes its series limit or repeats a (series, period).
func (m *Mapper) track(row int, o kpi.Observation) error {
	key := seriesKey(o.KPI, o.Labels)
	if _, ok := m.series[key]; !ok {
		if len(m.series) >= m.maxSeries {
			// The labels are left out on purpose: a run that explodes its
			// series is most likely labelling by something personal.
			return fmt.Errorf("collector %q: row %d: KPI %q takes the run past its limit of %d series (max_series); labels must be bounded (service, team, age band), never a person's name or ID",
				m.collector, row, o.KPI.Name, m.maxSeries)
		}
		m.series[key] = row
	}
	pk := periodKey{series: key, sec: o.Period.Unix(), nsec: int32(o.Period.Nanosecond())}
	if first, ok := m.periods[pk]; ok {
		rows := fmt.Sprintf("rows %d and %d both give", first, row)
		if first == row {
			rows = fmt.Sprintf("row %d gives twice", row)
		}
		return fmt.Errorf("collector %q: %s KPI %q series %s for period %s: the value is ambiguous",
			m.collector, rows, o.KPI.Name, kpi.LabelString(o.KPI, o.Labels), formatPeriod(o.Period))
	}
	m.periods[pk] = row
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
// missing, suppressed or not applicable (DfE, ONS: bare or in brackets).
var suppressed = map[string]bool{
	"x": true, "c": true, "z": true, "u": true, "low": true, ":": true,
}

// numberValue reads a value cell. NULL, an empty cell, a suppression symbol
// and a non-finite number (what a division by zero gives) are missing, never 0.
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
		return parseNumber(string(x))
	case string:
		return parseNumber(x)
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

func parseNumber(s string) (kpi.Value, error) {
	t := strings.TrimSpace(s)
	if t == "" || isSuppressed(t) {
		return kpi.Missing, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return kpi.Missing, fmt.Errorf("value %s is not a number", quoteShort(s))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return kpi.Missing, nil
	}
	return kpi.Known(f), nil
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
// is an error: Prometheus cannot tell an empty label from an absent one.
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
	return s, nil
}

// periodLayouts are the date forms a period cell may take; a date without a
// zone is midnight in the run's time zone.
var periodLayouts = []string{"2006-01-02", "02/01/2006"}

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
