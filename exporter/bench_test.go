package exporter_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/carewatch/carewatch/exporter"
	"github.com/carewatch/carewatch/internal/heapsample"
	"github.com/carewatch/carewatch/kpi"
)

// The scrape benchmarks serve 1,000,000 KPI series: four KPIs labelled
// {service, team, la_code}, 250,000 series each, every one with amber and red
// thresholds. A series is five samples (value, status, two thresholds,
// period timestamp), 1 in 100 has a missing value (no value sample), so a
// scrape carries about 4,990,000 samples, plus the per-KPI info and max age.
//
// "carewatch" is Exporter.Handler: the exposition rendered once by Set.
// "baseline" is the same Snapshot, used as the plain client_golang collector
// it is, registered in a registry and served by promhttp.HandlerFor: every
// scrape collects the const metrics, gathers, sorts and encodes them (and
// gzips them for the gzip case). Both serve the same lines; only the order
// of the KPIs within the shared families differs.
//
// Each reports, besides ns/op, B/op and allocs/op:
//   - heap-MB: the live heap after a GC once the scrapes are done, i.e. what
//     the process holds between scrapes (the input series are dropped, as
//     the daemon drops the store's answer once the snapshot is built);
//   - peak-heap-MB: the largest heap (live and not yet collected objects)
//     sampled every millisecond during the scrapes.
//
// A million series take a while to build and, for the baseline, to scrape:
// run them with -benchtime 3x.
const (
	benchKPIs             = 4
	benchSeriesPerKPI     = 250_000
	benchLocalAuthorities = 250
)

func benchInput() (kpi.Catalogue, []kpi.SeriesState) {
	cat := kpi.Catalogue{}
	series := make([]kpi.SeriesState, 0, benchKPIs*benchSeriesPerKPI)
	period := time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC)
	for k := range benchKPIs {
		def := &kpi.KPI{
			Name:       fmt.Sprintf("bench_indicator_%d_ratio", k),
			Help:       "Synthetic ratio for the scrape benchmark.",
			Unit:       "ratio",
			Direction:  kpi.LowerIsBetter,
			Labels:     []string{"service", "team", "la_code"},
			Thresholds: kpi.Thresholds{Amber: kpi.At(0.15), Red: kpi.At(0.25)},
			MaxAge:     40 * 24 * time.Hour,
		}
		cat[def.Name] = def
		for i := range benchSeriesPerKPI {
			team := i / benchLocalAuthorities
			service := "children"
			if team%2 == 1 {
				service = "adults"
			}
			v := kpi.Known(float64(i%1000) / 1000)
			if i%100 == 99 {
				v = kpi.Missing
			}
			series = append(series, state(def, period, v,
				service, fmt.Sprintf("team-%03d", team), fmt.Sprintf("E%08d", 6000000+i%benchLocalAuthorities)))
		}
	}
	return cat, series
}

var benchHealth = []kpi.CollectorHealth{{
	Collector: "bench", Runs: 10, LastRunOK: true, LastRunAt: time.Unix(1743487205, 0),
	LastRunDuration: time.Second, LastSuccessAt: time.Unix(1743487205, 0), LastObservations: 100_000,
}}

func BenchmarkScrape(b *testing.B) {
	cases := []struct {
		name    string
		handler func(b *testing.B) http.Handler
	}{
		{"carewatch", func(b *testing.B) http.Handler {
			cat, series := benchInput()
			e := exporter.New(nil)
			if err := e.Set(exporter.NewSnapshot(cat, series, benchHealth)); err != nil {
				b.Fatal(err)
			}
			return e.Handler(nil)
		}},
		{"baseline", func(b *testing.B) http.Handler {
			cat, series := benchInput()
			reg := prometheus.NewRegistry()
			reg.MustRegister(exporter.NewSnapshot(cat, series, benchHealth))
			return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		}},
	}
	for _, c := range cases {
		for _, enc := range []string{"plain", "gzip"} {
			b.Run(c.name+"/"+enc, func(b *testing.B) {
				runtime.GC()
				srv := httptest.NewServer(c.handler(b))
				defer srv.Close()
				acceptEncoding := ""
				if enc == "gzip" {
					acceptEncoding = "gzip"
				}
				checkBenchExposition(b, srv.URL, acceptEncoding)

				runtime.GC()
				peak := heapsample.Peak()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					resp, _, err := discard(b, srv.URL, acceptEncoding)
					if err != nil {
						b.Fatal(err)
					}
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
				b.StopTimer()
				b.ReportMetric(peak()/(1<<20), "peak-heap-MB")
				b.ReportMetric(heapsample.Live()/(1<<20), "heap-MB")
				runtime.KeepAlive(srv)
			})
		}
	}
}

// discard scrapes url and reads the body without keeping it, as a scraper
// streaming into its parser would.
func discard(b *testing.B, url, acceptEncoding string) (*http.Response, int64, error) {
	req, err := http.NewRequestWithContext(b.Context(), http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	resp, err := benchClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	// Prometheus reads a scrape into a buffer of its own, kept from one
	// scrape to the next, in reads as large as its free space; io.Discard
	// would read 8 KB at a time.
	buf := scrapeBuffers.Get().(*[]byte)
	defer scrapeBuffers.Put(buf)
	var n int64
	for {
		m, err := resp.Body.Read(*buf)
		n += int64(m)
		if err == io.EOF {
			return resp, n, nil
		}
		if err != nil {
			return resp, n, err
		}
	}
}

// scrapeBuffers hold the benchmark scraper's reads.
var scrapeBuffers = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// benchClient is rawClient with room for the baseline's scrapes of a
// million series, which take minutes on a busy machine.
var benchClient = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Minute}

