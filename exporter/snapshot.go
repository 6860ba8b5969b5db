// Package exporter serves carewatch's Prometheus metrics. A Snapshot holds the
// latest value, RAG status and thresholds of every KPI series and the health of
// every collector; it is immutable, so its exposition is rendered once when it
// is set and every scrape until the next collector run is a copy of bytes. The
// package also holds carewatch's self-metrics and its HTTP surface (/metrics,
// the landing page, /-/healthy, /-/ready and /-/reload).
package exporter

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carewatch/carewatch/kpi"
)

// Names of the metric families that every KPI series and every collector
// share. They are part of carewatch's interface: alert rules and dashboards
// query them.
const (
	// StatusMetric is a series' RAG status as kpi.Status.Number gives it.
	StatusMetric = "carewatch_kpi_status"
	// ThresholdMetric is a series' amber or red threshold (label level).
	ThresholdMetric = "carewatch_kpi_threshold"
	// PeriodMetric is the Unix time of the period a series' value describes.
	PeriodMetric = "carewatch_kpi_period_timestamp_seconds"
	// MaxAgeMetric is a KPI's kpi.KPI.MaxAge, for KPIs that can go stale.
	MaxAgeMetric = "carewatch_kpi_max_age_seconds"
	// InfoMetric is 1 for every KPI, labelled with its metric, unit and direction.
	InfoMetric = "carewatch_kpi_info"
	// BenchmarkMetric is 1 for every series that benchmarks the council
	// against others (kpi.KPI.IsBenchmark); KPI alert rules leave those out.
	BenchmarkMetric = "carewatch_kpi_benchmark"

	// CollectorLastRunSuccessMetric is 1 if a collector's latest run succeeded, else 0.
	CollectorLastRunSuccessMetric = "carewatch_collector_last_run_success"
	// CollectorLastSuccessTimeMetric is when a collector last succeeded.
	CollectorLastSuccessTimeMetric = "carewatch_collector_last_success_timestamp_seconds"
	// CollectorLastRunTimeMetric is when a collector's latest run finished.
	CollectorLastRunTimeMetric = "carewatch_collector_last_run_timestamp_seconds"
	// CollectorLastRunDurationMetric is how long a collector's latest run took.
	CollectorLastRunDurationMetric = "carewatch_collector_last_run_duration_seconds"
	// CollectorRunsMetric counts a collector's runs.
	CollectorRunsMetric = "carewatch_collector_runs_total"
	// CollectorFailuresMetric counts a collector's failed runs.
	CollectorFailuresMetric = "carewatch_collector_failures_total"
	// CollectorLastRunObservationsMetric is what a collector's latest successful run wrote.
	CollectorLastRunObservationsMetric = "carewatch_collector_last_run_observations"
	// CollectorCheckFailuresMetric counts, by check and action (reject or
	// warn), the failures of the checks a collector's latest run failed.
	CollectorCheckFailuresMetric = "carewatch_collector_check_failures"
)

// scheduleSentence ends every KPI's HELP: the number is not measured at scrape
// time, and its age is in another family.
const scheduleSentence = "Collected on a schedule by carewatch, not at scrape time; the period the value describes is in " + PeriodMetric + "."

// Label names the shared families put beside a KPI's own labels.
const (
	kpiLabel       = "kpi"
	levelLabel     = "level"
	collectorLabel = "collector"
)

// maxProblems bounds the problems a snapshot keeps, so a store returning
// thousands of bad rows cannot grow it without limit.
const maxProblems = 50

// Snapshot is an immutable picture of every KPI series' latest value and of
// every collector's health. It implements prometheus.Collector as an
// unchecked collector: Describe sends nothing, because a KPI's families carry
// that KPI's own labels and the set of KPIs changes with the configuration.
type Snapshot struct {
	kpis      []*kpiEntry
	health    []kpi.CollectorHealth
	collector collectorDescs
	problems  []error
	series    int
}

