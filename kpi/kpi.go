// Package kpi is carewatch's domain: what a KPI is, what an observation of it
// is, how its RAG status is evaluated, and the contracts that the collector,
// store and exporter rooms meet through. It imports the standard library only.
package kpi

import (
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"time"
)

// MetricPrefix is put before every KPI's name to form its Prometheus metric name.
const MetricPrefix = "carewatch_"

// Direction says which way a KPI improves.
type Direction int8

const (
	// LowerIsBetter KPIs (caseloads, vacancy rates, waits) turn amber and red above their thresholds.
	LowerIsBetter Direction = iota + 1
	// HigherIsBetter KPIs (timeliness ratios) turn amber and red below their thresholds.
	HigherIsBetter
)

// String returns the config spelling of d.
func (d Direction) String() string {
	switch d {
	case LowerIsBetter:
		return "lower_is_better"
	case HigherIsBetter:
		return "higher_is_better"
	}
	return "unset"
}

// ParseDirection reads the config spelling of a direction.
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "lower_is_better", "lower":
		return LowerIsBetter, nil
	case "higher_is_better", "higher":
		return HigherIsBetter, nil
	}
	return 0, fmt.Errorf("direction %q is not one of lower_is_better, higher_is_better", s)
}

// Status is a series' RAG status.
type Status int8

const (
	// StatusNone is the status of a KPI without thresholds: it has no RAG status at all.
	StatusNone Status = iota
	// StatusUnknown is the status of a KPI with thresholds whose latest value is missing.
	StatusUnknown
	// StatusGreen means the value is on the good side of the amber threshold.
	StatusGreen
	// StatusAmber means the value crossed the amber threshold but not the red one.
	StatusAmber
	// StatusRed means the value crossed the red threshold.
	StatusRed
)

// String returns the lower-case name of s; StatusNone is the empty string.
func (s Status) String() string {
	switch s {
	case StatusUnknown:
		return "unknown"
	case StatusGreen:
		return "green"
	case StatusAmber:
		return "amber"
	case StatusRed:
		return "red"
	}
	return ""
}

// ParseStatus is the inverse of Status.String.
func ParseStatus(s string) (Status, error) {
	switch s {
	case "":
		return StatusNone, nil
	case "unknown":
		return StatusUnknown, nil
	case "green":
		return StatusGreen, nil
	case "amber":
		return StatusAmber, nil
	case "red":
		return StatusRed, nil
	}
	return StatusNone, fmt.Errorf("unknown status %q", s)
}

// Number is the value exported for s: green 0, amber 1, red 2, unknown -1.
// Alert rules and dashboards rely on these numbers; do not change them.
func (s Status) Number() float64 {
	switch s {
	case StatusGreen:
		return 0
	case StatusAmber:
		return 1
	case StatusRed:
		return 2
	}
	return -1
}

// Threshold is one optional boundary.
type Threshold struct {
	Value float64
	Set   bool
}

// At returns a set threshold at v.
func At(v float64) Threshold { return Threshold{Value: v, Set: true} }

// Thresholds are a KPI's amber and red boundaries. A value strictly beyond a
// boundary, in the KPI's bad direction, has crossed it.
type Thresholds struct {
	Amber Threshold
	Red   Threshold
}

// Any reports whether at least one boundary is set.
func (t Thresholds) Any() bool { return t.Amber.Set || t.Red.Set }

// Step is one change of a trajectory: from its date on, the boundaries it
// sets replace the ones in force before it; a boundary it leaves unset
// carries on as it was.
type Step struct {
	From       time.Time
	Thresholds Thresholds
}

// Override replaces a KPI's thresholds for the series whose labels match every
// pair in Match. A boundary the override leaves unset is inherited.
type Override struct {
	Match      map[string]string
	Thresholds Thresholds
	// Trajectory moves the override's thresholds on dates, in date order.
	Trajectory []Step
}

