package collector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// History is what the checks need to know of the store: the previous
// values of a run's series, and how much the last good run carried.
type History interface {
	// PreviousValues returns, aligned with obs, each series' value for its
	// latest stored period before the observation's; kpi.Missing if none.
	PreviousValues(ctx context.Context, obs []kpi.Observation) ([]kpi.Value, error)
	// LastGoodObservations is the observation count of the collector's
	// latest successful run; ok is false if it never succeeded.
	LastGoodObservations(ctx context.Context, collector string) (n int, ok bool, err error)
}

// Checks are a collector's expectations of its runs, and of the KPIs they
// carry, made between the mapping of rows to observations and the store:
// nothing implausible is published.
type Checks struct {
	collector string
	rows      config.Rows
}

// NewChecks returns the checks of collector cc, whose source is of type sourceType.
func NewChecks(cc *config.CollectorConfig, sourceType string) *Checks {
	return &Checks{collector: cc.Name, rows: cc.EffectiveRows(sourceType)}
}

// RejectedError is a run refused by a check: nothing of it is published.
type RejectedError struct {
	// Failures are every check the run failed, the rejecting ones first.
	Failures []kpi.CheckFailure
}

func (e *RejectedError) Error() string {
	var msgs []string
	for _, f := range e.Failures {
		if f.Action == kpi.Reject {
			msgs = append(msgs, f.Message)
		}
	}
	return "run rejected: " + strings.Join(msgs, "; ")
}

// Rejected returns the error that rejects a run for failures, or nil when
// none of them rejects. Warnings come after the rejecting failures.
func Rejected(failures []kpi.CheckFailure) error {
	if !slices.ContainsFunc(failures, func(f kpi.CheckFailure) bool { return f.Action == kpi.Reject }) {
		return nil
	}
	sorted := slices.Clone(failures)
	slices.SortStableFunc(sorted, func(a, b kpi.CheckFailure) int { return int(a.Action) - int(b.Action) })
	return Permanent(&RejectedError{Failures: sorted})
}

// CheckFailures returns the failed checks an error carries, if it is a
// rejection.
func CheckFailures(err error) []kpi.CheckFailure {
	var re *RejectedError
	if errors.As(err, &re) {
		return re.Failures
	}
	return nil
}

// failures gathers a run's failed checks, one entry per check and KPI,
// each with the first offender described and the rest counted.
type failures struct {
	collector string
	list      []kpi.CheckFailure
	index     map[[2]string]int
}

func (fs *failures) add(check string, a kpi.Action, kpiName, format string, args ...any) {
	if a == kpi.Off || a == 0 {
		return
	}
	key := [2]string{check, kpiName}
	if i, ok := fs.index[key]; ok {
		fs.list[i].Failures++
		return
	}
	if fs.index == nil {
		fs.index = map[[2]string]int{}
	}
	fs.index[key] = len(fs.list)
	msg := fmt.Sprintf("collector %q: check %s: ", fs.collector, check) + fmt.Sprintf(format, args...)
	fs.list = append(fs.list, kpi.CheckFailure{Check: check, Action: a, KPI: kpiName, Failures: 1, Message: msg})
}

func (fs *failures) result() []kpi.CheckFailure {
	for i := range fs.list {
		if n := fs.list[i].Failures; n > 1 {
			fs.list[i].Message += fmt.Sprintf(" (and %d more)", n-1)
		}
	}
	return fs.list
}

// Run checks a run's observations, before anything is stored: the number
// of observations, every value's range, its change from the series'
// previous period, and the label values each KPI requires. It returns
// every failed check; Rejected says whether they reject the run. An error
// is a failure to read the history, not a failed check.
func (c *Checks) Run(ctx context.Context, obs []kpi.Observation, h History) ([]kpi.CheckFailure, error) {
	fs := &failures{collector: c.collector}
	if err := c.checkRows(ctx, fs, len(obs), h); err != nil {
		return nil, err
	}
	checkRanges(fs, obs)
	if err := checkChanges(ctx, fs, obs, h); err != nil {
		return nil, err
	}
	checkLabels(fs, obs)
	return fs.result(), nil
}

func (c *Checks) checkRows(ctx context.Context, fs *failures, n int, h History) error {
	r := c.rows
	switch {
	case n < r.Min:
		fs.add("rows", r.Action, "", "the run carried %d observations, fewer than the %d expected", n, r.Min)
	case r.Max > 0 && n > r.Max:
		fs.add("rows", r.Action, "", "the run carried %d observations, more than the %d expected", n, r.Max)
	}
	if r.MaxDrop <= 0 || r.Action == kpi.Off || h == nil {
		return nil
	}
	last, ok, err := h.LastGoodObservations(ctx, c.collector)
	if err != nil {
		return err
	}
	if ok && last > 0 && float64(n) < float64(last)*(1-r.MaxDrop) {
		fs.add("rows", r.Action, "", "the run carried %d observations, %.0f%% fewer than the %d of the last good run (at most %.0f%% fewer expected): is the source cut short?",
			n, 100*float64(last-n)/float64(last), last, 100*r.MaxDrop)
	}
	return nil
}

