package config

import (
	"math"
	"strings"

	"github.com/carewatch/carewatch/kpi"
)

// KPIExpect is what a KPI's values must look like before a run publishes
// them. Each check says what a failure does: reject the run, warn, or off.
type KPIExpect struct {
	// Range bounds every value. By default values are not negative, and a
	// ratio (unit ratio, or a name ending _ratio) lies within 0 and 1; both
	// reject by default.
	Range *RangeExpect `yaml:"range"`
	// Change bounds the move from the series' previous stored period.
	Change *ChangeExpect `yaml:"change"`
	// Labels lists label values that must all be present in a run that
	// carries the KPI: every team, every area of a benchmark.
	Labels *LabelsExpect `yaml:"labels"`
}

// RangeExpect bounds values.
type RangeExpect struct {
	Min    *float64 `yaml:"min"`
	Max    *float64 `yaml:"max"`
	OnFail string   `yaml:"on_fail"`
}

// ChangeExpect bounds the largest believable change from the previous period.
type ChangeExpect struct {
	// Max is the largest absolute change, in the KPI's unit.
	Max *float64 `yaml:"max"`
	// MaxRelative is the largest change as a share of the previous value
	// (0.5: half as much again, or half as little).
	MaxRelative *float64 `yaml:"max_relative"`
	OnFail      string   `yaml:"on_fail"`
}

// LabelsExpect lists required label values.
type LabelsExpect struct {
	Require map[string][]string `yaml:"require"`
	OnFail  string              `yaml:"on_fail"`
}

// CollectorExpect is what a collector's runs must look like.
type CollectorExpect struct {
	// Rows bounds the observations a run carries.
	Rows *RowsExpect `yaml:"rows"`
	// Truncation (file sources) refuses a file that looks cut short: its
	// last line has no line end. On by default, rejecting.
	Truncation *ActionOnly `yaml:"truncation"`
}

// RowsExpect bounds the number of observations of a run.
type RowsExpect struct {
	// Min is 1 by default: a query that returns nothing is news.
	Min *int `yaml:"min"`
	Max *int `yaml:"max"`
	// MaxDrop is the largest believable fall against the last good run, as
	// a share of its observations: 0.3 by default.
	MaxDrop *float64 `yaml:"max_drop"`
	// OnFail is reject by default for a file source (a file cut at a line
	// end loses rows), warn for the others.
	OnFail string `yaml:"on_fail"`
}

// ActionOnly is a check whose only setting is what a failure does.
type ActionOnly struct {
	OnFail string `yaml:"on_fail"`
}

// Check outcomes, as the config spells them.
const (
	ActionReject = "reject"
	ActionWarn   = "warn"
	ActionOff    = "off"
)

// Defaults of the collector checks.
const (
	DefaultMinRows = 1
	DefaultMaxDrop = 0.3
)

// Rows is a collector's row check, with its defaults applied.
type Rows struct {
	Min, Max int
	MaxDrop  float64
	Action   kpi.Action
}

// EffectiveRows is the collector's row check with its defaults, for a
// collector of a source of type sourceType.
func (cc *CollectorConfig) EffectiveRows(sourceType string) Rows {
	r := Rows{Min: DefaultMinRows, MaxDrop: DefaultMaxDrop, Action: kpi.Warn}
	if sourceType == SourceFile {
		r.Action = kpi.Reject
	}
	if cc.Expect == nil || cc.Expect.Rows == nil {
		return r
	}
	e := cc.Expect.Rows
	if e.Min != nil {
		r.Min = *e.Min
	}
	if e.Max != nil {
		r.Max = *e.Max
	}
	if e.MaxDrop != nil {
		r.MaxDrop = *e.MaxDrop
	}
	if a, err := kpi.ParseAction(e.OnFail); err == nil && e.OnFail != "" {
		r.Action = a
	}
	return r
}

// EffectiveTruncation is what a file that looks cut short does to a run.
func (cc *CollectorConfig) EffectiveTruncation() kpi.Action {
	if cc.Expect != nil && cc.Expect.Truncation != nil && cc.Expect.Truncation.OnFail != "" {
		if a, err := kpi.ParseAction(cc.Expect.Truncation.OnFail); err == nil {
			return a
		}
	}
	return kpi.Reject
}

func (v *validator) action(p, s string) kpi.Action {
	if s == "" {
		return 0
	}
	a, err := kpi.ParseAction(s)
	if err != nil {
		v.addf(p, "%v", err)
	}
	return a
}

