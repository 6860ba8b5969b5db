package kpi

import "fmt"

// Action is what a failed check does to a run.
type Action int8

const (
	// Reject: nothing of the run is published, the last good values stay,
	// and the run is recorded as failed with the check named.
	Reject Action = iota + 1
	// Warn: the run is published, and the failure is recorded and exported.
	Warn
	// Off: the check is not made.
	Off
)

// String returns the config spelling of a.
func (a Action) String() string {
	switch a {
	case Reject:
		return "reject"
	case Warn:
		return "warn"
	case Off:
		return "off"
	}
	return "unset"
}

// ParseAction reads the config spelling of an action.
func ParseAction(s string) (Action, error) {
	switch s {
	case "reject":
		return Reject, nil
	case "warn":
		return Warn, nil
	case "off":
		return Off, nil
	}
	return 0, fmt.Errorf("%q is not one of reject, warn, off", s)
}

// Expectations are what a KPI's values must look like before a run
// publishes them.
type Expectations struct {
	// Min and Max bound every present value.
	Min, Max    Threshold
	RangeAction Action
	// MaxChange and MaxRelativeChange bound the move of a series from its
	// previous stored period: absolutely, and as a share of the previous value.
	MaxChange, MaxRelativeChange Threshold
	ChangeAction                 Action
	// Require lists, by label, the values a run carrying the KPI must all have.
	Require      map[string][]string
	LabelsAction Action
}

// CheckFailure is one failed check of a run: which check, what it did to
// the run, how many rows or series failed it, and the first of them.
type CheckFailure struct {
	// Check is rows, truncation, range, change or labels.
	Check  string
	Action Action
	// KPI is the KPI the check is about; empty for a check of the whole run.
	KPI      string
	Failures int
	// Message names the collector, the check, the row or series and the value.
	Message string
}
