package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/exporter"
	"github.com/carewatch/carewatch/internal/heapsample"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/store"
)

// The publication benchmark stores a million series, 100 KPIs labelled
// {la_code, team} with 10,000 series each (33 boroughs), builds the
// snapshot, then stores runs that change 1,000 series and measures the time
// from each run's commit to its new exposition being what /metrics serves:
//
//   - incremental/one_kpi: the run changes every tenth series of one KPI,
//     as a collector of that KPI does; published as carewatch publishes a
//     run (store.RunLatest, store.Health, Exporter.Update);
//   - incremental/scattered: the run changes ten series of every KPI, the
//     worst spread for a rendering kept in chunks;
//   - full_rebuild: the one_kpi run published as carewatch did before:
//     every series read back, a new snapshot built and rendered.
//
// Besides ns/op, each reports steady-heap-MB (the live heap before the
// runs), peak-heap-MB (the largest heap sampled while publishing) and
// peak-ratio, their ratio. Run with -benchtime 5x: a full rebuild of a
// million series takes seconds.
const (
	publishKPIs          = 100
	publishSeriesPerKPI  = 10_000
	publishBoroughs      = 33
	publishChangedSeries = 1_000
)

func publishCatalogue() (kpi.Catalogue, []*kpi.KPI) {
	cat := kpi.Catalogue{}
	ks := make([]*kpi.KPI, publishKPIs)
	for i := range ks {
		ks[i] = &kpi.KPI{
			Name:       fmt.Sprintf("bench_indicator_%03d_ratio", i),
			Help:       "Synthetic ratio for the publication benchmark.",
			Unit:       "ratio",
			Direction:  kpi.LowerIsBetter,
			Labels:     []string{"la_code", "team"},
			Thresholds: kpi.Thresholds{Amber: kpi.At(0.5), Red: kpi.At(0.8)},
			MaxAge:     48 * time.Hour,
		}
		cat[ks[i].Name] = ks[i]
	}
	return cat, ks
}

func publishLabels(i int) []string {
	return []string{fmt.Sprintf("E09%06d", 1+i%publishBoroughs), fmt.Sprintf("team-%03d", i/publishBoroughs)}
}

func publishPeriod(p int) time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, p)
}

func publishValue(i, p int) kpi.Value { return kpi.Known(float64((i*7+p*13)%1000) / 1000) }

func BenchmarkPublish1M(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, pgtest.NewDatabase(b), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	cat, ks := publishCatalogue()
	labels := make([][]string, publishSeriesPerKPI)
	for i := range labels {
		labels[i] = publishLabels(i)
	}
	runOf := func(obs []kpi.Observation) kpi.RunResult {
		now := time.Now()
		res, err := st.SaveRun(ctx, kpi.Run{Collector: "bench", Source: "bench", Query: "synthetic", StartedAt: now, FinishedAt: now}, obs)
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	{
		obs := make([]kpi.Observation, 0, publishKPIs*publishSeriesPerKPI)
		for _, k := range ks {
			for i := range publishSeriesPerKPI {
				obs = append(obs, kpi.Observation{KPI: k, Labels: labels[i], Period: publishPeriod(0), Value: publishValue(i, 0)})
			}
		}
		runOf(obs)
	}
	e := exporter.New(nil)
	fullRebuild := func() {
		health, err := st.Health(ctx)
		if err != nil {
			b.Fatal(err)
		}
		series, err := st.Latest(ctx, cat)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Set(exporter.NewSnapshot(cat, series, health)); err != nil {
			b.Fatal(err)
		}
	}
	var reading, updating time.Duration
	incremental := func(runID int64) {
		start := time.Now()
		health, err := st.Health(ctx)
		if err != nil {
			b.Fatal(err)
		}
		series, err := st.RunLatest(ctx, cat, runID)
		if err != nil {
			b.Fatal(err)
		}
		if len(series) != publishChangedSeries {
			b.Fatalf("the run changed %d series, want %d", len(series), publishChangedSeries)
		}
		read := time.Now()
		if err := e.Update(series, health); err != nil {
			b.Fatal(err)
		}
		reading, updating = reading+read.Sub(start), updating+time.Since(read)
	}
	fullRebuild()
	if dump := os.Getenv("CAREWATCH_BENCH_EXPLAIN"); dump != "" {
		var plan []string
		if err := st.DB().SelectContext(ctx, &plan, "EXPLAIN ANALYZE "+dump); err != nil {
			b.Fatal(err)
		}
		b.Log(strings.Join(plan, "\n"))
	}

	oneKPI := func(p int) []kpi.Observation {
		k := ks[p%publishKPIs]
		obs := make([]kpi.Observation, 0, publishChangedSeries)
		for i := 0; i < publishSeriesPerKPI; i += publishSeriesPerKPI / publishChangedSeries {
			obs = append(obs, kpi.Observation{KPI: k, Labels: labels[i], Period: publishPeriod(p), Value: publishValue(i, p)})
		}
		return obs
	}
	scattered := func(p int) []kpi.Observation {
		obs := make([]kpi.Observation, 0, publishChangedSeries)
		perKPI := publishChangedSeries / publishKPIs
		for _, k := range ks {
			for i := 0; i < publishSeriesPerKPI; i += publishSeriesPerKPI / perKPI {
				obs = append(obs, kpi.Observation{KPI: k, Labels: labels[i], Period: publishPeriod(p), Value: publishValue(i, p)})
			}
		}
		return obs
	}
	period := 1
	for _, c := range []struct {
		name    string
		run     func(p int) []kpi.Observation
		publish func(runID int64)
	}{
		{"incremental/one_kpi", oneKPI, incremental},
		{"incremental/scattered", scattered, incremental},
		{"full_rebuild", oneKPI, func(int64) { fullRebuild() }},
	} {
		b.Run(c.name, func(b *testing.B) {
			steady := heapsample.Live()
			peak := heapsample.Peak()
			reading, updating = 0, 0
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				res := runOf(c.run(period))
				period++
				b.StartTimer()
				c.publish(res.RunID)
			}
			b.StopTimer()
			p := peak()
			b.ReportMetric(steady/(1<<20), "steady-heap-MB")
			b.ReportMetric(p/(1<<20), "peak-heap-MB")
			b.ReportMetric(p/steady, "peak-ratio")
			if reading > 0 {
				// Where an incremental publication's time goes: reading the
				// run's series and the health, and updating the snapshot.
				b.ReportMetric(reading.Seconds()*1000/float64(b.N), "store-ms/op")
				b.ReportMetric(updating.Seconds()*1000/float64(b.N), "update-ms/op")
			}
		})
	}
}
