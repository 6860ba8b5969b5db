package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/store"
)

// rawMonthly is the rollup computed from observations directly: each
// series' latest period of each Europe/London month.
const rawMonthly = `
	SELECT DISTINCT ON (series_id, date_trunc('month', period, 'Europe/London'))
	       series_id, date_trunc('month', period, 'Europe/London') AS month, period, value, run_id
	FROM observations
	ORDER BY series_id, date_trunc('month', period, 'Europe/London'), period DESC`

// assertRollupMatches fails unless every series' months as the store
// serves them (closed months from observations_monthly, open ones from
// observations) are what rawMonthly computes, and the table holds exactly
// the closed months.
func assertRollupMatches(t *testing.T, s *store.Store, when string) {
	t.Helper()
	for _, q := range []struct{ name, rollup, raw string }{
		{"served", `SELECT s.id, m.* FROM series s CROSS JOIN LATERAL observations_monthly_of(s.id) m`, rawMonthly},
		{"stored", `SELECT * FROM observations_monthly`,
			`SELECT r.* FROM (` + rawMonthly + `) r, observations_monthly_frontier f WHERE r.month < f.month`},
	} {
		var diff []string
		err := s.DB().SelectContext(context.Background(), &diff, `
			WITH raw AS (`+q.raw+`), rollup AS (`+q.rollup+`)
			(SELECT 'missing: ' || r::text FROM (SELECT * FROM raw EXCEPT SELECT * FROM rollup) r)
			UNION ALL
			(SELECT 'not in observations: ' || m::text FROM (SELECT * FROM rollup EXCEPT SELECT * FROM raw) m)`)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range diff {
			t.Errorf("%s: %s months: %s", when, q.name, d)
		}
	}
	if n := count(t, s, "observations_monthly"); n == 0 {
		t.Errorf("%s: no month is closed", when)
	}
}

func TestMonthlyRollupFollowsEveryWrite(t *testing.T) {
	s, _, c := newStore(t)
	k := caseload()
	london, _ := time.LoadLocation("Europe/London")
	teams := []string{"north", "south", "east"}
	at := t0
	next := func() kpi.Run { at = at.Add(time.Hour); c.Set(at); return run("caseload", at) }

	// Daily values over two month ends in British Summer Time and one in
	// winter, periods at local midnight (the day before in UTC in summer).
	var o []kpi.Observation
	for d := time.Date(2026, 2, 20, 0, 0, 0, 0, london); d.Before(time.Date(2026, 5, 3, 0, 0, 0, 0, london)); d = d.AddDate(0, 0, 1) {
		for i, team := range teams {
			v := kpi.Known(float64(d.YearDay()+i) / 10)
			if (d.YearDay()+i)%11 == 0 {
				v = kpi.Missing
			}
			o = append(o, obs(k, d, v, "children", team))
		}
	}
	save(t, s, next(), o...)
	assertRollupMatches(t, s, "first run")

	// Periods written out of order: an older day of March after April's,
	// and a new month's first day before the previous month's last.
	save(t, s, next(), obs(k, time.Date(2026, 5, 20, 0, 0, 0, 0, london), kpi.Known(9), "children", "north"))
	save(t, s, next(), obs(k, time.Date(2026, 5, 10, 0, 0, 0, 0, london), kpi.Known(8), "children", "north"),
		obs(k, time.Date(2026, 6, 1, 0, 0, 0, 0, london), kpi.Known(7), "children", "north"))
	assertRollupMatches(t, s, "an older period of the month after a later one")
	save(t, s, next(), obs(k, time.Date(2026, 5, 31, 23, 30, 0, 0, london), kpi.Known(6), "children", "north"))
	assertRollupMatches(t, s, "a month's last period after the next month's first")
	save(t, s, next(), obs(k, time.Date(2026, 8, 3, 0, 0, 0, 0, london), kpi.Known(4), "children", "south"))
	assertRollupMatches(t, s, "a jump of two months, one of them empty")

	// Revisions: of a month's latest period (the rollup follows), of an
	// earlier period (it does not move), to missing and back, and the same
	// run again (nothing changes).
	rev := []kpi.Observation{
		obs(k, time.Date(2026, 3, 31, 0, 0, 0, 0, london), kpi.Known(99), "children", "south"),
		obs(k, time.Date(2026, 3, 15, 0, 0, 0, 0, london), kpi.Known(98), "children", "south"),
		obs(k, time.Date(2026, 4, 30, 0, 0, 0, 0, london), kpi.Missing, "children", "east"),
		obs(k, time.Date(2026, 5, 31, 23, 30, 0, 0, london), kpi.Known(5), "children", "north"),
	}
	if res := save(t, s, next(), rev...); res.Revised != 4 {
		t.Fatalf("revised %d, want 4", res.Revised)
	}
	assertRollupMatches(t, s, "revisions")
	save(t, s, next(), rev...)
	save(t, s, next(), obs(k, time.Date(2026, 4, 30, 0, 0, 0, 0, london), kpi.Known(1), "children", "east"))
	assertRollupMatches(t, s, "revised again")
	assertMonthlyHistoryFromRollup(t, s, k, london)

	// Observations removed by hand: a closed month whose latest period goes
	// falls back to the period before it, one left empty leaves the rollup,
	// and the open month is read from what is left.
	ctx := context.Background()
	if _, err := s.DB().ExecContext(ctx, `DELETE FROM observations WHERE period IN ($1, $2) OR period < $3`,
		time.Date(2026, 5, 31, 23, 30, 0, 0, london), time.Date(2026, 6, 1, 0, 0, 0, 0, london),
		time.Date(2026, 3, 1, 0, 0, 0, 0, london)); err != nil {
		t.Fatal(err)
	}
	assertRollupMatches(t, s, "removals")
	if n := count(t, s, "observations_monthly WHERE month = $1", time.Date(2026, 5, 1, 0, 0, 0, 0, london)); n != 3 {
		t.Errorf("May, closed, has %d rollup rows, want one for each team", n)
	}
}

// assertMonthlyHistoryFromRollup fails unless MonthlyHistory gives the
// same points from the rollup (months in Europe/London) as from
// observations alone: "GB" names the same zone under another name, which
// the rollup does not serve.
func assertMonthlyHistoryFromRollup(t *testing.T, s *store.Store, k *kpi.KPI, london *time.Location) {
	t.Helper()
	gb, err := time.LoadLocation("GB")
	if err != nil {
		t.Fatal(err)
	}
	cat := kpi.Catalogue{k.Name: k}
	for _, until := range []time.Time{
		time.Date(2026, 8, 30, 0, 0, 0, 0, london),
		time.Date(2026, 6, 30, 0, 0, 0, 0, london),
		time.Date(2026, 5, 31, 0, 0, 0, 0, london),
		time.Date(2026, 4, 15, 12, 0, 0, 0, london),
		time.Date(2026, 3, 1, 0, 0, 0, 0, london),
		time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
	} {
		for _, months := range []int{1, 3, 13} {
			var got [2][]kpi.SeriesHistory
			for i, loc := range []*time.Location{london, gb} {
				got[i], err = s.MonthlyHistory(context.Background(), cat, kpi.HistoryQuery{KPIs: []string{k.Name}, Until: until, Months: months, Location: loc})
				if err != nil {
					t.Fatal(err)
				}
			}
			if len(got[0]) != 3 || !reflect.DeepEqual(got[0], got[1]) {
				t.Errorf("until %s, %d months: from the rollup %+v, from observations %+v", until, months, got[0], got[1])
			}
		}
	}
}
