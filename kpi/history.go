package kpi

import (
	"context"
	"time"
)

// Point is one stored value of a series with the period it describes and
// when it was collected.
type Point struct {
	Period      time.Time
	Value       Value
	CollectedAt time.Time
}

// SeriesHistory is a series with some of its stored values, oldest first.
type SeriesHistory struct {
	KPI    *KPI
	Labels []string
	Points []Point
}

// HistoryQuery asks for the monthly history of the series of some KPIs:
// for each series, the value of the latest period stored in each calendar
// month (in Location), for at most Months of its most recent months with a
// value, none after Until.
type HistoryQuery struct {
	KPIs []string
	// Series, when set, narrows what is read: of a KPI it names, only the
	// series that have every label value of one of its label sets (as
	// KPI.Matches judges them; an empty set matches every series, no set
	// none). A KPI it does not name is read whole.
	Series   map[string][]map[string]string
	Until    time.Time
	Months   int
	Location *time.Location
}

// Comment is an officer's short narrative on a KPI for one month: what lies
// behind the number and what is being done about it. Labels, when set,
// narrow it to the series with those label values (a team); empty, it is
// about the KPI as a whole.
type Comment struct {
	KPI    string
	Labels map[string]string
	// Month is the first day of the calendar month the comment is for, at
	// midnight UTC (CommentMonth).
	Month     time.Time
	Text      string
	WrittenAt time.Time
}

// CommentMonth is the Month of a comment about t's calendar month, as t
// reads in its own location: comments are keyed by calendar month,
// whatever the time zone.
func CommentMonth(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// Commentary keeps officers' comments. Every comment written is kept; the
// latest for a KPI, label set and month is the one in force.
type Commentary interface {
	SaveComment(ctx context.Context, c Comment) error
	// Comments returns the comments in force for the month that starts at
	// month, ordered by KPI.
	Comments(ctx context.Context, month time.Time) ([]Comment, error)
}

// HistoryReader reads stored values back by period.
type HistoryReader interface {
	MonthlyHistory(ctx context.Context, c Catalogue, q HistoryQuery) ([]SeriesHistory, error)
	// LatestPeriod returns the latest period, at or after since and up to
	// until, stored for any series of the KPIs whose labels are those of
	// its KPI in c; the zero time when there is none.
	LatestPeriod(ctx context.Context, c Catalogue, kpis []string, since, until time.Time) (time.Time, error)
}
