package dashboards_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/dashboards"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/store"
)

// TestThresholdLinesStepWhereTheTargetsMove runs a service dashboard's
// threshold query on a store of daily values and checks its step lines: a
// point where each series' values begin and end and one at each step of
// the trajectories that apply to it, each with the thresholds the
// catalogue puts in force then, so that on every date of the range the
// line shows what kpi.KPI.ThresholdsAt judges by.
func TestThresholdLinesStepWhereTheTargetsMove(t *testing.T) {
	ctx := context.Background()
	london, _ := time.LoadLocation("Europe/London")
	day := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, london) }
	k := &kpi.KPI{
		Name: "children_sw_caseload_average", Help: "Average caseload per social worker.", Unit: "cases",
		Direction: kpi.LowerIsBetter, Labels: []string{"service", "team"},
		Thresholds: kpi.Thresholds{Amber: kpi.Threshold{Value: 18, Set: true}, Red: kpi.Threshold{Value: 22, Set: true}},
		Trajectory: []kpi.Step{{From: day(time.June, 1), Thresholds: kpi.Thresholds{Amber: kpi.Threshold{Value: 16, Set: true}}}},
		Overrides: []kpi.Override{{
			Match:      map[string]string{"team": "north"},
			Trajectory: []kpi.Step{{From: day(time.April, 15), Thresholds: kpi.Thresholds{Red: kpi.Threshold{Value: 20, Set: true}}}},
		}},
		MaxAge: 48 * time.Hour,
	}
	cat := kpi.Catalogue{k.Name: k}

	st, err := store.Open(ctx, pgtest.NewDatabase(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.SyncCatalogue(ctx, cat); err != nil {
		t.Fatal(err)
	}
	teams := []string{"north", "south"}
	var obs []kpi.Observation
	var dates []time.Time
	for d := day(time.February, 3); !d.After(day(time.September, 20)); d = d.AddDate(0, 0, 1) {
		dates = append(dates, d)
		for i, team := range teams {
			obs = append(obs, kpi.Observation{KPI: k, Labels: []string{"children", team}, Period: d, Value: kpi.Known(float64(15 + i + d.Day()%5))})
		}
	}
	now := time.Now()
	if _, err := st.SaveRun(ctx, kpi.Run{Collector: "cms", Source: "cms", Query: "q", StartedAt: now, FinishedAt: now}, obs); err != nil {
		t.Fatal(err)
	}

	files, err := dashboards.Generate(cat, dashboards.Options{Timezone: "Europe/London"})
	if err != nil {
		t.Fatal(err)
	}
	var sql string
	for _, f := range files {
		if f.Name != "service-children.json" {
			continue
		}
		var d struct {
			Panels []struct {
				Title   string
				Targets []struct{ RefID, RawSQL string }
			}
		}
		if err := json.Unmarshal(f.JSON, &d); err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Panels {
			for _, q := range p.Targets {
				if strings.Contains(p.Title, "history") && q.RefID == "B" {
					sql = q.RawSQL
				}
			}
		}
	}
	if sql == "" {
		t.Fatal("no threshold query in the service dashboard")
	}
	// The days of both ranges: every value (six months or less) and each
	// month's latest (longer).
	for _, r := range []struct{ from, to time.Time }{
		{day(time.April, 1), day(time.September, 1)},
		{day(time.January, 1), day(time.October, 1)},
	} {
		s, err := interpolate(sql, "sql", map[string][]string{"team": teams})
		if err == nil {
			s, err = expandSQLMacros(s, r.from, r.to)
		}
		if err != nil {
			t.Fatal(err)
		}
		rows, err := st.DB().QueryContext(ctx, s)
		if err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
		type point struct {
			at time.Time
			v  float64
		}
		lines := map[string][]point{}
		for rows.Next() {
			var p point
			var metric string
			if err := rows.Scan(&p.at, &metric, &p.v); err != nil {
				t.Fatal(err)
			}
			lines[metric] = append(lines[metric], p)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		for _, team := range teams {
			for _, level := range []string{"amber", "red"} {
				line := lines[team+" "+level+" threshold"]
				want := 2 + 1 // first, last, the KPI's step
				if team == "north" {
					want++ // and the override's
				}
				if len(line) != want {
					t.Errorf("%s to %s, %s %s: %d points %v, want %d", r.from.Format(time.DateOnly), r.to.Format(time.DateOnly), team, level, len(line), line, want)
					continue
				}
				// Drawn as steps, the line's value on each date is its last
				// point's at or before it.
				for _, d := range dates {
					if d.Before(r.from) || d.After(r.to) || d.Before(line[0].at) {
						continue
					}
					var shown float64
					for _, p := range line {
						if !p.at.After(d) {
							shown = p.v
						}
					}
					th := k.ThresholdsAt([]string{"children", team}, d)
					judged := th.Amber.Value
					if level == "red" {
						judged = th.Red.Value
					}
					if shown != judged {
						t.Errorf("%s %s on %s: the line shows %v, the catalogue judges by %v", team, level, d.Format(time.DateOnly), shown, judged)
					}
				}
			}
		}
	}
}