// kpiEntry is one exportable KPI with its descriptors and its series.
type kpiEntry struct {
	k *kpi.KPI
	// series are sorted by label values taken in label name order, the
	// order in which a prometheus.Registry sorts them.
	series pagedSeries
	// byName lists the positions of k.Labels in label name order.
	byName []int
	// thresholdOrder lists the threshold samples in registry order, each
	// as series index << 1 | level (0 amber, 1 red).
	thresholdOrder []int32

	value     *prometheus.Desc
	status    *prometheus.Desc
	amber     *prometheus.Desc
	red       *prometheus.Desc
	period    *prometheus.Desc
	maxAge    *prometheus.Desc
	info      *prometheus.Desc
	benchmark *prometheus.Desc
	infoLabel [4]string

	// text holds the templates of the entry's lines in the text exposition.
	text entryText
}

type collectorDescs struct {
	lastRunSuccess, lastSuccessTime, lastRunTime, lastRunDuration, runs, failures, observations *prometheus.Desc
}

// Fixed help texts, shared by every KPI's series in a family.
const (
	statusHelp = "RAG status of the KPI series' latest value: green 0, amber 1, red 2, unknown (value missing) -1. " +
		"Only KPIs with thresholds have a status."
	thresholdHelp = "Threshold that applies to the KPI series, by level (amber, red); a value strictly beyond it " +
		"in the KPI's bad direction has crossed it."
	periodHelp = "Unix time of the period the KPI series' latest value describes (a snapshot date, the start of a " +
		"month, a reporting date), present even when the value is missing; the value is stale when " +
		"time() minus this exceeds " + MaxAgeMetric + "."
	maxAgeHelp    = "How long after the period it describes a KPI's value stays fresh."
	infoHelp      = "Catalogue entry of a KPI: its metric name, unit, direction (lower_is_better or higher_is_better) and help text."
	benchmarkHelp = "1 for a KPI series that benchmarks the council against others (a statistical neighbour, its region, " +
		"England), as the KPI's own_series says; such a series has a value and a status, but KPI alerts are about the council's own series only."
)

// Help texts of the collector families.
const (
	lastRunSuccessHelp  = "Whether the collector's latest finished run succeeded (1) or failed (0)."
	lastSuccessTimeHelp = "Unix time at which the collector's latest successful run finished; absent if it never succeeded."
	lastRunTimeHelp     = "Unix time at which the collector's latest run finished."
	lastRunDurationHelp = "Duration of the collector's latest run, retries included."
	runsHelp            = "Runs of the collector recorded in the store, successful or not."
	failuresHelp        = "Failed runs of the collector recorded in the store."
	observationsHelp    = "Observations written by the collector's latest successful run."
)

func newCollectorDescs() collectorDescs {
	l := []string{collectorLabel}
	return collectorDescs{
		lastRunSuccess:  prometheus.NewDesc(CollectorLastRunSuccessMetric, lastRunSuccessHelp, l, nil),
		lastSuccessTime: prometheus.NewDesc(CollectorLastSuccessTimeMetric, lastSuccessTimeHelp, l, nil),
		lastRunTime:     prometheus.NewDesc(CollectorLastRunTimeMetric, lastRunTimeHelp, l, nil),
		lastRunDuration: prometheus.NewDesc(CollectorLastRunDurationMetric, lastRunDurationHelp, l, nil),
		runs:            prometheus.NewDesc(CollectorRunsMetric, runsHelp, l, nil),
		failures:        prometheus.NewDesc(CollectorFailuresMetric, failuresHelp, l, nil),
		observations:    prometheus.NewDesc(CollectorLastRunObservationsMetric, observationsHelp, l, nil),
	}
}

// NewSnapshot builds a snapshot of the catalogue's KPIs from the latest series
// states and collector health (as the store's Latest and Health return them).
// It copies what it keeps, so the caller may reuse its slices.
//
// It trusts c's names: the configuration refuses a KPI whose names break
// the rules of kpi.KPI.NameProblems. What cannot be exported is left out and
// listed by Problems: series of a KPI that is not in c, series whose label
// values do not match the KPI's labels or are not valid UTF-8, a second
// state of the same series, and a second health record of the same
// collector.
func NewSnapshot(c kpi.Catalogue, series []kpi.SeriesState, health []kpi.CollectorHealth) *Snapshot {
	return newSnapshot(c, series, health, defaultPageShift)
}

