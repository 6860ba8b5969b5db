package exporter_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/carewatch/carewatch/exporter"
	"github.com/carewatch/carewatch/kpi"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const wantContentType = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"

// writeCollected writes what c collects in the text format.
func writeCollected(w io.Writer, c prometheus.Collector) error {
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		return err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return err
		}
	}
	return nil
}

// newServer serves the exporter's handler over real HTTP.
func newServer(t testing.TB, e *exporter.Exporter, self prometheus.Gatherer) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(e.Handler(self))
	t.Cleanup(srv.Close)
	return srv
}

// rawClient does not decompress, so tests see the bytes on the wire.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: time.Minute}

// fetch fetches url with the given Accept-Encoding and returns the response
// with its body read.
func fetch(ctx context.Context, method, url, acceptEncoding string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, nil, err
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func get(t testing.TB, method, url, acceptEncoding string) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := fetch(t.Context(), method, url, acceptEncoding)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// parse parses a text exposition the way Prometheus' client library does;
// a family appearing twice is an error.
func parse(t testing.TB, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing exposition: %v\n%s", err, body)
	}
	return mfs
}

func gunzip(t testing.TB, body []byte, multistream bool) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(multistream)
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustSet(t testing.TB, e *exporter.Exporter, s *exporter.Snapshot) {
	t.Helper()
	if err := e.Set(s); err != nil {
		t.Fatal(err)
	}
}

// golden compares got with testdata/name. Only the test that owns a golden
// file rewrites it under -update; the others compare with it.
func golden(t *testing.T, name string, got []byte, owner bool) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update && owner {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("exposition differs from %s (run with -update if the change is intended):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestHandlerServesTheSnapshotRenderedOnce(t *testing.T) {
	e := exporter.New(nil)
	mustSet(t, e, newFixture().snapshot())
	srv := newServer(t, e, nil)

	resp, body := get(t, http.MethodGet, srv.URL, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Type"); got != wantContentType {
		t.Errorf("Content-Type = %q, want %q", got, wantContentType)
	}
	if got := resp.Header.Get("Content-Encoding"); got != "" {
		t.Errorf("Content-Encoding = %q, want none", got)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length = %d, body is %d bytes", resp.ContentLength, len(body))
	}
	golden(t, "fixture.prom", body, true)
	parse(t, body)

	// The snapshot as a plain collector gathers the same metrics.
	if err := testutil.CollectAndCompare(newFixture().snapshot(), bytes.NewReader(body)); err != nil {
		t.Errorf("served exposition differs from the snapshot's metrics: %v", err)
	}
}

// TestRenderingInPiecesChangesNothing renders snapshots in pieces of every
// size down to one metric: since each part emits its metrics in the order a
// registry sorts them, the pieces concatenate to the same bytes. The KPIs'
// labels sort before and after the kpi and level labels that the shared
// families add, and some series share the labels that sort before "level".
func TestRenderingInPiecesChangesNothing(t *testing.T) {
	wide := &kpi.KPI{
		Name: "adults_reviews_overdue", Help: "Reviews overdue.", Direction: kpi.LowerIsBetter,
		Labels:     []string{"team", "authority", "zone", "band"},
		Thresholds: kpi.Thresholds{Amber: kpi.At(5), Red: kpi.At(10)},
		Overrides:  []kpi.Override{{Match: map[string]string{"band": "b"}, Thresholds: kpi.Thresholds{Red: kpi.At(3)}}},
	}
	f := newFixture()
	f.cat[wide.Name] = wide
	i := 0
	for _, team := range []string{"t2", "t1", ""} {
		for _, auth := range []string{"E2", "E1"} {
			for _, zone := range []string{"z", "a"} {
				for _, band := range []string{"b", "a"} {
					i++
					v := kpi.Known(float64(i % 12))
					if i%5 == 0 {
						v = kpi.Missing
					}
					f.series = append(f.series, state(wide, day("2025-03-31"), v, team, auth, zone, band))
				}
			}
		}
	}

	var want []byte
	for _, size := range []int{1, 2, 3, 5, 7, 1000} {
		e := exporter.New(nil)
		e.SetPieceSize(size)
		mustSet(t, e, f.snapshot())
		_, body := get(t, http.MethodGet, newServer(t, e, nil).URL, "")
		if want == nil {
			want = body
			if err := testutil.CollectAndCompare(f.snapshot(), bytes.NewReader(body)); err != nil {
				t.Fatalf("pieces of one metric: %v", err)
			}
			continue
		}
		if !bytes.Equal(body, want) {
			t.Errorf("pieces of %d metrics render differently from pieces of 1:\n%s\n--- pieces of 1\n%s", size, body, want)
		}
	}
}

func TestHandlerGzipIsTheCachedMembersThenTheSelfMember(t *testing.T) {
	self := exporter.NewSelfRegistry()
	reload, err := exporter.NewReloadMetrics(self)
	if err != nil {
		t.Fatal(err)
	}
	reload.Succeeded(time.Date(2025, 4, 1, 6, 0, 0, 0, time.UTC))
	e := exporter.New(nil)
	mustSet(t, e, newFixture().snapshot())
	srv := newServer(t, e, self)

	_, plain := get(t, http.MethodGet, srv.URL, "")
	resp, body := get(t, http.MethodGet, srv.URL, "gzip")
	if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
		t.Fatalf("Content-Encoding = %q, want gzip", got)
	}
	if got := resp.Header.Get("Content-Type"); got != wantContentType {
		t.Errorf("Content-Type = %q, want %q", got, wantContentType)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length = %d, body is %d bytes", resp.ContentLength, len(body))
	}
	if !slices.Contains(resp.Header.Values("Vary"), "Accept-Encoding") {
		t.Errorf("Vary = %q, want Accept-Encoding", resp.Header.Values("Vary"))
	}

	all := gunzip(t, body, true)
	fixture, _ := os.ReadFile(filepath.Join("testdata", "fixture.prom"))
	if !bytes.HasPrefix(all, fixture) || !bytes.HasPrefix(plain, fixture) {
		t.Fatalf("plain and gzip responses must both start with the snapshot's exposition")
	}
	for name, body := range map[string][]byte{"plain": plain, "gzip": all} {
		mfs := parse(t, body)
		for _, want := range []string{
			"carewatch_children_sw_caseload_average", exporter.StatusMetric, exporter.CollectorRunsMetric,
			exporter.BuildInfoMetric, exporter.ReloadSuccessfulMetric, exporter.ReloadSuccessTimeMetric,
			"go_goroutines", "process_start_time_seconds",
		} {
			if mfs[want] == nil {
				t.Errorf("%s response has no %s", name, want)
			}
		}
		if got := mfs[exporter.ReloadSuccessTimeMetric].GetMetric()[0].GetGauge().GetValue(); got != 1743487200 {
			t.Errorf("%s: reload success time = %v, want 1743487200", name, got)
		}
	}
}

