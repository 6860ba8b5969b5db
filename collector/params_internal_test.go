package collector

import (
	"slices"
	"testing"

	"github.com/jmoiron/sqlx"
)

func TestPeriodParametersTakeEachDialectsPlaceholders(t *testing.T) {
	const q = `SELECT coalesce(:period_end::date, today) AS d, ':period_start' AS s, "x:period_end" -- :period_start
FROM r /* :period_end */ WHERE a[1:n] AND p BETWEEN :period_start AND :period_end AND q = :other`
	for _, tc := range []struct {
		bind int
		want string
	}{
		{sqlx.DOLLAR, `SELECT coalesce($1::date, today) AS d, ':period_start' AS s, "x:period_end" -- :period_start
FROM r /* :period_end */ WHERE a[1:n] AND p BETWEEN $2 AND $3 AND q = :other`},
		{sqlx.QUESTION, `SELECT coalesce(?::date, today) AS d, ':period_start' AS s, "x:period_end" -- :period_start
FROM r /* :period_end */ WHERE a[1:n] AND p BETWEEN ? AND ? AND q = :other`},
		{sqlx.AT, `SELECT coalesce(@p1::date, today) AS d, ':period_start' AS s, "x:period_end" -- :period_start
FROM r /* :period_end */ WHERE a[1:n] AND p BETWEEN @p2 AND @p3 AND q = :other`},
	} {
		got, names := bindPeriods(q, tc.bind)
		if got != tc.want || !slices.Equal(names, []string{"period_end", "period_start", "period_end"}) {
			t.Errorf("bind %d:\n%s\n%v\nwant\n%s", tc.bind, got, names, tc.want)
		}
	}
	if UsesPeriods("SELECT today::date FROM r -- :period_end") {
		t.Error("a parameter in a comment counts as used")
	}
}