// newSnapshot is NewSnapshot with the KPIs' series kept in pages of
// 1<<pageShift states.
func newSnapshot(c kpi.Catalogue, series []kpi.SeriesState, health []kpi.CollectorHealth, pageShift uint8) *Snapshot {
	s := &Snapshot{collector: newCollectorDescs()}

	byName := make(map[string]*kpiEntry, len(c))
	for _, name := range c.Names() {
		e := newKPIEntry(c[name])
		byName[name] = e
		s.kpis = append(s.kpis, e)
	}

	// Every series is checked first, so that each KPI's series and all kept
	// label values get one allocation of the exact size: a snapshot lives
	// until the next collector run, and may hold 100,000 series.
	owner := make([]*kpiEntry, len(series))
	count := make(map[*kpiEntry]int, len(s.kpis))
	// flat holds each entry's series until they are sorted and paged.
	flat := make(map[*kpiEntry][]kpi.SeriesState, len(s.kpis))
	total := 0
	for i := range series {
		st := &series[i]
		if st.KPI == nil {
			s.drop(errors.New("series state without a KPI"))
			continue
		}
		e := byName[st.KPI.Name]
		if e == nil {
			s.drop(fmt.Errorf("kpi %q: series %s: KPI is not exported", st.KPI.Name, kpi.LabelString(st.KPI, st.Labels)))
			continue
		}
		if err := checkSeries(e.k, st); err != nil {
			s.drop(fmt.Errorf("kpi %q: series %s: %w", e.k.Name, kpi.LabelString(st.KPI, st.Labels), err))
			continue
		}
		owner[i] = e
		count[e]++
		total += len(st.Labels)
	}
	for e, n := range count {
		flat[e] = make([]kpi.SeriesState, 0, n)
	}
	labels := make([]string, 0, total)
	for i, e := range owner {
		if e == nil {
			continue
		}
		st := series[i]
		start := len(labels)
		labels = append(labels, st.Labels...)
		st.Labels = labels[start:len(labels):len(labels)]
		st.KPI = e.k
		flat[e] = append(flat[e], st)
	}

	// Sorting is most of the cost of a large snapshot, and each KPI's
	// series sort alone: the KPIs are shared out between the cores.
	sorted := make([][]kpi.SeriesState, len(s.kpis))
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range min(runtime.GOMAXPROCS(0), len(s.kpis)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(s.kpis); i = int(next.Add(1)) - 1 {
				e := s.kpis[i]
				sorted[i] = e.sortSeries(flat[e])
			}
		})
	}
	wg.Wait()
	for i, e := range s.kpis {
		series := slices.CompactFunc(sorted[i], func(a, b kpi.SeriesState) bool {
			if slices.Equal(a.Labels, b.Labels) {
				s.drop(fmt.Errorf("kpi %q: series %s: more than one state; the first is kept", e.k.Name, kpi.LabelString(e.k, b.Labels)))
				return true
			}
			return false
		})
		e.series = paged(series, pageShift)
		e.thresholdOrder = e.orderThresholds()
		s.series += e.series.len()
	}

	s.health = cleanHealth(health, s.problem)
	return s
}

// cleanHealth sorts a copy of health by collector and leaves out, as
// problems, a second record of a collector and a name that is not UTF-8.
func cleanHealth(health []kpi.CollectorHealth, problem func(error)) []kpi.CollectorHealth {
	hs := slices.Clone(health)
	slices.SortStableFunc(hs, func(a, b kpi.CollectorHealth) int { return strings.Compare(a.Collector, b.Collector) })
	hs = slices.CompactFunc(hs, func(a, b kpi.CollectorHealth) bool {
		if a.Collector == b.Collector {
			problem(fmt.Errorf("collector %q: more than one health record; the first is kept", b.Collector))
			return true
		}
		return false
	})
	return slices.DeleteFunc(hs, func(h kpi.CollectorHealth) bool {
		if !utf8.ValidString(h.Collector) {
			problem(fmt.Errorf("collector %q: name is not valid UTF-8", h.Collector))
			return true
		}
		return false
	})
}

func checkSeries(k *kpi.KPI, st *kpi.SeriesState) error {
	if st.KPI != k && !slices.Equal(st.KPI.Labels, k.Labels) {
		return fmt.Errorf("labels %q differ from the catalogue's %q", st.KPI.Labels, k.Labels)
	}
	if len(st.Labels) != len(k.Labels) {
		return fmt.Errorf("%d label values for %d labels", len(st.Labels), len(k.Labels))
	}
	for _, v := range st.Labels {
		if !utf8.ValidString(v) {
			return fmt.Errorf("label value %q is not valid UTF-8", v)
		}
	}
	return nil
}

