package main

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/exporter"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/store"
)

// The replica that stores a run publishes it from the run's observations
// (store.RunStates) rather than reading its series back; another replica
// reads them back (store.RunLatest). Against a real PostgreSQL, runs of new
// periods, revisions of the latest period, a backfill of an older period,
// missing and NaN values, a run that changes nothing, thresholds by team
// and a trajectory step between periods: after every run, a daemon that
// published each run from memory, one that read each back, and a snapshot
// built from the whole store serve the same exposition; and every state
// read back is the one held in memory, but where the run wrote an older
// period than the latest stored.
func TestARunPublishedFromMemoryServesWhatReadingItBackServes(t *testing.T) {
	ctx := context.Background()
	st, cfg, newDaemon := publishFixture(t)
	cat := cfg.Catalogue
	caseload, contacts := cat["caseload"], cat["contacts"]
	day := testDay(t)
	ob := func(k *kpi.KPI, period string, v kpi.Value, labels ...string) kpi.Observation {
		return kpi.Observation{KPI: k, Labels: labels, Period: day(period), Value: v}
	}
	runs := []struct {
		name string
		obs  []kpi.Observation
	}{
		{"the first run", []kpi.Observation{
			ob(caseload, "2025-02-28", kpi.Known(17), "a"), ob(caseload, "2025-02-28", kpi.Known(18.5), "b"),
			ob(caseload, "2025-02-28", kpi.Missing, "c"), ob(contacts, "2025-02-28", kpi.Known(40), "adults", "a"),
		}},
		{"a new period, judged by the trajectory's step", []kpi.Observation{
			ob(caseload, "2025-03-31", kpi.Known(17), "a"), ob(caseload, "2025-03-31", kpi.Known(math.NaN()), "b"),
			ob(caseload, "2025-03-31", kpi.Known(23), "c"), ob(contacts, "2025-03-31", kpi.Known(41), "adults", "a"),
		}},
		{"a backfill of an older period, and a new series", []kpi.Observation{
			ob(caseload, "2025-01-31", kpi.Known(30), "a"), ob(caseload, "2025-01-31", kpi.Known(10), "b"),
			ob(caseload, "2025-01-31", kpi.Known(12), "d"), ob(contacts, "2025-02-28", kpi.Known(45), "adults", "a"),
		}},
		{"revisions of the latest period, two periods of a series in one run", []kpi.Observation{
			ob(caseload, "2025-03-31", kpi.Known(21), "a"), ob(caseload, "2025-03-31", kpi.Known(19.5), "b"),
			ob(caseload, "2025-04-30", kpi.Missing, "c"), ob(caseload, "2025-03-31", kpi.Known(1), "c"),
			ob(contacts, "2025-03-31", kpi.Known(41), "adults", "a"),
		}},
		{"a run that changes nothing", []kpi.Observation{
			ob(caseload, "2025-03-31", kpi.Known(21), "a"), ob(contacts, "2025-03-31", kpi.Known(41), "adults", "a"),
		}},
	}

	fromMemory, readBack := newDaemon(), newDaemon()
	for i, run := range runs {
		now := time.Date(2025, 5, 1, 6, 0, i, 0, time.UTC)
		res, err := st.SaveRun(ctx, kpi.Run{Collector: "c", Source: "s", Query: "q", StartedAt: now, FinishedAt: now}, run.obs)
		if err != nil {
			t.Fatalf("%s: %v", run.name, err)
		}
		if i == 0 {
			for _, d := range []*daemon{fromMemory, readBack} {
				if err := d.refresh(ctx, cfg); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}

		held, ok := st.RunStates(cat, res.RunID, now, run.obs)
		if !ok {
			t.Fatalf("%s: RunStates refused the run", run.name)
		}
		read, err := st.RunLatest(ctx, cat, res.RunID)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range read {
			j := slices.IndexFunc(held, func(h kpi.SeriesState) bool {
				return h.KPI == r.KPI && slices.Equal(h.Labels, r.Labels)
			})
			if j < 0 {
				t.Errorf("%s: %s%v was read back, but is not among the run's states", run.name, r.KPI.Name, r.Labels)
				continue
			}
			h := held[j]
			if h.Period.Before(r.Period) {
				continue
			}
			if !h.Period.Equal(r.Period) || h.Value != r.Value || h.Status != r.Status || h.Thresholds != r.Thresholds || h.RunID != r.RunID {
				t.Errorf("%s: %s%v: held %+v, read back %+v", run.name, r.KPI.Name, r.Labels, h, r)
			}
		}

		fromMemory.publishOwnRun(ctx, res.RunID, now, run.obs, fromMemory.foreign.Load())
		readBack.publishRun(ctx, res.RunID)
		full := newDaemon()
		if err := full.refresh(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		want := exposition(t, full.exporter)
		if got := exposition(t, fromMemory.exporter); got != want {
			t.Errorf("%s: published from memory:\n%s\n--- built from the store\n%s", run.name, got, want)
		}
		if got := exposition(t, readBack.exporter); got != want {
			t.Errorf("%s: read back:\n%s\n--- built from the store\n%s", run.name, got, want)
		}
		if i == 1 && !strings.Contains(want, `carewatch_caseload{team="c"} 23`) {
			t.Fatalf("the test's runs did not reach /metrics:\n%s", want)
		}
	}
}

// exposition is what e serves.
func exposition(t *testing.T, e *exporter.Exporter) string {
	t.Helper()
	srv := httptest.NewServer(e.Handler(nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	if _, err := io.Copy(&body, resp.Body); err != nil {
		t.Fatal(err)
	}
	return body.String()
}

// A run that another replica revises, and whose revision is published,
// before the replica that stored the run publishes it: the run is read back,
// and the revision stays what is served.
func TestARunRevisedElsewhereBeforeItIsPublishedServesTheRevision(t *testing.T) {
	ctx := context.Background()
	st, cfg, newDaemon := publishFixture(t)
	caseload := cfg.Catalogue["caseload"]
	day := testDay(t)
	d := newDaemon()
	store1 := func(collector string, v float64) (int64, time.Time, []kpi.Observation) {
		now := time.Now()
		obs := []kpi.Observation{{KPI: caseload, Labels: []string{"a"}, Period: day("2025-03-31"), Value: kpi.Known(v)}}
		res, err := st.SaveRun(ctx, kpi.Run{Collector: collector, Source: "s", Query: "q", StartedAt: now, FinishedAt: now}, obs)
		if err != nil {
			t.Fatal(err)
		}
		return res.RunID, now, obs
	}
	store1("c", 10)
	if err := d.refresh(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	foreign := d.foreign.Load()
	own, finished, obs := store1("c", 20)
	// Another replica revises the period, and this one hears of it first.
	other, _, _ := store1("other", 21)
	d.foreign.Add(1)
	d.publishRun(ctx, other)
	d.publishOwnRun(ctx, own, finished, obs, foreign)

	got := exposition(t, d.exporter)
	if !strings.Contains(got, `carewatch_caseload{team="a"} 21`+"\n") {
		t.Errorf("the revision is not served:\n%s", got)
	}
	full := newDaemon()
	if err := full.refresh(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if want := exposition(t, full.exporter); got != want {
		t.Errorf("published run by run:\n%s\n--- built from the store\n%s", got, want)
	}
}

// publishFixture is a store with a catalogue of a KPI with thresholds (by
// team, and a trajectory step) and one without, and a maker of daemons
// that serve it, without collectors to run.
func publishFixture(t *testing.T) (*store.Store, *config.Config, func() *daemon) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, pgtest.NewDatabase(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	day := testDay(t)
	caseload := &kpi.KPI{
		Name: "caseload", Help: "Caseload.", Unit: "cases", Direction: kpi.LowerIsBetter,
		Labels:     []string{"team"},
		Thresholds: kpi.Thresholds{Amber: kpi.At(18), Red: kpi.At(22)},
		Trajectory: []kpi.Step{{From: day("2025-03-01"), Thresholds: kpi.Thresholds{Amber: kpi.At(16)}}},
		Overrides:  []kpi.Override{{Match: map[string]string{"team": "b"}, Thresholds: kpi.Thresholds{Red: kpi.At(19)}}},
		MaxAge:     48 * time.Hour,
	}
	contacts := &kpi.KPI{Name: "contacts", Help: "Contacts.", Unit: "contacts", Direction: kpi.LowerIsBetter, Labels: []string{"service", "team"}}
	cfg := &config.Config{
		Catalogue:  kpi.Catalogue{caseload.Name: caseload, contacts.Name: contacts},
		Collectors: []config.CollectorConfig{{Name: "c"}, {Name: "other"}},
	}
	return st, cfg, func() *daemon {
		return &daemon{
			store: st, exporter: exporter.New(nil), logger: slog.New(slog.DiscardHandler),
			storeUp: &storeHealth{timeout: time.Minute}, active: &generation{cfg: cfg},
		}
	}
}

func testDay(t *testing.T) func(string) time.Time {
	return func(s string) time.Time {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
}
