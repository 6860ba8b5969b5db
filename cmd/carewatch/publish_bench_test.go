package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/exporter"
	"github.com/carewatch/carewatch/internal/heapsample"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/store"
)

// BenchmarkMillionSeries stores a million series, 100 KPIs labelled
// {la_code, team} with 10,000 series each (33 boroughs), and measures what
// carewatch does with them, through the daemon's own code.
//
// restart measures what a restart does before it is ready (ready-s/op):
// read every series' latest value and the collectors' health, build the
// snapshot and render it (daemon.refresh). Its baseline (select-s/op) is a
// plain SELECT of the same latest values, rows scanned and dropped; the two
// alternate, round by round, and ready/select is their ratio.
//
// publish/* store runs that change 1,000 series and measure the time from
// each run's commit to its new exposition being what /metrics serves:
//
//   - publish/incremental_one_kpi: the run changes every tenth series of
//     one KPI, as a collector of that KPI does; published as the replica
//     that stored it publishes it (daemon.publishOwnRun: the states from
//     the run's observations, store.Health, Exporter.Update);
//   - publish/incremental_scattered: the run changes ten series of every
//     KPI, the worst spread for a rendering kept in chunks;
//   - publish/replica_*: the same runs published as another replica
//     publishes them when told of them (daemon.publishRun: the run's
//     series read back with store.RunLatest);
//   - publish/full_rebuild: the one_kpi run published as carewatch did
//     before: every series read back, a new snapshot built and rendered.
//
// Besides ns/op, the publications report steady-heap-MB (the live heap
// before the runs), peak-heap-MB (the largest heap sampled while
// publishing) and peak-ratio, their ratio. Run with -benchtime 3x: a full
// rebuild of a million series takes seconds.
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

func BenchmarkMillionSeries(b *testing.B) {
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
	runOf := func(obs []kpi.Observation) (kpi.RunResult, time.Time) {
		now := time.Now()
		res, err := st.SaveRun(ctx, kpi.Run{Collector: "bench", Source: "bench", Query: "synthetic", StartedAt: now, FinishedAt: now}, obs)
		if err != nil {
			b.Fatal(err)
		}
		return res, now
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
	cfg := &config.Config{Catalogue: cat, Collectors: []config.CollectorConfig{{Name: "bench"}}}
	d := &daemon{
		store:    st,
		exporter: exporter.New(nil),
		logger:   slog.New(slog.DiscardHandler),
		storeUp:  &storeHealth{timeout: time.Minute},
		active:   &generation{cfg: cfg},
	}
	fullRebuild := func() {
		if err := d.refresh(ctx, cfg); err != nil {
			b.Fatal(err)
		}
	}
	fullRebuild()

	b.Run("restart", func(b *testing.B) {
		// The two sides alternate, round by round, and take turns going
		// first, so that a load that changes during the benchmark weighs on
		// both alike.
		var ready, plain time.Duration
		sides := []func(){
			func() {
				runtime.GC() // neither pays for the other's garbage
				start := time.Now()
				d.exporter = exporter.New(nil)
				fullRebuild()
				ready += time.Since(start)
			},
			func() {
				runtime.GC()
				start := time.Now()
				plainSelectLatest(b, st)
				plain += time.Since(start)
			},
		}
		for i := range b.N {
			sides[i%2]()
			sides[1-i%2]()
		}
		n := float64(b.N)
		b.ReportMetric(ready.Seconds()/n, "ready-s/op")
		b.ReportMetric(plain.Seconds()/n, "select-s/op")
		b.ReportMetric(ready.Seconds()/plain.Seconds(), "ready/select")
	})

	var (
		reading, updating time.Duration
		lastSeries        int
	)
	d.logger = slog.New(publishTimer{read: &reading, update: &updating, series: &lastSeries})
	check := func() {
		if lastSeries != publishChangedSeries {
			b.Fatalf("the run changed %d series, want %d", lastSeries, publishChangedSeries)
		}
	}
	own := func(runID int64, finished time.Time, obs []kpi.Observation) {
		d.publishOwnRun(ctx, runID, finished, obs, d.foreign.Load())
		check()
	}
	replica := func(runID int64, _ time.Time, _ []kpi.Observation) {
		d.publishRun(ctx, runID)
		check()
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
		publish func(runID int64, finished time.Time, obs []kpi.Observation)
	}{
		{"publish/incremental_one_kpi", oneKPI, own},
		{"publish/incremental_scattered", scattered, own},
		{"publish/replica_one_kpi", oneKPI, replica},
		{"publish/replica_scattered", scattered, replica},
		{"publish/full_rebuild", oneKPI, func(int64, time.Time, []kpi.Observation) { fullRebuild() }},
	} {
		b.Run(c.name, func(b *testing.B) {
			steady := heapsample.Live()
			peak := heapsample.Peak()
			reading, updating = 0, 0
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				obs := c.run(period)
				res, finished := runOf(obs)
				period++
				b.StartTimer()
				c.publish(res.RunID, finished, obs)
			}
			b.StopTimer()
			p := peak()
			b.ReportMetric(steady/(1<<20), "steady-heap-MB")
			b.ReportMetric(p/(1<<20), "peak-heap-MB")
			b.ReportMetric(p/steady, "peak-ratio")
			if reading+updating > 0 {
				// Where an incremental publication's time goes: reading the
				// run's series and the health, and updating the snapshot.
				b.ReportMetric(reading.Seconds()*1000/float64(b.N), "store-ms/op")
				b.ReportMetric(updating.Seconds()*1000/float64(b.N), "update-ms/op")
			}
		})
	}
}

// plainSelectLatest is the baseline of a restart: the latest values of
// every series, with everything carewatch reads of them (their run's
// finish time included), by one plain SELECT and nothing else done.
func plainSelectLatest(b *testing.B, st *store.Store) {
	rows, err := st.DB().QueryContext(context.Background(), `
		SELECT s.id, s.kpi, s.labels, o.period, o.value, o.run_id, r.finished_at
		FROM series s
		CROSS JOIN LATERAL (
			SELECT period, value, run_id FROM observations
			WHERE series_id = s.id ORDER BY period DESC LIMIT 1
		) o
		LEFT JOIN runs r ON r.id = o.run_id`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var (
		id, runID   int64
		name        string
		labels      []byte
		period      time.Time
		value       sql.NullFloat64
		collectedAt sql.NullTime
		n           int
	)
	for rows.Next() {
		if err := rows.Scan(&id, &name, &labels, &period, &value, &runID, &collectedAt); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	if n != publishKPIs*publishSeriesPerKPI {
		b.Fatalf("%d rows", n)
	}
}

// publishTimer takes, from daemon.publishRun's debug line, how long it
// spent reading the store and updating the snapshot.
type publishTimer struct {
	read, update *time.Duration
	series       *int
}

func (publishTimer) Enabled(context.Context, slog.Level) bool { return true }
func (t publishTimer) WithAttrs([]slog.Attr) slog.Handler     { return t }
func (t publishTimer) WithGroup(string) slog.Handler          { return t }
func (t publishTimer) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "published a run" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "read":
			*t.read += a.Value.Duration()
		case "update":
			*t.update += a.Value.Duration()
		case "series":
			*t.series = int(a.Value.Int64())
		}
		return true
	})
	return nil
}
