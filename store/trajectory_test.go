package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/carewatch/carewatch/kpi"
)

// An improvement plan: caseload amber 20 and red 24 until 31 March 2026,
// then 18 and 22. A team steady at 19 is green on 31 March and amber on
// 1 April, and the status history says its target moved; a team that rises
// above the new red on the same day changed for its value.
func TestATrajectoryTurnsASeriesAmberOnTheDateItsTargetTightens(t *testing.T) {
	s, _, c := newStore(t)
	april := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	k := caseload()
	k.Overrides = nil
	k.Thresholds = kpi.Thresholds{Amber: kpi.At(20), Red: kpi.At(24)}
	k.Trajectory = []kpi.Step{{From: april, Thresholds: kpi.Thresholds{Amber: kpi.At(18), Red: kpi.At(22)}}}
	if err := s.SyncCatalogue(context.Background(), kpi.Catalogue{k.Name: k}); err != nil {
		t.Fatal(err)
	}
	steady, rising := []string{"children", "steady"}, []string{"children", "rising"}

	c.Set(april.Add(-18 * time.Hour))
	save(t, s, run("caseload", c.Now()),
		obs(k, april.AddDate(0, 0, -1), kpi.Known(19), steady...),
		obs(k, april.AddDate(0, 0, -1), kpi.Known(19), rising...))
	c.Set(april.Add(6 * time.Hour))
	res := save(t, s, run("caseload", c.Now()),
		obs(k, april, kpi.Known(19), steady...),
		obs(k, april, kpi.Known(25), rising...))

	got := map[string]kpi.StatusChange{}
	for _, ch := range res.StatusChanges {
		got[ch.Labels[1]] = ch
	}
	want := kpi.Thresholds{Amber: kpi.At(18), Red: kpi.At(22)}
	if ch := got["steady"]; ch.From != kpi.StatusGreen || ch.To != kpi.StatusAmber || ch.Reason != kpi.ReasonTarget || ch.Thresholds != want {
		t.Errorf("steady team: %+v, want green to amber for its target against %+v", ch, want)
	}
	if ch := got["rising"]; ch.From != kpi.StatusGreen || ch.To != kpi.StatusRed || ch.Reason != kpi.ReasonValue {
		t.Errorf("rising team: %+v, want green to red for its value", ch)
	}

	var reasons []struct {
		Team   string  `db:"team"`
		Reason *string `db:"reason"`
		Amber  float64 `db:"amber"`
	}
	if err := s.DB().SelectContext(context.Background(), &reasons, `
		SELECT s.labels->>'team' AS team, e.reason, e.amber FROM status_events e JOIN series s ON s.id = e.series_id
		WHERE e.period = $1 ORDER BY team`, april); err != nil {
		t.Fatal(err)
	}
	if len(reasons) != 2 || reasons[1].Team != "steady" || reasons[1].Reason == nil || *reasons[1].Reason != "target" || reasons[1].Amber != 18 {
		t.Errorf("status events of 1 April: %+v", reasons)
	}

	// Served today: the status of the period with its own thresholds, the
	// thresholds of today.
	states, err := s.Latest(context.Background(), kpi.Catalogue{k.Name: k})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if st.Labels[1] == "steady" && (st.Status != kpi.StatusAmber || st.Thresholds != want) {
			t.Errorf("latest of the steady team: %v against %+v", st.Status, st.Thresholds)
		}
	}

	// The catalogue keeps the trajectory, for the commands that read the store.
	var trajectory string
	if err := s.DB().QueryRowContext(context.Background(), `SELECT trajectory::text FROM kpis WHERE name = $1`, k.Name).Scan(&trajectory); err != nil {
		t.Fatal(err)
	}
	if trajectory != `[{"red": 22, "from": "2026-04-01T00:00:00Z", "amber": 18}]` {
		t.Errorf("kpis.trajectory = %s", trajectory)
	}
}