// checkBenchExposition makes sure the scrape serves what the benchmark
// claims: the same samples from both handlers, as many as announced.
func checkBenchExposition(b *testing.B, url, acceptEncoding string) {
	b.Helper()
	req, err := http.NewRequestWithContext(b.Context(), http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		b.Fatal(err)
	}
	if acceptEncoding == "gzip" {
		if resp.Header.Get("Content-Encoding") != "gzip" {
			b.Fatalf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
		}
		body = gunzip(b, body, true)
	}
	// Across the KPIs of a shared family the two order series differently,
	// so compare the sorted lines.
	lines := bytes.SplitAfter(body, []byte("\n"))
	slices.SortFunc(lines, bytes.Compare)
	sum := sha256.Sum256(bytes.Join(lines, nil))
	benchExpositionOnce.Do(func() {
		benchExposition = sum
		samples := 0
		for _, l := range lines {
			if len(l) > 1 && l[0] != '#' {
				samples++
			}
		}
		b.Logf("exposition: %d bytes, %d samples", len(body), samples)
	})
	if sum != benchExposition {
		b.Fatal("the handlers under comparison serve different expositions")
	}
}

var (
	benchExpositionOnce sync.Once
	benchExposition     [sha256.Size]byte
)

// BenchmarkSnapshotSet measures building and rendering the snapshot of the
// same 1,000,000 series: the work done once at start-up (and after a reload)
// instead of once per scrape.
func BenchmarkSnapshotSet(b *testing.B) {
	cat, series := benchInput()
	e := exporter.New(nil)
	runtime.GC()
	peak := heapsample.Peak()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := e.Set(exporter.NewSnapshot(cat, series, benchHealth)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(peak()/(1<<20), "peak-heap-MB")
	b.ReportMetric(heapsample.Live()/(1<<20), "heap-MB")
	runtime.KeepAlive(series)
}

// BenchmarkUpdate measures Exporter.Update at a million series (100 KPIs of
// 10,000, as cmd/carewatch's publication benchmark stores them) for a run
// that changes 1,000 of them: every tenth series of one KPI, or ten series
// of every KPI. The store is left out: this is the exporter's share of a
// publication. Its baseline, full_set, is a new snapshot of every series
// built and rendered (Set), what a publication cost before Update.
func BenchmarkUpdate(b *testing.B) {
	const kpis, perKPI, changed = 100, 10_000, 1_000
	cat := kpi.Catalogue{}
	defs := make([]*kpi.KPI, kpis)
	series := make([]kpi.SeriesState, 0, kpis*perKPI)
	period := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for k := range defs {
		defs[k] = &kpi.KPI{
			Name: fmt.Sprintf("bench_indicator_%03d_ratio", k), Help: "Synthetic ratio.", Unit: "ratio",
			Direction: kpi.LowerIsBetter, Labels: []string{"la_code", "team"},
			Thresholds: kpi.Thresholds{Amber: kpi.At(0.5), Red: kpi.At(0.8)}, MaxAge: 48 * time.Hour,
		}
		cat[defs[k].Name] = defs[k]
		for i := range perKPI {
			series = append(series, state(defs[k], period, kpi.Known(float64(i*7%1000)/1000),
				fmt.Sprintf("E09%06d", 1+i%33), fmt.Sprintf("team-%03d", i/33)))
		}
	}
	run := func(p int, scattered bool) []kpi.SeriesState {
		out := make([]kpi.SeriesState, 0, changed)
		pick := func(k, i int) {
			st := series[k*perKPI+i]
			st.Period = period.AddDate(0, 0, p)
			st.Value = kpi.Known(float64((i*7+p*13)%1000) / 1000)
			st.Status, _ = st.KPI.Evaluate(st.Labels, st.Period, st.Value)
			out = append(out, st)
		}
		if scattered {
			for k := range kpis {
				for i := 0; i < perKPI; i += perKPI / (changed / kpis) {
					pick(k, i)
				}
			}
			return out
		}
		for i := 0; i < perKPI; i += perKPI / changed {
			pick(p%kpis, i)
		}
		return out
	}
	e := exporter.New(nil)
	if err := e.Set(exporter.NewSnapshot(cat, series, benchHealth)); err != nil {
		b.Fatal(err)
	}
	p := 0
	for _, c := range []struct {
		name   string
		update func(upd []kpi.SeriesState) error
		scat   bool
	}{
		{"one_kpi", func(upd []kpi.SeriesState) error { return e.Update(upd, benchHealth) }, false},
		{"scattered", func(upd []kpi.SeriesState) error { return e.Update(upd, benchHealth) }, true},
		{"full_set", func([]kpi.SeriesState) error { return e.Set(exporter.NewSnapshot(cat, series, benchHealth)) }, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			runtime.GC()
			steady := heapsample.Live()
			peak := heapsample.Peak()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				p++
				upd := run(p, c.scat)
				b.StartTimer()
				if err := c.update(upd); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(peak()/steady, "peak-ratio")
		})
	}
}