func TestHandlerNegotiatesGzip(t *testing.T) {
	e := exporter.New(nil)
	mustSet(t, e, newFixture().snapshot())
	srv := newServer(t, e, prometheus.NewRegistry())

	tests := []struct {
		acceptEncoding string
		wantGzip       bool
	}{
		{"", false},
		{"gzip", true},
		{"identity", false},
		{"deflate, gzip", true},
		{"gzip;q=0", false},
		{"GZIP ; q=0.5", true},
		{"*", true},
		{"*, gzip;q=0", false},
		{"br;q=1.0, *;q=0.1", true},
		{"br, *;q=0", false},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("Accept-Encoding %q is answered plain", tt.acceptEncoding)
		if tt.wantGzip {
			name = fmt.Sprintf("Accept-Encoding %q is answered with gzip", tt.acceptEncoding)
		}
		t.Run(name, func(t *testing.T) {
			resp, body := get(t, http.MethodGet, srv.URL, tt.acceptEncoding)
			if gz := resp.Header.Get("Content-Encoding") == "gzip"; gz != tt.wantGzip {
				t.Fatalf("gzip = %v, want %v", gz, tt.wantGzip)
			}
			if tt.wantGzip {
				body = gunzip(t, body, true)
			}
			golden(t, "fixture.prom", body, false)
		})
	}
}

func TestHandlerBeforeTheFirstSnapshotServesSelfMetricsOnly(t *testing.T) {
	self := prometheus.NewRegistry()
	self.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "carewatch_test_up", Help: "Test."}, func() float64 { return 1 }))
	e := exporter.New(nil)
	if e.Ready() || e.Current() != nil {
		t.Fatal("a new exporter must not be ready nor have a snapshot")
	}
	srv := newServer(t, e, self)

	want := "# HELP carewatch_test_up Test.\n# TYPE carewatch_test_up gauge\ncarewatch_test_up 1\n"
	for _, enc := range []string{"", "gzip"} {
		resp, body := get(t, http.MethodGet, srv.URL, enc)
		if enc == "gzip" {
			body = gunzip(t, body, true)
		}
		if resp.StatusCode != http.StatusOK || string(body) != want {
			t.Errorf("Accept-Encoding %q: status %d, body %q; want 200, %q", enc, resp.StatusCode, body, want)
		}
	}
}