func newKPIEntry(k *kpi.KPI) *kpiEntry {
	help := strings.TrimSpace(k.Help)
	switch {
	case help == "":
		help = "KPI " + k.Name + "."
	case !strings.HasSuffix(help, "."):
		help += "."
	}
	help += " " + scheduleSentence

	byName := make([]int, len(k.Labels))
	for i := range byName {
		byName[i] = i
	}
	slices.SortFunc(byName, func(a, b int) int { return strings.Compare(k.Labels[a], k.Labels[b]) })

	named := prometheus.Labels{kpiLabel: k.Name}
	level := func(l string) prometheus.Labels { return prometheus.Labels{kpiLabel: k.Name, levelLabel: l} }
	return &kpiEntry{
		k:         k,
		byName:    byName,
		value:     prometheus.NewDesc(k.MetricName(), help, k.Labels, nil),
		status:    prometheus.NewDesc(StatusMetric, statusHelp, k.Labels, named),
		amber:     prometheus.NewDesc(ThresholdMetric, thresholdHelp, k.Labels, level("amber")),
		red:       prometheus.NewDesc(ThresholdMetric, thresholdHelp, k.Labels, level("red")),
		period:    prometheus.NewDesc(PeriodMetric, periodHelp, k.Labels, named),
		maxAge:    prometheus.NewDesc(MaxAgeMetric, maxAgeHelp, nil, named),
		info:      prometheus.NewDesc(InfoMetric, infoHelp, []string{"metric", "unit", "direction", "help"}, named),
		benchmark: prometheus.NewDesc(BenchmarkMetric, benchmarkHelp, k.Labels, named),
		infoLabel: [4]string{k.MetricName(), k.Unit, k.Direction.String(), k.Help},
		text:      newEntryText(k, help),
	}
}

// sortSeries returns series sorted with compare, keeping the order of
// equal ones. It sorts positions rather than the states themselves, which
// are large, and returns series themselves if already in order.
func (e *kpiEntry) sortSeries(series []kpi.SeriesState) []kpi.SeriesState {
	sorted := true
	for i := 1; i < len(series) && sorted; i++ {
		sorted = e.compareLabels(series[i-1].Labels, series[i].Labels) <= 0
	}
	if sorted {
		return series
	}
	order := make([]int32, len(series))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		if c := e.compareLabels(series[a].Labels, series[b].Labels); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	out := make([]kpi.SeriesState, len(series))
	for i, j := range order {
		out[i] = series[j]
	}
	return out
}

// compare orders series by label values, labels taken in name order.
func (e *kpiEntry) compare(a, b kpi.SeriesState) int { return e.compareLabels(a.Labels, b.Labels) }

