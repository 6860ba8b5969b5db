// Package report builds the KPI pack: what a council's scrutiny committee
// and improvement board read each month. For the KPIs a Spec lists, section
// by section, it shows the latest value in its unit, its RAG status in words,
// colour and shape, the threshold in force, the direction of travel against
// the previous period and the same period a year before, a 13-month
// sparkline, the statistical neighbours' average, England and the council's
// rank where benchmark series exist, and officers' commentary, after a
// summary of the exceptions. It renders one self-contained, accessible HTML
// page: inline CSS and SVG, no script, nothing fetched from anywhere.
//
// The pack reads the store only, through the kpi contracts (Store); it never
// touches a source.
package report

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/carewatch/carewatch/kpi"
)

// Months is how many months of history a pack shows per series: the
// sparkline's 13 periods, which include the same month a year before.
const Months = 13

// Store is what the pack reads: the monthly history of series and the
// commentary in force for a month.
type Store interface {
	kpi.HistoryReader
	Comments(ctx context.Context, month time.Time) ([]kpi.Comment, error)
}

// Spec says what a pack holds.
type Spec struct {
	// Title heads the pack; Council names who it is about.
	Title   string
	Council string
	// Sections are shown in order, after the exceptions.
	Sections []Section
}

// Section is one part of the pack, e.g. "Children's social work workforce".
type Section struct {
	Title string
	Items []Item
}

// Item is one KPI of a section.
type Item struct {
	KPI string
	// Title names the KPI in the pack; empty, it is taken from the KPI's help.
	Title string
	// Match selects the series shown: those whose labels have these values
	// (e.g. team=all for the service as a whole). Empty shows every series.
	Match map[string]string
	// Benchmark, when set, adds neighbours' average, England and rank.
	Benchmark *Benchmark
}

// Benchmark names the series that compare the council with others: those
// of KPI (the item's own when empty) whose ScopeLabel says council,
// stat_neighbour, region or england, as carewatch's benchmark files are
// labelled.
type Benchmark struct {
	KPI        string
	ScopeLabel string
	// NameLabel, when set, holds an area's name (la_name), shown for the
	// region.
	NameLabel string
}

// Benchmark scopes, as the benchmark file reader labels its rows.
const (
	ScopeCouncil   = "council"
	ScopeNeighbour = "stat_neighbour"
	ScopeRegion    = "region"
	ScopeEngland   = "england"
)

// DefaultScopeLabel is the label that carries a benchmark row's scope.
const DefaultScopeLabel = "scope"

// Options say which pack to build.
type Options struct {
	// Month is the first day of the month the pack reports on; the zero time
	// is the latest month any of its series has a value for.
	Month time.Time
	// Location is the council's time zone, in which months begin and end
	// and times are shown; nil is UTC.
	Location *time.Location
	// Now is when the pack is built: staleness is judged at the end of the
	// pack's month or now, whichever is earlier.
	Now time.Time
}

// KPINames returns the KPIs spec reads: its items' and their benchmarks'.
func (s Spec) KPINames() []string {
	seen := map[string]bool{}
	var names []string
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, sec := range s.Sections {
		for _, it := range sec.Items {
			add(it.KPI)
			if it.Benchmark != nil {
				add(it.Benchmark.KPI)
			}
		}
	}
	return names
}

// Fetch is what the pack needs from the store, read by Read.
type Fetch struct {
	Month    time.Time
	History  []kpi.SeriesHistory
	Comments []kpi.Comment
}

// Series returns the series of each KPI that spec shows or compares with
// (kpi.HistoryQuery.Series): those its items match, and the benchmark
// series of each scope the pack reads. A KPI an item shows whole is left
// out, to be read whole.
func (s Spec) Series(cat kpi.Catalogue) map[string][]map[string]string {
	whole := map[string]bool{}
	sets := map[string][]map[string]string{}
	for _, sec := range s.Sections {
		for _, it := range sec.Items {
			k := cat[it.KPI]
			if k == nil {
				continue
			}
			if len(it.Match) == 0 {
				whole[k.Name] = true
			} else {
				sets[k.Name] = append(sets[k.Name], it.Match)
			}
			if b := it.Benchmark; b != nil {
				name := cmp.Or(b.KPI, k.Name)
				for _, scope := range []string{ScopeCouncil, ScopeNeighbour, ScopeRegion, ScopeEngland} {
					sets[name] = append(sets[name], map[string]string{cmp.Or(b.ScopeLabel, DefaultScopeLabel): scope})
				}
			}
		}
	}
	for name := range whole {
		delete(sets, name)
	}
	return sets
}

// Read runs the store queries a pack needs: the monthly history up to the
// end of o.Month (or all of it) of the series the pack shows or compares
// with, the pack's month when o.Month is zero (the latest month any series
// of its KPIs has a value for, shown or not), then the commentary of the
// pack's month.
func Read(ctx context.Context, st Store, cat kpi.Catalogue, spec Spec, o Options) (*Fetch, error) {
	loc := location(o)
	until := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	if !o.Month.IsZero() {
		until = monthStart(o.Month, loc).AddDate(0, 1, 0).Add(-time.Nanosecond)
	}
	names := spec.KPINames()
	hist, err := st.MonthlyHistory(ctx, cat, kpi.HistoryQuery{KPIs: names, Series: spec.Series(cat), Until: until, Months: Months, Location: loc})
	if err != nil {
		return nil, fmt.Errorf("report: reading history: %w", err)
	}
	f := &Fetch{History: hist}
	if !o.Month.IsZero() {
		f.Month = monthStart(o.Month, loc)
	} else {
		var latest time.Time
		for _, h := range hist {
			if n := len(h.Points); n > 0 && h.Points[n-1].Period.After(latest) {
				latest = h.Points[n-1].Period
			}
		}
		// A series the pack does not show may have a later month.
		var since time.Time
		if !latest.IsZero() {
			since = monthStart(latest, loc).AddDate(0, 1, 0)
		}
		later, err := st.LatestPeriod(ctx, cat, names, since, until)
		if err != nil {
			return nil, fmt.Errorf("report: reading the latest month: %w", err)
		}
		if later.After(latest) {
			latest = later
		}
		if latest.IsZero() {
			f.Month = monthStart(cmp.Or(o.Now, time.Now()), loc)
		} else {
			f.Month = monthStart(latest, loc)
		}
	}
	if f.Comments, err = st.Comments(ctx, kpi.CommentMonth(f.Month)); err != nil {
		return nil, fmt.Errorf("report: reading commentary: %w", err)
	}
	return f, nil
}

// Build reads the store and assembles the pack.
func Build(ctx context.Context, st Store, cat kpi.Catalogue, spec Spec, o Options) (*Pack, error) {
	f, err := Read(ctx, st, cat, spec, o)
	if err != nil {
		return nil, err
	}
	return Assemble(cat, spec, f, o), nil
}

func location(o Options) *time.Location {
	if o.Location == nil {
		return time.UTC
	}
	return o.Location
}

// monthStart is the first instant of t's month in loc.
func monthStart(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, loc)
}

// ParseMonth reads a pack period written as 2026-11.
func ParseMonth(s string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	t, err := time.ParseInLocation("2006-01", strings.TrimSpace(s), loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("period %q is not a month written as YYYY-MM (e.g. 2026-11)", s)
	}
	return t, nil
}