// where names an observation in a check's message: the source's row that
// gave it when known, then its KPI, series and period.
func where(o *kpi.Observation) string {
	s := fmt.Sprintf("KPI %s, series %s, period %s", o.KPI.Name, kpi.LabelString(o.KPI, o.Labels), o.Period.Format(time.DateOnly))
	if o.Row != "" {
		return o.Row + ", " + s
	}
	return s
}

func checkRanges(fs *failures, obs []kpi.Observation) {
	for i := range obs {
		o := &obs[i]
		x := &o.KPI.Expect
		if !o.Value.Valid {
			continue
		}
		v := o.Value.V
		switch {
		case x.Min.Set && v < x.Min.Value:
			fs.add("range", x.RangeAction, o.KPI.Name, "%s: value %g is below the minimum %g%s", where(o), v, x.Min.Value, rangeWhy(o.KPI))
		case x.Max.Set && v > x.Max.Value:
			fs.add("range", x.RangeAction, o.KPI.Name, "%s: value %g is above the maximum %g%s", where(o), v, x.Max.Value, rangeWhy(o.KPI))
		}
	}
}

func rangeWhy(k *kpi.KPI) string {
	if k.Expect.Max.Set && k.Expect.Max.Value == 1 && k.Expect.Min.Set && k.Expect.Min.Value == 0 {
		return " (a ratio lies within 0 and 1)"
	}
	return ""
}

func checkChanges(ctx context.Context, fs *failures, obs []kpi.Observation, h History) error {
	if h == nil || !slices.ContainsFunc(obs, func(o kpi.Observation) bool {
		x := &o.KPI.Expect
		return x.ChangeAction != kpi.Off && (x.MaxChange.Set || x.MaxRelativeChange.Set)
	}) {
		return nil
	}
	prev, err := h.PreviousValues(ctx, obs)
	if err != nil {
		return err
	}
	for i := range obs {
		o, p := &obs[i], prev[i]
		x := &o.KPI.Expect
		if !o.Value.Valid || !p.Valid {
			continue
		}
		d := math.Abs(o.Value.V - p.V)
		switch {
		case x.MaxChange.Set && d > x.MaxChange.Value:
			fs.add("change", x.ChangeAction, o.KPI.Name, "%s: value %g moved %g from the previous period's %g, more than the %g expected", where(o), o.Value.V, d, p.V, x.MaxChange.Value)
		case x.MaxRelativeChange.Set && p.V != 0 && d/math.Abs(p.V) > x.MaxRelativeChange.Value:
			fs.add("change", x.ChangeAction, o.KPI.Name, "%s: value %g moved %.0f%% from the previous period's %g, more than the %.0f%% expected", where(o), o.Value.V, 100*d/math.Abs(p.V), p.V, 100*x.MaxRelativeChange.Value)
		}
	}
	return nil
}

func checkLabels(fs *failures, obs []kpi.Observation) {
	seen := map[*kpi.KPI]map[string]map[string]bool{}
	var order []*kpi.KPI
	for i := range obs {
		k := obs[i].KPI
		if len(k.Expect.Require) == 0 || k.Expect.LabelsAction == kpi.Off {
			continue
		}
		m := seen[k]
		if m == nil {
			m = map[string]map[string]bool{}
			seen[k] = m
			order = append(order, k)
		}
		for j, name := range k.Labels {
			if m[name] == nil {
				m[name] = map[string]bool{}
			}
			m[name][obs[i].Labels[j]] = true
		}
	}
	for _, k := range order {
		for _, name := range sortedNames(k.Expect.Require) {
			var missing []string
			for _, want := range k.Expect.Require[name] {
				if !seen[k][name][want] {
					missing = append(missing, want)
				}
			}
			if len(missing) > 0 {
				fs.add("labels", k.Expect.LabelsAction, k.Name, "KPI %s: no series with %s %q", k.Name, name, missing)
			}
		}
	}
}

func sortedNames(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// finder is a source whose reading makes checks of its own (a file source
// looks for files cut short), and reports the ones that only warn.
type finder interface {
	Findings() []kpi.CheckFailure
}

// Collect runs src for run and checks what it returns: mapping, then
// checks, then (the caller's) store. It returns the observations to
// publish with the checks that warned; a run that a check rejects returns
// an error carrying every failure (CheckFailures), and nothing to publish.
func (c *Checks) Collect(ctx context.Context, src kpi.Source, run kpi.RunInfo, h History) ([]kpi.Observation, []kpi.CheckFailure, error) {
	obs, err := src.Collect(ctx, run)
	if err != nil {
		return nil, nil, err
	}
	if run.Backfill() {
		// A backfill publishes only the periods it was asked for: a file
		// holds other years too, and the last good run is no yardstick
		// for a past period's row count.
		obs = slices.DeleteFunc(obs, func(o kpi.Observation) bool {
			return o.Period.Before(run.PeriodStart) || o.Period.After(run.PeriodEnd)
		})
		c = &Checks{collector: c.collector, rows: c.rows}
		c.rows.MaxDrop = 0
	}
	var found []kpi.CheckFailure
	if f, ok := src.(finder); ok {
		found = f.Findings()
	}
	more, err := c.Run(ctx, obs, h)
	if err != nil {
		return nil, nil, fmt.Errorf("checking the run: %w", err)
	}
	found = append(found, more...)
	if err := Rejected(found); err != nil {
		return nil, found, err
	}
	return obs, found, nil
}
