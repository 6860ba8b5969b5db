package main

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/store"
)

// Backfilling 12 months of the demo council: one run per month, each with
// the month's bounds as the query's :period_start and :period_end; the
// current values (what a restart serves) are unchanged, the history holds
// the 12 months, no KPI is retired, and a second backfill adds nothing.
func TestBackfillingTwelveMonthsOfTheDemoKeepsTheCurrentValues(t *testing.T) {
	c := newCouncil(t)
	logger := slog.New(slog.DiscardHandler)
	var out bytes.Buffer
	for _, name := range []string{"caseload", "adults_waiting"} {
		if err := runCollect(t.Context(), demoConfig, name, false, &out, logger); err != nil {
			t.Fatalf("collect %s: %v", name, err)
		}
	}
	latest := func() string {
		var s string
		if err := c.store.GetContext(t.Context(), &s, `
			SELECT string_agg(kpi || labels::text || period || ':' || coalesce(value::text, 'null') || ':' || coalesce(status, ''), E'\n' ORDER BY kpi, labels::text)
			FROM kpi_latest`); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := latest()

	o := collectOptions{Name: "caseload", From: "2025-04-01", To: "2026-03-31", Every: "month"}
	if err := runCollectWith(t.Context(), demoConfig, o, &out, logger); err != nil {
		t.Fatalf("backfill: %v", err)
	}
	if n := count(t, c.store, `SELECT count(*) FROM runs WHERE collector = 'caseload' AND query LIKE '%-- backfill: :period_start = %'`); n != 12 {
		t.Errorf("%d backfill runs recorded, want 12, one per month", n)
	}
	if after := latest(); after != before {
		t.Errorf("the backfill changed the current values:\nbefore\n%s\nafter\n%s", before, after)
	}
	// The history panels read kpi_observations.
	var months []string
	if err := c.store.SelectContext(t.Context(), &months, `
		SELECT to_char(period AT TIME ZONE 'Europe/London', 'YYYY-MM-DD') FROM kpi_observations
		WHERE kpi = 'children_sw_caseload_average' AND labels->>'team' = 'all' ORDER BY period`); err != nil {
		t.Fatal(err)
	}
	if len(months) != 12 || months[0] != "2025-04-30" || months[11] != "2026-03-31" {
		t.Errorf("the service's caseload history: %v, want the 12 month ends from April 2025", months)
	}
	if n := count(t, c.store, `SELECT count(*) FROM kpis WHERE retired_at IS NOT NULL`); n != 0 {
		t.Errorf("%d KPIs retired by collect", n)
	}
	obs, revisions := count(t, c.store, "SELECT count(*) FROM observations"), count(t, c.store, "SELECT count(*) FROM revisions")
	if err := runCollectWith(t.Context(), demoConfig, o, &out, logger); err != nil {
		t.Fatalf("the second backfill: %v", err)
	}
	if count(t, c.store, "SELECT count(*) FROM observations") != obs || count(t, c.store, "SELECT count(*) FROM revisions") != revisions {
		t.Error("backfilling the same months again changed the store")
	}

	// collect with a configuration of one KPI retires none of the others.
	small := openCasesConfig(t, "")
	if err := runCollect(t.Context(), small, "open_cases", false, &out, logger); err != nil {
		t.Fatalf("collect with a one-KPI configuration: %v", err)
	}
	if n := count(t, c.store, `SELECT count(*) FROM kpis WHERE retired_at IS NOT NULL`); n != 0 {
		t.Errorf("%d KPIs retired by collect", n)
	}
}

// A file collector's backfill reads the files whose name-pattern period
// falls in the range, and only those.
func TestBackfillOfAFileCollectorReadsTheFilesOfItsRange(t *testing.T) {
	t.Setenv(demo.StoreDSNEnv, pgtest.NewDatabase(t))
	const hr = "../../examples/hr/carewatch.yml"
	var out bytes.Buffer
	o := collectOptions{Name: "agency_timesheets", From: "2025-02-01", To: "2025-02-28"}
	if err := runCollectWith(t.Context(), hr, o, &out, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("backfill: %v\n%s", err, out.String())
	}
	text := out.String()
	if !strings.Contains(text, "agency_2025-02.csv") || strings.Contains(text, "agency_2025-01.csv") || strings.Contains(text, "agency_2025-03.csv") {
		t.Errorf("the backfill of February read:\n%s", text)
	}
	if !strings.Contains(text, "2025-02-28") || strings.Contains(text, "2025-03-31") {
		t.Errorf("observations outside February:\n%s", text)
	}
	o = collectOptions{Name: "agency_timesheets", From: "2024-01-01", To: "2024-12-31"}
	if err := runCollectWith(t.Context(), hr, o, &out, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "has a period from 2024-01-01 to 2024-12-31 in its name") {
		t.Errorf("a backfill with no file in range: %v", err)
	}
	// A SQL query that does not take the period cannot backfill.
	cfg := openCasesConfig(t, "")
	o = collectOptions{Name: "open_cases", From: "2024-01-01", To: "2024-12-31"}
	if err := runCollectWith(t.Context(), cfg, o, &out, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "its query uses neither :period_start nor :period_end") {
		t.Errorf("a backfill of a query without the period: %v", err)
	}
}

// collect beside a daemon running the same collector waits for the
// daemon's run to end rather than failing, and gives up, storing nothing,
// once the collector's timeout has passed.
func TestCollectWaitsForADaemonsRunOfTheSameCollector(t *testing.T) {
	c := newCouncil(t)
	ctx := t.Context()
	logger := slog.New(slog.DiscardHandler)
	daemon, err := store.Open(ctx, os.Getenv(demo.StoreDSNEnv), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer daemon.Close()
	hold := func(collector string) func() {
		release, ok, err := daemon.TryRunLock(ctx, collector)
		if err != nil || !ok {
			t.Fatalf("taking the run lock of %s: ok %t, %v", collector, ok, err)
		}
		return release
	}

	release := hold("caseload")
	released := make(chan time.Time, 1)
	go func() {
		time.Sleep(2 * time.Second)
		released <- time.Now()
		release()
	}()
	var out bytes.Buffer
	o := collectOptions{Name: "caseload", From: "2025-04-01", To: "2025-05-31", Every: "month"}
	if err := runCollectWith(ctx, demoConfig, o, &out, logger); err != nil {
		t.Fatalf("a backfill beside a daemon's run: %v", err)
	}
	at := <-released
	var first time.Time
	if err := c.store.GetContext(ctx, &first, `SELECT min(finished_at) FROM runs WHERE collector = 'caseload'`); err != nil {
		t.Fatal(err)
	}
	if first.Before(at.Add(-time.Second)) {
		t.Errorf("a run was stored at %s, before the daemon's run ended at %s", first, at)
	}
	if n := count(t, c.store, `SELECT count(*) FROM runs WHERE collector = 'caseload'`); n != 2 {
		t.Errorf("%d runs stored, want 2, one per month", n)
	}

	config := openCasesConfig(t, "timeout: 1s")
	defer hold("open_cases")()
	start := time.Now()
	err = runCollect(ctx, config, "open_cases", false, &out, logger)
	if err == nil || !strings.Contains(err.Error(), `collector "open_cases" has been running in a carewatch daemon for 6s; nothing stored`) {
		t.Errorf("collect while a daemon's run holds the collector past its timeout: %v", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("collect gave up after %s", took)
	}
	if n := count(t, c.store, `SELECT count(*) FROM runs WHERE collector = 'open_cases'`); n != 0 {
		t.Errorf("%d runs of open_cases stored", n)
	}
}

// openCasesConfig writes a configuration of one KPI, the open children's
// cases, collected daily from the demo council's database by a query that
// takes no period; setting is one more line of the collector's, or "".
func openCasesConfig(t *testing.T, setting string) string {
	t.Helper()
	if setting != "" {
		setting = "    " + setting + "\n"
	}
	return writeConfig(t, `
kpis:
  - {name: children_open_cases, help: Open children's cases., unit: cases, direction: lower_is_better}
sources:
  - {name: cms, type: postgres, dsn_env: CAREWATCH_DEMO_SOURCE_URL}
collectors:
  - name: open_cases
    source: cms
    schedule: "@daily"
`+setting+`    query: SELECT count(*) AS open FROM cms.child_case WHERE closed IS NULL
    metrics: [{kpi: children_open_cases, value_column: open}]
`)
}