func (e *kpiEntry) compareLabels(a, b []string) int {
	for _, i := range e.byName {
		if c := strings.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// orderThresholds lists the thresholds in registry order. The threshold
// family adds a level label, which sorts between the KPI's labels named
// before "level" and those named after: so series are taken in groups that
// share the values of the labels before it, all amber thresholds of a group
// before all red ones.
func (e *kpiEntry) orderThresholds() []int32 {
	before := 0
	for _, i := range e.byName {
		if e.k.Labels[i] < levelLabel {
			before++
		}
	}
	samePrefix := func(a, b *kpi.SeriesState) bool {
		for _, i := range e.byName[:before] {
			if a.Labels[i] != b.Labels[i] {
				return false
			}
		}
		return true
	}
	var order []int32
	n := e.series.len()
	for lo := 0; lo < n; {
		hi := lo + 1
		for hi < n && samePrefix(e.series.at(lo), e.series.at(hi)) {
			hi++
		}
		for i := lo; i < hi; i++ {
			if e.series.at(i).Thresholds.Amber.Set {
				order = append(order, int32(i)<<1)
			}
		}
		for i := lo; i < hi; i++ {
			if e.series.at(i).Thresholds.Red.Set {
				order = append(order, int32(i)<<1|1)
			}
		}
		lo = hi
	}
	return order
}

func (s *Snapshot) problem(err error) {
	if len(s.problems) < maxProblems {
		s.problems = append(s.problems, err)
	}
}

// drop records a series state left out.
func (s *Snapshot) drop(err error) { s.problem(err) }

// Problems returns what NewSnapshot had to leave out and why (at most the
// first 50 problems); nil when everything was exported.
func (s *Snapshot) Problems() []error { return slices.Clone(s.problems) }

// Series is the number of KPI series in the snapshot.
func (s *Snapshot) Series() int { return s.series }

// Collectors is the number of collectors whose health is in the snapshot.
func (s *Snapshot) Collectors() int { return len(s.health) }

// Describe sends nothing: Snapshot is an unchecked collector.
func (s *Snapshot) Describe(chan<- *prometheus.Desc) {}

// Collect sends every metric of the snapshot.
func (s *Snapshot) Collect(ch chan<- prometheus.Metric) {
	for _, f := range s.families() {
		for _, p := range f.parts {
			p.emit(ch, 0, p.n)
		}
	}
}

// A family is one metric family of the snapshot, as parts (one per KPI for
// the shared families) that can be collected or written a range at a time.
// That lets the exporter render a snapshot of any size in chunks of bounded
// size, and render again only the chunks a run changed.
//
// Within a part, emit sends metrics, and text writes lines, in the order a
// prometheus.Registry sorts them (by label values, labels taken in name
// order), so that chunks rendered separately and concatenated are byte for
// byte what one registry would render for that part.
type family struct {
	name  string
	help  string
	typ   string
	parts []part
}

// partKind says which of a KPI entry's families a part belongs to.
type partKind int8

const (
	partOther partKind = iota
	partValues
	partStatus
	partThresholds
	partPeriods
	partBenchmarks
)

type part struct {
	// n is the number of positions; emit sends the metrics of positions
	// [lo, hi), at most one per position, and text appends their lines.
	n    int
	emit func(ch chan<- prometheus.Metric, lo, hi int)
	text func(buf []byte, lo, hi int) []byte
	// entry and kind name a part of one KPI's series, which a rendering
	// can keep while the entry stays the same; entry is nil for parts
	// that are rendered again every time (catalogue and health).
	entry *kpiEntry
	kind  partKind
}

// families returns the snapshot's families in name order. Across the KPIs of
// a shared family, series are in KPI name order.
func (s *Snapshot) families() []family {
	var fs []family
	add := func(name, help, typ string, parts ...part) {
		fs = append(fs, family{name: name, help: help, typ: typ, parts: parts})
	}
	kpiParts := func(kind partKind) []part {
		ps := make([]part, 0, len(s.kpis))
		for _, e := range s.kpis {
			ps = append(ps, e.part(kind))
		}
		return ps
	}

	for _, e := range s.kpis {
		add(e.k.MetricName(), e.text.help, "gauge", e.part(partValues))
	}
	add(BenchmarkMetric, benchmarkHelp, "gauge", kpiParts(partBenchmarks)...)
	add(StatusMetric, statusHelp, "gauge", kpiParts(partStatus)...)
	add(ThresholdMetric, thresholdHelp, "gauge", kpiParts(partThresholds)...)
	add(PeriodMetric, periodHelp, "gauge", kpiParts(partPeriods)...)
	add(MaxAgeMetric, maxAgeHelp, "gauge", part{n: 1, emit: s.emitMaxAges, text: s.textMaxAges})
	add(InfoMetric, infoHelp, "gauge", part{n: 1, emit: s.emitInfo, text: s.textInfo})

	d := &s.collector
	for _, h := range []struct {
		name, help string
		desc       *prometheus.Desc
		t          prometheus.ValueType
		value      func(h *kpi.CollectorHealth) (float64, bool)
	}{
		{CollectorLastRunSuccessMetric, lastRunSuccessHelp, d.lastRunSuccess, prometheus.GaugeValue, func(h *kpi.CollectorHealth) (float64, bool) {
			return boolValue(h.LastRunOK), !h.LastRunAt.IsZero()
		}},
		{CollectorLastSuccessTimeMetric, lastSuccessTimeHelp, d.lastSuccessTime, prometheus.GaugeValue, func(h *kpi.CollectorHealth) (float64, bool) {
			return unixSeconds(h.LastSuccessAt), !h.LastSuccessAt.IsZero()
		}},
		{CollectorLastRunTimeMetric, lastRunTimeHelp, d.lastRunTime, prometheus.GaugeValue, func(h *kpi.CollectorHealth) (float64, bool) {
			return unixSeconds(h.LastRunAt), !h.LastRunAt.IsZero()
		}},
		{CollectorLastRunDurationMetric, lastRunDurationHelp, d.lastRunDuration, prometheus.GaugeValue, func(h *kpi.CollectorHealth) (float64, bool) {
			return h.LastRunDuration.Seconds(), !h.LastRunAt.IsZero()
		}},
		{CollectorRunsMetric, runsHelp, d.runs, prometheus.CounterValue, func(h *kpi.CollectorHealth) (float64, bool) {
			return float64(h.Runs), true
		}},
		{CollectorFailuresMetric, failuresHelp, d.failures, prometheus.CounterValue, func(h *kpi.CollectorHealth) (float64, bool) {
			return float64(h.Failures), true
		}},
		{CollectorLastRunObservationsMetric, observationsHelp, d.observations, prometheus.GaugeValue, func(h *kpi.CollectorHealth) (float64, bool) {
			return float64(h.LastObservations), !h.LastSuccessAt.IsZero()
		}},
	} {
		typ := "gauge"
		if h.t == prometheus.CounterValue {
			typ = "counter"
		}
		add(h.name, h.help, typ, s.healthPart(h.name, h.desc, h.t, h.value))
	}
	add(CollectorCheckFailuresMetric, checkFailuresHelp, "gauge", s.checksPart())

	slices.SortStableFunc(fs, func(a, b family) int { return strings.Compare(a.name, b.name) })
	return fs
}

// part returns one of the entry's parts.
func (e *kpiEntry) part(kind partKind) part {
	p := part{entry: e, kind: kind, n: e.series.len()}
	switch kind {
	case partValues:
		p.emit, p.text = e.emitValues, e.textValues
	case partStatus:
		p.emit, p.text = e.emitStatus, e.textStatus
	case partThresholds:
		p.n, p.emit, p.text = len(e.thresholdOrder), e.emitThresholds, e.textThresholds
	case partPeriods:
		p.emit, p.text = e.emitPeriods, e.textPeriods
	case partBenchmarks:
		p.emit, p.text = e.emitBenchmarks, e.textBenchmarks
	}
	return p
}

// emit sends a const metric. NewSnapshot has already checked everything that
// could make NewConstMetric fail, so an error here is a bug; it is sent as an
// invalid metric, which the registry reports, rather than a panic.
func emit(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}

// hasLine reports whether a series has a sample in the family of kind,
// one of the families with at most one sample per series: values, status
// and periods.
func hasLine(kind partKind, st *kpi.SeriesState) bool {
	switch kind {
	case partValues:
		// Missing is not zero: a missing value has no sample at all; its
		// period and its unknown status are still exported.
		return st.Value.Valid
	case partStatus:
		return st.Status != kpi.StatusNone
	case partPeriods:
		// A series without a period, which a store should never return,
		// is left out: the year 1 would make it look stale forever.
		return !st.Period.IsZero()
	}
	return false
}

func (e *kpiEntry) emitValues(ch chan<- prometheus.Metric, lo, hi int) {
	for i := lo; i < hi; i++ {
		if st := e.series.at(i); hasLine(partValues, st) {
			emit(ch, e.value, prometheus.GaugeValue, st.Value.V, st.Labels...)
		}
	}
}

func (e *kpiEntry) emitStatus(ch chan<- prometheus.Metric, lo, hi int) {
	for i := lo; i < hi; i++ {
		if st := e.series.at(i); hasLine(partStatus, st) {
			emit(ch, e.status, prometheus.GaugeValue, st.Status.Number(), st.Labels...)
		}
	}
}

func (e *kpiEntry) emitBenchmarks(ch chan<- prometheus.Metric, lo, hi int) {
	if len(e.k.OwnSeries) == 0 {
		return
	}
	for i := lo; i < hi; i++ {
		if st := e.series.at(i); e.k.IsBenchmark(st.Labels) {
			emit(ch, e.benchmark, prometheus.GaugeValue, 1, st.Labels...)
		}
	}
}

func (e *kpiEntry) emitThresholds(ch chan<- prometheus.Metric, lo, hi int) {
	for _, o := range e.thresholdOrder[lo:hi] {
		st := e.series.at(int(o >> 1))
		if o&1 == 0 {
			emit(ch, e.amber, prometheus.GaugeValue, st.Thresholds.Amber.Value, st.Labels...)
		} else {
			emit(ch, e.red, prometheus.GaugeValue, st.Thresholds.Red.Value, st.Labels...)
		}
	}
}

func (e *kpiEntry) emitPeriods(ch chan<- prometheus.Metric, lo, hi int) {
	for i := lo; i < hi; i++ {
		if st := e.series.at(i); hasLine(partPeriods, st) {
			emit(ch, e.period, prometheus.GaugeValue, unixSeconds(st.Period), st.Labels...)
		}
	}
}

func (s *Snapshot) emitMaxAges(ch chan<- prometheus.Metric, _, _ int) {
	for _, e := range s.kpis {
		if e.k.MaxAge > 0 {
			emit(ch, e.maxAge, prometheus.GaugeValue, e.k.MaxAge.Seconds())
		}
	}
}

func (s *Snapshot) emitInfo(ch chan<- prometheus.Metric, _, _ int) {
	for _, e := range s.kpis {
		emit(ch, e.info, prometheus.GaugeValue, 1, e.infoLabel[:]...)
	}
}

func (s *Snapshot) healthPart(name string, d *prometheus.Desc, t prometheus.ValueType, value func(*kpi.CollectorHealth) (float64, bool)) part {
	line := newLineTemplate(name, []string{collectorLabel}, nil)
	return part{
		n: len(s.health),
		emit: func(ch chan<- prometheus.Metric, lo, hi int) {
			for i := lo; i < hi; i++ {
				h := &s.health[i]
				if v, ok := value(h); ok {
					emit(ch, d, t, v, h.Collector)
				}
			}
		},
		text: func(buf []byte, lo, hi int) []byte {
			for i := lo; i < hi; i++ {
				h := &s.health[i]
				if v, ok := value(h); ok {
					buf = line.append(buf, []string{h.Collector}, v)
				}
			}
			return buf
		},
	}
}

const checkFailuresHelp = "Rows or series that failed a check in the collector's latest run, by check " +
	"(rows, truncation, range, change, labels) and action: reject (nothing of the run was published; the last good values stay) " +
	"or warn (published with a warning); absent for checks that passed."

// checkSample is one sample of CollectorCheckFailuresMetric.
type checkSample struct {
	action, check, collector string
	failures                 float64
}

// checks returns the samples of CollectorCheckFailuresMetric in registry
// order (by action, check, collector).
func (s *Snapshot) checks() []checkSample {
	var out []checkSample
	for i := range s.health {
		h := &s.health[i]
		for _, f := range h.LastRunChecks {
			a := f.Action.String()
			j := slices.IndexFunc(out, func(c checkSample) bool {
				return c.collector == h.Collector && c.check == f.Check && c.action == a
			})
			if j < 0 {
				out = append(out, checkSample{action: a, check: f.Check, collector: h.Collector})
				j = len(out) - 1
			}
			out[j].failures += float64(f.Failures)
		}
	}
	slices.SortFunc(out, func(a, b checkSample) int {
		return cmp.Or(strings.Compare(a.action, b.action), strings.Compare(a.check, b.check), strings.Compare(a.collector, b.collector))
	})
	return out
}

func (s *Snapshot) checksPart() part {
	labels := []string{"action", "check", collectorLabel}
	d := prometheus.NewDesc(CollectorCheckFailuresMetric, checkFailuresHelp, labels, nil)
	line := newLineTemplate(CollectorCheckFailuresMetric, labels, nil)
	samples := s.checks()
	return part{
		n: len(samples),
		emit: func(ch chan<- prometheus.Metric, lo, hi int) {
			for _, c := range samples[lo:hi] {
				emit(ch, d, prometheus.GaugeValue, c.failures, c.action, c.check, c.collector)
			}
		},
		text: func(buf []byte, lo, hi int) []byte {
			for _, c := range samples[lo:hi] {
				buf = line.append(buf, []string{c.action, c.check, c.collector}, c.failures)
			}
			return buf
		},
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unixSeconds is t as Unix seconds, with its fraction. It avoids UnixNano,
// which overflows outside the years 1678 to 2262.
func unixSeconds(t time.Time) float64 {
	return float64(t.Unix()) + float64(t.Nanosecond())/float64(time.Second)
}