// kpiExpect builds a KPI's expectations, with the defaults of its unit.
func (v *validator) kpiExpect(p string, e *KPIExpect, k *kpi.KPI, labels map[string]bool) kpi.Expectations {
	ratio := k.Unit == "ratio" || strings.HasSuffix(k.Name, "_ratio")
	x := kpi.Expectations{Min: kpi.At(0), RangeAction: kpi.Reject, ChangeAction: kpi.Warn, LabelsAction: kpi.Warn}
	if ratio {
		x.Max = kpi.At(1)
	}
	if e == nil {
		return x
	}
	finite := func(p string, f *float64) bool {
		if f != nil && (math.IsNaN(*f) || math.IsInf(*f, 0)) {
			v.addf(p, "must be a finite number")
			return false
		}
		return f != nil
	}
	if r := e.Range; r != nil {
		rp := p + ".range"
		if finite(rp+".min", r.Min) {
			x.Min = kpi.At(*r.Min)
		}
		if finite(rp+".max", r.Max) {
			x.Max = kpi.At(*r.Max)
		}
		if x.Min.Set && x.Max.Set && x.Min.Value > x.Max.Value {
			v.addf(rp+".max", "max %g is below min %g", x.Max.Value, x.Min.Value)
		}
		if a := v.action(rp+".on_fail", r.OnFail); a != 0 {
			x.RangeAction = a
		}
	}
	if c := e.Change; c != nil {
		cp := p + ".change"
		if finite(cp+".max", c.Max) {
			if *c.Max <= 0 {
				v.addf(cp+".max", "must be positive")
			}
			x.MaxChange = kpi.At(*c.Max)
		}
		if finite(cp+".max_relative", c.MaxRelative) {
			if *c.MaxRelative <= 0 {
				v.addf(cp+".max_relative", "must be positive: 0.5 allows half as much again, or half as little")
			}
			x.MaxRelativeChange = kpi.At(*c.MaxRelative)
		}
		if c.Max == nil && c.MaxRelative == nil {
			v.addf(cp, "give max (in the KPI's unit), max_relative (a share of the previous value) or both")
		}
		if a := v.action(cp+".on_fail", c.OnFail); a != 0 {
			x.ChangeAction = a
		}
	}
	if l := e.Labels; l != nil {
		lp := p + ".labels"
		if len(l.Require) == 0 {
			v.addf(lp+".require", "is required: the label values every run must carry, e.g. {team: [North, South]}")
		}
		for _, name := range sortedKeys(l.Require) {
			switch {
			case !labels[name]:
				v.addf(lp+".require", "label %q is not one of the KPI's labels %v", name, k.Labels)
			case len(l.Require[name]) == 0:
				v.addf(lp+".require."+name, "lists no value")
			}
		}
		x.Require = l.Require
		if a := v.action(lp+".on_fail", l.OnFail); a != 0 {
			x.LabelsAction = a
		}
	}
	return x
}

// collectorExpect checks a collector's expectations.
func (v *validator) collectorExpect(p string, cc *CollectorConfig, sourceType string) {
	e := cc.Expect
	if e == nil {
		return
	}
	p += ".expect"
	if r := e.Rows; r != nil {
		rp := p + ".rows"
		if r.Min != nil && *r.Min < 0 {
			v.addf(rp+".min", "must not be negative")
		}
		if r.Max != nil && *r.Max < 1 {
			v.addf(rp+".max", "must be at least 1")
		}
		if r.Min != nil && r.Max != nil && *r.Max < *r.Min {
			v.addf(rp+".max", "max %d is below min %d", *r.Max, *r.Min)
		}
		if r.MaxDrop != nil && (*r.MaxDrop <= 0 || *r.MaxDrop > 1 || math.IsNaN(*r.MaxDrop)) {
			v.addf(rp+".max_drop", "%g must be a share above 0 and at most 1 (0.3: a run may carry 30%% fewer observations than the last good one)", *r.MaxDrop)
		}
		v.action(rp+".on_fail", r.OnFail)
	}
	if t := e.Truncation; t != nil {
		if sourceType != "" && sourceType != SourceFile {
			v.addf(p+".truncation", "is for file sources, and source %q is a %s source", cc.Source, sourceType)
		}
		v.action(p+".truncation.on_fail", t.OnFail)
	}
}