// KPI is one indicator of the catalogue: the single source of truth for its
// metric name, help, unit, direction, thresholds, labels and freshness.
type KPI struct {
	// Name is the KPI's own name; its metric is MetricPrefix + Name.
	Name string
	Help string
	// Unit is informational (ratio, seconds, cases, people, working_days...);
	// the metric name carries the base unit by convention.
	Unit       string
	Direction  Direction
	Labels     []string
	Thresholds Thresholds
	// Trajectory moves Thresholds on dates, in date order: an improvement
	// plan that tightens a target. A period is judged by the thresholds in
	// force on its date.
	Trajectory []Step
	Overrides  []Override
	// OwnSeries, when set, holds the label values that mark the council's
	// own series; every other series of the KPI is a benchmark (a
	// statistical neighbour, the region, England). A benchmark keeps its
	// value and RAG status for dashboards and the pack, but KPI alerts are
	// about the council's own services only. Unset, every series is its own.
	OwnSeries map[string]string
	// Expect is what the KPI's values must look like to be published.
	Expect Expectations
	// MaxAge is how long after the end of the period it describes a value is
	// still fresh; zero means the KPI never goes stale.
	MaxAge time.Duration
}

// MetricName is the Prometheus metric name of k's value.
func (k *KPI) MetricName() string { return MetricPrefix + k.Name }

// HasThresholds reports whether k, or any of its overrides, has a boundary, so
// that its series have a RAG status.
func (k *KPI) HasThresholds() bool {
	if k.Thresholds.Any() || anyStep(k.Trajectory) {
		return true
	}
	for _, o := range k.Overrides {
		if o.Thresholds.Any() || anyStep(o.Trajectory) {
			return true
		}
	}
	return false
}

func anyStep(steps []Step) bool {
	for _, s := range steps {
		if s.Thresholds.Any() {
			return true
		}
	}
	return false
}

// ThresholdsFor returns the thresholds that apply to the series with the given
// label values (aligned with k.Labels) before any step of a trajectory.
func (k *KPI) ThresholdsFor(values []string) Thresholds {
	return k.ThresholdsAt(values, time.Time{})
}

// ThresholdsAt returns the thresholds in force at instant at for the series
// with the given label values (aligned with k.Labels): the KPI's, moved by
// the steps of its trajectory dated at or before at, then replaced by those
// of the override matching the most labels (among equally specific ones,
// the first in the catalogue), moved by the override's own steps.
func (k *KPI) ThresholdsAt(values []string, at time.Time) Thresholds {
	t := along(k.Thresholds, k.Trajectory, at)
	best := -1
	var chosen *Override
	for i := range k.Overrides {
		o := &k.Overrides[i]
		if len(o.Match) > best && k.Matches(o.Match, values) {
			best, chosen = len(o.Match), o
		}
	}
	if chosen != nil {
		t = t.With(along(chosen.Thresholds, chosen.Trajectory, at))
	}
	return t
}

// With returns t with the boundaries that u sets replaced by u's.
func (t Thresholds) With(u Thresholds) Thresholds {
	if u.Amber.Set {
		t.Amber = u.Amber
	}
	if u.Red.Set {
		t.Red = u.Red
	}
	return t
}

// along applies the steps dated at or before at to t.
func along(t Thresholds, steps []Step, at time.Time) Thresholds {
	for _, s := range steps {
		if s.From.After(at) {
			break
		}
		t = t.With(s.Thresholds)
	}
	return t
}

