package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/report"
	"github.com/carewatch/carewatch/store"
)

// The benchmark pack's shape: 40 KPIs, 35 of the council's own with the
// demo's 22 children's series each (21 teams and the service), collected
// daily for a year, and 5 benchmark KPIs from DfE's yearly file with the
// council, its ten statistical neighbours, its region and England over
// nine years.
const (
	benchLocalKPIs     = 35
	benchTeams         = 21
	benchBenchmarkKPIs = 5
	benchDays          = 365
	benchYears         = 9
)

var benchAreas = func() [][]string {
	areas := [][]string{{"E09000008", "Croydon", "council"}}
	for i := range 10 {
		areas = append(areas, []string{fmt.Sprintf("E0900%04d", 10+i), fmt.Sprintf("Neighbour %d", i+1), "stat_neighbour"})
	}
	return append(areas, []string{"E13000002", "Outer London", "region"}, []string{"E92000001", "England", "england"})
}()

// benchPackStore fills a fresh store with a year of daily data for the
// pack's KPIs, one run a day as the demo's collectors write them, and
// returns it with the catalogue, the pack's spec and its options.
func benchPackStore(b *testing.B) (*store.Store, kpi.Catalogue, report.Spec, report.Options) {
	b.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, pgtest.NewDatabase(b), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	london, _ := time.LoadLocation("Europe/London")
	cat := kpi.Catalogue{}
	spec := report.Spec{Title: "Benchmark pack", Council: "Demo Borough"}
	var local, bench []*kpi.KPI
	for i := range benchLocalKPIs {
		k := &kpi.KPI{
			Name: fmt.Sprintf("children_bench_%02d_ratio", i), Help: fmt.Sprintf("Benchmark KPI %d (a share of something).", i),
			Unit: "ratio", Direction: kpi.LowerIsBetter, Labels: []string{"service", "team"},
			Thresholds: kpi.Thresholds{Amber: kpi.At(0.12), Red: kpi.At(0.2)}, MaxAge: 36 * time.Hour,
		}
		cat[k.Name], local = k, append(local, k)
	}
	for i := range benchBenchmarkKPIs {
		k := &kpi.KPI{
			Name: fmt.Sprintf("children_dfe_bench_%d_ratio", i), Help: fmt.Sprintf("DfE benchmark KPI %d.", i),
			Unit: "ratio", Direction: kpi.LowerIsBetter, Labels: []string{"la_code", "la_name", "scope"},
			Thresholds: kpi.Thresholds{Amber: kpi.At(0.12), Red: kpi.At(0.2)},
		}
		cat[k.Name], bench = k, append(bench, k)
	}
	for s := range 4 {
		sec := report.Section{Title: fmt.Sprintf("Section %d", s+1)}
		for i := s * 10; i < (s+1)*10; i++ {
			if i < benchLocalKPIs {
				sec.Items = append(sec.Items, report.Item{KPI: local[i].Name})
			} else {
				sec.Items = append(sec.Items, report.Item{KPI: bench[i-benchLocalKPIs].Name, Match: map[string]string{"scope": "council"}, Benchmark: &report.Benchmark{NameLabel: "la_name"}})
			}
		}
		spec.Sections = append(spec.Sections, sec)
	}
	if err := st.SyncCatalogue(ctx, cat); err != nil {
		b.Fatal(err)
	}

	first := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
	for d := range benchDays {
		day := first.AddDate(0, 0, d)
		obs := make([]kpi.Observation, 0, benchLocalKPIs*(benchTeams+1))
		for i, k := range local {
			for t := 0; t <= benchTeams; t++ {
				team := "all"
				if t < benchTeams {
					team = fmt.Sprintf("Team %02d", t+1)
				}
				v := kpi.Known(0.14 + 0.06*math.Sin(float64(d)/40+float64(i+t)))
				if (d+i+t)%97 == 0 {
					v = kpi.Missing
				}
				obs = append(obs, kpi.Observation{KPI: k, Labels: []string{"children", team}, Period: day, Value: v})
			}
		}
		at := day.Add(7 * time.Hour)
		if _, err := st.SaveRun(ctx, kpi.Run{Collector: "daily", Source: "cms", Query: "SELECT ...", StartedAt: at, FinishedAt: at.Add(time.Second)}, obs); err != nil {
			b.Fatal(err)
		}
	}
	var obs []kpi.Observation
	for i, k := range bench {
		for y := range benchYears {
			for a, area := range benchAreas {
				v := kpi.Known(0.08 + 0.02*float64((a+i+y)%7))
				obs = append(obs, kpi.Observation{KPI: k, Labels: area, Period: time.Date(2017+y, 9, 30, 0, 0, 0, 0, time.UTC), Value: v})
			}
		}
	}
	at := first.Add(8 * time.Hour)
	if _, err := st.SaveRun(ctx, kpi.Run{Collector: "dfe", Source: "dfe", Query: "csww.csv", StartedAt: at, FinishedAt: at.Add(time.Second)}, obs); err != nil {
		b.Fatal(err)
	}
	if _, err := st.DB().ExecContext(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	last := first.AddDate(0, 0, benchDays-1)
	return st, cat, spec, report.Options{Location: london, Now: last.Add(12 * time.Hour)}
}

// BenchmarkReportPack renders the whole 40-KPI pack (the store queries,
// assembly and HTML) beside the store queries it needs run alone, the
// baseline. The two alternate within each iteration, so that both see the
// same machine on a shared, noisy host; it reports each one's time per
// iteration and their ratio.
func BenchmarkReportPack(b *testing.B) {
	st, cat, spec, o := benchPackStore(b)
	ctx := context.Background()
	var queries, page time.Duration
	var size int
	for b.Loop() {
		start := time.Now()
		if _, err := report.Read(ctx, st, cat, spec, o); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		p, err := report.Build(ctx, st, cat, spec, o)
		if err != nil {
			b.Fatal(err)
		}
		w := &countingWriter{}
		if err := p.Render(w); err != nil {
			b.Fatal(err)
		}
		end := time.Now()
		queries += mid.Sub(start)
		page += end.Sub(mid)
		size = w.n
	}
	n := float64(b.N)
	b.ReportMetric(float64(queries.Milliseconds())/n, "queries-ms")
	b.ReportMetric(float64(page.Milliseconds())/n, "page-ms")
	b.ReportMetric(float64(page)/float64(queries), "page/queries")
	b.ReportMetric(float64(size)/1e6, "page-MB")
}

type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

var _ io.Writer = (*countingWriter)(nil)
