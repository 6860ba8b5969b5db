package collector

import (
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/carewatch/carewatch/kpi"
)

// The named parameters a SQL collector's query may use. A backfill run
// (carewatch collect NAME --from --to) gives them the bounds of the period
// it collects, as dates at midnight in global.timezone; a scheduled run
// gives them NULL, so that a query written
//
//	WHERE snapshot_date = coalesce(:period_end, current_date)
//
// collects the current period on schedule and any past one in a backfill.
const (
	ParamPeriodStart = "period_start"
	ParamPeriodEnd   = "period_end"
)

// bindPeriods rewrites the :period_start and :period_end of query into the
// dialect's own placeholders ($1 for PostgreSQL, ? for MySQL and MariaDB,
// @p1 for SQL Server), and returns the parameters in their order. It leaves
// alone text in quotes and comments, casts (::date) and any other :name.
func bindPeriods(query string, bindType int) (string, []string) {
	var (
		b     strings.Builder
		names []string
	)
	n := len(query)
	for i := 0; i < n; {
		c := query[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for j < n && query[j] != c {
				j++
			}
			b.WriteString(query[i:min(j+1, n)])
			i = j + 1
		case c == '-' && i+1 < n && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = n - i
			}
			b.WriteString(query[i : i+j])
			i += j
		case c == '/' && i+1 < n && query[i+1] == '*':
			j := strings.Index(query[i+2:], "*/")
			end := n
			if j >= 0 {
				end = i + 2 + j + 2
			}
			b.WriteString(query[i:end])
			i = end
		case c == ':' && i+1 < n && query[i+1] == ':':
			b.WriteString("::")
			i += 2
		case c == ':':
			j := i + 1
			for j < n && (query[j] == '_' || query[j] >= 'a' && query[j] <= 'z' || query[j] >= 'A' && query[j] <= 'Z' || query[j] >= '0' && query[j] <= '9') {
				j++
			}
			name := query[i+1 : j]
			if name != ParamPeriodStart && name != ParamPeriodEnd {
				b.WriteString(query[i:j])
				i = j
				continue
			}
			names = append(names, name)
			switch bindType {
			case sqlx.DOLLAR:
				b.WriteString("$" + strconv.Itoa(len(names)))
			case sqlx.AT:
				b.WriteString("@p" + strconv.Itoa(len(names)))
			default:
				b.WriteByte('?')
			}
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), names
}

// periodArgs are the values of names for run: its period bounds in a
// backfill, NULL on schedule.
func periodArgs(names []string, run kpi.RunInfo) []any {
	args := make([]any, len(names))
	for i, name := range names {
		t := run.PeriodStart
		if name == ParamPeriodEnd {
			t = run.PeriodEnd
		}
		if t.IsZero() {
			continue
		}
		loc := run.Location
		if loc == nil {
			loc = time.UTC
		}
		// A date, as the server's date type reads it: the period's day in
		// the council's time zone.
		args[i] = t.In(loc).Format(time.DateOnly)
	}
	return args
}

// UsesPeriods reports whether a SQL query uses :period_start or
// :period_end, and so can collect past periods.
func UsesPeriods(query string) bool {
	_, names := bindPeriods(query, sqlx.DOLLAR)
	return len(names) > 0
}