// Changes lists the dates on which k's thresholds move, in order.
func (k *KPI) Changes() []time.Time {
	var out []time.Time
	for _, s := range k.Trajectory {
		out = append(out, s.From)
	}
	for _, o := range k.Overrides {
		for _, s := range o.Trajectory {
			out = append(out, s.From)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// Matches reports whether the series with the given label values (aligned
// with k.Labels) has every label value of match.
func (k *KPI) Matches(match map[string]string, values []string) bool {
	for name, want := range match {
		i := k.LabelIndex(name)
		if i < 0 || i >= len(values) || values[i] != want {
			return false
		}
	}
	return true
}

// IsBenchmark reports whether the series with the given label values
// (aligned with k.Labels) benchmarks the council against others rather than
// measuring its own services: k has OwnSeries and the series does not match it.
func (k *KPI) IsBenchmark(values []string) bool {
	return len(k.OwnSeries) > 0 && !k.Matches(k.OwnSeries, values)
}

// LabelIndex returns the position of label name in k.Labels, or -1.
func (k *KPI) LabelIndex(name string) int {
	for i, l := range k.Labels {
		if l == name {
			return i
		}
	}
	return -1
}

// Evaluate returns the RAG status of the value of the series with the given
// label values for the period that starts at period, and the thresholds in
// force then, which it was judged against.
func (k *KPI) Evaluate(values []string, period time.Time, v Value) (Status, Thresholds) {
	if !k.HasThresholds() {
		return StatusNone, Thresholds{}
	}
	t := k.ThresholdsAt(values, period)
	return k.Judge(v, t), t
}

// Judge returns the RAG status of v against thresholds t in k's direction:
// StatusNone when t sets no boundary, StatusUnknown for a missing value.
func (k *KPI) Judge(v Value, t Thresholds) Status {
	if !t.Any() {
		return StatusNone
	}
	if !v.Valid {
		return StatusUnknown
	}
	if crossed(k.Direction, v.V, t.Red) {
		return StatusRed
	}
	if crossed(k.Direction, v.V, t.Amber) {
		return StatusAmber
	}
	return StatusGreen
}

func crossed(d Direction, v float64, t Threshold) bool {
	if !t.Set {
		return false
	}
	if d == HigherIsBetter {
		return v < t.Value
	}
	return v > t.Value
}

// Value is a number that may be missing. The zero Value is missing: a NULL,
// an empty cell, a suppressed statistic or a division by zero is never 0.
type Value struct {
	V     float64
	Valid bool
}

// Known returns a present value.
func Known(v float64) Value { return Value{V: v, Valid: true} }

// Missing is the missing value.
var Missing = Value{}

// String formats v, or "missing".
func (v Value) String() string {
	if !v.Valid {
		return "missing"
	}
	return fmt.Sprintf("%g", v.V)
}

// Catalogue is the set of KPIs by name.
type Catalogue map[string]*KPI

// Names returns the catalogue's KPI names in order.
func (c Catalogue) Names() []string {
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Observation is one value of one series for the period it describes.
type Observation struct {
	KPI *KPI
	// Labels are the label values, aligned with KPI.Labels.
	Labels []string
	// Period is the instant the value describes: a snapshot date, the start of
	// a month, a reporting date such as 30 September.
	Period time.Time
	Value  Value
	// Row names the row of the source that gave the value, as the
	// source's errors name it ("row 3", `file "a.csv", row 12`), for the
	// messages of the checks; empty when not known. It is not stored.
	Row string
}

// SeriesID identifies the series of a KPI with the given label values. It is
// a stable 63-bit hash, so writers need no round trip to learn it, of the
// KPI's name and its labels taken in the order of their names, as
// Prometheus identifies a series: listing a KPI's labels in another order
// keeps its series.
func SeriesID(k *KPI, values []string) int64 {
	h := fnv.New64a()
	h.Write([]byte(k.Name))
	write := func(i int) {
		h.Write([]byte{0xff})
		h.Write([]byte(k.Labels[i]))
		h.Write([]byte{0xfe})
		if i < len(values) {
			h.Write([]byte(values[i]))
		}
	}
	if slices.IsSorted(k.Labels) {
		for i := range k.Labels {
			write(i)
		}
	} else {
		for _, i := range sortedLabels(k.Labels) {
			write(i)
		}
	}
	return int64(h.Sum64() &^ (1 << 63))
}

// sortedLabels returns the indexes of labels in the order of their names.
func sortedLabels(labels []string) []int {
	order := make([]int, len(labels))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(labels[a], labels[b]) })
	return order
}

// LabelString renders label values as name="value" pairs, for logs and errors.
func LabelString(k *KPI, values []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, name := range k.Labels {
		if i > 0 {
			b.WriteByte(',')
		}
		v := ""
		if i < len(values) {
			v = values[i]
		}
		fmt.Fprintf(&b, "%s=%q", name, v)
	}
	b.WriteByte('}')
	return b.String()
}