func TestHandlerMethods(t *testing.T) {
	e := exporter.New(nil)
	mustSet(t, e, newFixture().snapshot())
	srv := newServer(t, e, nil)

	t.Run("HEAD answers the headers of GET without a body", func(t *testing.T) {
		get1, body := get(t, http.MethodGet, srv.URL, "gzip")
		head, empty := get(t, http.MethodHead, srv.URL, "gzip")
		if head.StatusCode != http.StatusOK || len(empty) != 0 {
			t.Fatalf("status %d, %d body bytes", head.StatusCode, len(empty))
		}
		if got := head.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) || got != get1.Header.Get("Content-Length") {
			t.Errorf("HEAD Content-Length = %q, GET's body is %d bytes", got, len(body))
		}
	})
	t.Run("POST is refused with 405", func(t *testing.T) {
		resp, _ := get(t, http.MethodPost, srv.URL, "")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("status %d, Allow %q; want 405, \"GET, HEAD\"", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
}

func TestSetKeepsTheCurrentSnapshotOnError(t *testing.T) {
	e := exporter.New(nil)
	s := newFixture().snapshot()
	mustSet(t, e, s)
	if err := e.Set(nil); err == nil {
		t.Fatal("Set(nil) = nil, want an error")
	}
	if e.Current() != s || !e.Ready() {
		t.Error("a failed Set replaced the current snapshot")
	}
}

// TestSelfMetricFamiliesNeverShareANameWithTheSnapshot guards the
// concatenation of the two parts of /metrics: a family in both would be
// invalid exposition.
func TestSelfMetricFamiliesNeverShareANameWithTheSnapshot(t *testing.T) {
	self := exporter.NewSelfRegistry()
	if _, err := exporter.NewReloadMetrics(self); err != nil {
		t.Fatal(err)
	}
	// The daemon registers the store's health beside them.
	self.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: exporter.StoreUpMetric, Help: "Store reachable."}))
	selfMFs, err := self.Gather()
	if err != nil {
		t.Fatal(err)
	}
	snapReg := prometheus.NewRegistry()
	snapReg.MustRegister(newFixture().snapshot())
	snapMFs, err := snapReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	snapNames := map[string]bool{}
	for _, mf := range snapMFs {
		snapNames[mf.GetName()] = true
	}
	// The fixture must exercise every shared family for this test to mean anything.
	for _, n := range []string{
		exporter.StatusMetric, exporter.ThresholdMetric, exporter.PeriodMetric, exporter.MaxAgeMetric, exporter.InfoMetric,
		exporter.CollectorLastRunSuccessMetric, exporter.CollectorLastSuccessTimeMetric, exporter.CollectorLastRunTimeMetric,
		exporter.CollectorLastRunDurationMetric, exporter.CollectorRunsMetric, exporter.CollectorFailuresMetric,
		exporter.CollectorLastRunObservationsMetric,
	} {
		if !snapNames[n] {
			t.Errorf("fixture snapshot has no %s", n)
		}
	}

	for _, mf := range selfMFs {
		name := mf.GetName()
		if snapNames[name] {
			t.Errorf("self-metric %s is also a snapshot family", name)
		}
		// A snapshot family is either a fixed carewatch_kpi_ or
		// carewatch_collector_ name, or a KPI's: every carewatch_ self-metric
		// must be a name no KPI can take.
		if kpiName, ok := strings.CutPrefix(name, kpi.MetricPrefix); ok {
			k := &kpi.KPI{Name: kpiName, Help: "x", Direction: kpi.LowerIsBetter}
			if len(k.NameProblems()) == 0 {
				t.Errorf("a KPI named %q would collide with self-metric %s", kpiName, name)
			}
		} else if !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("unexpected self-metric %s", name)
		}
	}
}

// collidingGatherer returns a family with a snapshot family's name.
type collidingGatherer struct{}

func (collidingGatherer) Gather() ([]*dto.MetricFamily, error) {
	name, help, v := exporter.StatusMetric, "Imposter.", 7.0
	return []*dto.MetricFamily{{
		Name: &name, Help: &help, Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &v}}},
	}}, nil
}

func TestHandlerLeavesOutASelfFamilyNamedLikeASnapshotFamily(t *testing.T) {
	e := exporter.New(nil)
	mustSet(t, e, newFixture().snapshot())
	srv := newServer(t, e, collidingGatherer{})
	_, body := get(t, http.MethodGet, srv.URL, "")
	golden(t, "fixture.prom", body, false)
}

func TestScrapesDuringSetAlwaysGetOneWholeSnapshot(t *testing.T) {
	e := exporter.New(nil)
	f := newFixture()
	first := f.snapshot()
	mustSet(t, e, first)
	f.series = f.series[:1]
	second := f.snapshot()
	srv := newServer(t, e, nil)

	var want [2][]byte
	for i, s := range []*exporter.Snapshot{first, second} {
		alone := exporter.New(nil)
		mustSet(t, alone, s)
		_, want[i] = get(t, http.MethodGet, newServer(t, alone, nil).URL, "")
	}

	var setter, scrapers sync.WaitGroup
	stop := make(chan struct{})
	setter.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := e.Set([]*exporter.Snapshot{first, second}[i%2]); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := range 8 {
		scrapers.Go(func() {
			enc := []string{"", "gzip"}[i%2]
			for range 25 {
				_, body, err := fetch(t.Context(), http.MethodGet, srv.URL, enc)
				if err == nil && enc == "gzip" {
					var zr *gzip.Reader
					if zr, err = gzip.NewReader(bytes.NewReader(body)); err == nil {
						body, err = io.ReadAll(zr)
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(body, want[0]) && !bytes.Equal(body, want[1]) {
					t.Errorf("a scrape got neither snapshot:\n%s", body)
					return
				}
			}
		})
	}
	scrapers.Wait()
	close(stop)
	setter.Wait()
}
