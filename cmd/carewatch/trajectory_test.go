package main

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

// The demo's trajectory: Family Support Central's caseload target tightens
// on 1 January 2027, and the team, green on 31 December, is amber on the
// new year's day, its status history saying the target moved.
func TestTheDemoTeamWhoseTargetTightensTurnsAmberOnTheDay(t *testing.T) {
	storeDSN, sourceDSN := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	t.Setenv(demo.StoreDSNEnv, storeDSN)
	t.Setenv(demo.SourceDSNEnv, sourceDSN)
	source, store := sqlx.MustOpen("postgres", sourceDSN), sqlx.MustOpen("postgres", storeDSN)
	t.Cleanup(func() { source.Close(); store.Close() })
	if err := demo.Setup(t.Context(), source, demo.Options{Seed: 2026, Today: time.Date(2026, 12, 30, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	var out bytes.Buffer
	type event struct {
		Period string  `db:"period"`
		From   *string `db:"from_status"`
		To     string  `db:"to_status"`
		Value  float64 `db:"value"`
		Amber  float64 `db:"amber"`
		Reason *string `db:"reason"`
	}
	var events []event
	for day := range 3 {
		if day > 0 {
			if err := demo.Advance(t.Context(), source, 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := runCollect(t.Context(), demoConfig, "caseload", false, &out, logger); err != nil {
			t.Fatalf("collect on 30 December + %d days: %v", day, err)
		}
	}
	if err := store.SelectContext(t.Context(), &events, `
		SELECT to_char(e.period AT TIME ZONE 'Europe/London', 'YYYY-MM-DD') AS period, e.from_status, e.to_status, e.value, e.amber, e.reason
		  FROM status_events e JOIN series s ON s.id = e.series_id
		 WHERE s.kpi = 'children_sw_caseload_average' AND s.labels->>'team' = 'Family Support Central'
		 ORDER BY e.id`); err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].To != "green" || events[0].Amber != 18 {
		t.Fatalf("Family Support Central's status history: %+v, want green at amber 18, then amber", events)
	}
	e := events[1]
	if e.Period != "2027-01-01" || e.From == nil || *e.From != "green" || e.To != "amber" || e.Amber != 14 || e.Reason == nil || *e.Reason != "target" {
		t.Errorf("on the new year: %+v (from %v, reason %v), want green to amber on 2027-01-01 at amber 14 for the target", e, deref(e.From), deref(e.Reason))
	}
	if e.Value <= 14 || e.Value > 18 {
		t.Errorf("the team's caseload %v is not between the new amber 14 and the old 18", e.Value)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
