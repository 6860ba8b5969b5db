package kpi

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Problem is a rule a KPI definition breaks: Field is the part of the
// definition ("name", "labels[1]"), Message what is wrong with it.
type Problem struct {
	Field   string
	Message string
}

// The naming rules of the catalogue, here and nowhere else: a KPI's metric
// name is MetricPrefix + its name, beside carewatch's own metrics, and its
// labels sit beside the labels carewatch's shared families add.
var (
	nameRe      = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	labelNameRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// MaxLabelValueBytes is the longest label value carewatch stores and
// exports, in bytes of UTF-8. Label values name teams, services, areas and
// codes; a longer one is almost always a wrong column (free text, a note, a
// whole JSON document) and would bloat every series that carries it.
const MaxLabelValueBytes = 256

// reservedPrefixes are the name spaces of carewatch's own metrics
// (carewatch_kpi_*, carewatch_collector_*, carewatch_config_*,
// carewatch_store_*, carewatch_build_info).
var reservedPrefixes = []string{"kpi_", "collector_", "config_", "store_", "build_"}

// reservedLabels are label names carewatch's own series use beside a KPI's
// labels, or that Prometheus gives a meaning of its own.
var reservedLabels = map[string]bool{
	"kpi": true, "level": true, "collector": true, "metric": true, "unit": true, "direction": true,
	"job": true, "instance": true, "le": true, "quantile": true,
}

// ReservedLabels returns the label names a KPI may not have, sorted.
func ReservedLabels() []string {
	return slices.Sorted(maps.Keys(reservedLabels))
}

// nonBaseUnits are name parts Prometheus conventions (and promtool) refuse:
// durations are in seconds, and abbreviations hide the unit.
var nonBaseUnits = map[string]string{
	"minutes": "seconds", "hours": "seconds", "days": "seconds", "weeks": "seconds",
	"s": "seconds", "ms": "seconds", "us": "seconds", "ns": "seconds", "sec": "seconds",
	"m": "a spelt-out unit", "h": "seconds", "d": "seconds", "percent": "a 0-1 ratio ending in _ratio", "pct": "a 0-1 ratio ending in _ratio",
}

// NameProblems returns what is wrong with k's name and label names, at
// most one problem for the name and one for each label, in the order of
// the definition; none when carewatch can export k beside its own metrics.
// The configuration refuses a KPI with problems, so the rest of carewatch
// may trust a catalogue it was given.
func (k *KPI) NameProblems() []Problem {
	var out []Problem
	if msg := nameProblem(k.Name); msg != "" {
		out = append(out, Problem{Field: "name", Message: msg})
	}
	seen := make(map[string]bool, len(k.Labels))
	for i, l := range k.Labels {
		var msg string
		switch {
		case !labelNameRe.MatchString(l) || strings.HasPrefix(l, "__"):
			msg = fmt.Sprintf("%q is not a valid Prometheus label name", l)
		case reservedLabels[l]:
			msg = fmt.Sprintf("label %q is reserved for carewatch's own series", l)
		case seen[l]:
			msg = fmt.Sprintf("label %q appears twice", l)
		}
		seen[l] = true
		if msg != "" {
			out = append(out, Problem{Field: fmt.Sprintf("labels[%d]", i), Message: msg})
		}
	}
	return out
}

// nameProblem says why a KPI name would make a bad metric name, or "".
func nameProblem(name string) string {
	switch {
	case name == "":
		return "is required"
	case !nameRe.MatchString(name):
		return fmt.Sprintf("%q must be lower-case letters, digits and underscores, starting with a letter", name)
	case strings.HasPrefix(name, MetricPrefix):
		return fmt.Sprintf("%q must not start with %s: the prefix is added to the metric name", name, MetricPrefix)
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return fmt.Sprintf("%q must not start with %s: names starting with %q are reserved for carewatch's own metrics", name, p, p)
		}
	}
	parts := strings.Split(name, "_")
	for _, part := range parts {
		if base, bad := nonBaseUnits[part]; bad {
			return fmt.Sprintf("%q names the unit %q: use %s (Prometheus base units; promtool refuses the name)", name, part, base)
		}
		if part == "gauge" || part == "counter" {
			return fmt.Sprintf("%q must not name its metric type", name)
		}
	}
	switch last := parts[len(parts)-1]; last {
	case "total", "count", "sum", "bucket", "info", "created":
		return fmt.Sprintf("%q must not end in _%s: that suffix is for counters, histograms and info metrics, and KPI values are gauges", name, last)
	}
	return ""
}
