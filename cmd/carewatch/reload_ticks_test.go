package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/carewatch/carewatch/pglocal/pgtest"
)

// Ten reloads in a minute lose no tick of a every-minute collector, and
// keep an @every 20s collector running on its instants, even while a slow
// collector's runs are in flight across the reloads.
func TestReloadsLoseNoTickAndKeepEveryOnItsInstants(t *testing.T) {
	storeDSN := pgtest.NewDatabase(t)
	t.Setenv("CAREWATCH_DATABASE_URL", storeDSN)
	t.Setenv("CAREWATCH_DEMO_SOURCE_URL", pgtest.NewDatabase(t))
	collector := func(name, schedule, query string) string {
		return fmt.Sprintf(`
  - name: %s
    source: cms
    schedule: %q
    query: %q
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]`, name, schedule, query)
	}
	file := writeConfig(t, `
kpis:
  - {name: children_open_cases, help: Open cases., direction: lower_is_better, labels: [team]}
sources:
  - {name: cms, type: postgres, dsn_env: CAREWATCH_DEMO_SOURCE_URL}
collectors:`+
		collector("every_minute", "* * * * *", "SELECT 'north' AS team, 1 AS open")+
		collector("every_20s", "@every 20s", "SELECT 'north' AS team, 2 AS open")+
		collector("slow", "@every 10s", "SELECT 'north' AS team, 3 AS open FROM pg_sleep(4)"))
	in := startDaemon(t, file)

	start := time.Now()
	// Ten reloads in 40 seconds, more often than every collector's interval.
	const reloads = 10
	for range reloads {
		time.Sleep(4 * time.Second)
		if err := in.d.reload(t.Context()); err != nil {
			t.Fatalf("reload: %v", err)
		}
	}
	// The runs of the last ticks finish.
	time.Sleep(5 * time.Second)
	end := time.Now()

	db := sqlx.MustOpen("postgres", storeDSN)
	defer db.Close()
	var runs []struct {
		Collector string    `db:"collector"`
		Started   time.Time `db:"started_at"`
		Status    string    `db:"status"`
	}
	if err := db.SelectContext(t.Context(), &runs, `SELECT collector, started_at, status FROM runs ORDER BY started_at`); err != nil {
		t.Fatal(err)
	}
	byCollector := map[string][]time.Time{}
	for _, r := range runs {
		if r.Status != "success" {
			t.Errorf("run of %s at %s: %s", r.Collector, r.Started, r.Status)
		}
		byCollector[r.Collector] = append(byCollector[r.Collector], r.Started)
	}
	t.Logf("%d reloads from %s to %s; runs: %v", reloads, start.Format(time.TimeOnly), end.Format(time.TimeOnly), byCollector)

	ranWithin := func(name string, tick time.Time, slack time.Duration) bool {
		for _, at := range byCollector[name] {
			if !at.Before(tick) && at.Before(tick.Add(slack)) {
				return true
			}
		}
		return false
	}
	for m := start.Truncate(time.Minute).Add(time.Minute); m.Add(5 * time.Second).Before(end); m = m.Add(time.Minute) {
		if !ranWithin("every_minute", m, 5*time.Second) {
			t.Errorf("every_minute lost its tick at %s", m.Format(time.TimeOnly))
		}
	}
	for tick := start.Truncate(20 * time.Second).Add(20 * time.Second); tick.Add(5 * time.Second).Before(end); tick = tick.Add(20 * time.Second) {
		if !ranWithin("every_20s", tick, 5*time.Second) {
			t.Errorf("every_20s lost its tick at %s", tick.Format(time.TimeOnly))
		}
	}
}
