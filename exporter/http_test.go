package exporter_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/carewatch/carewatch/exporter"
)

func newMuxServer(t *testing.T, o exporter.MuxOptions) *httptest.Server {
	t.Helper()
	mux, err := exporter.NewMux(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestReadyOnlyOnceASnapshotIsSet(t *testing.T) {
	e := exporter.New(nil)
	srv := newMuxServer(t, exporter.MuxOptions{Exporter: e})

	resp, body := get(t, http.MethodGet, srv.URL+"/-/ready", "")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("before Set: /-/ready = %d %q, want 503", resp.StatusCode, body)
	}
	resp, _ = get(t, http.MethodGet, srv.URL+"/-/healthy", "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("before Set: /-/healthy = %d, want 200", resp.StatusCode)
	}

	mustSet(t, e, newFixture().snapshot())
	resp, body = get(t, http.MethodGet, srv.URL+"/-/ready", "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after Set: /-/ready = %d %q, want 200", resp.StatusCode, body)
	}
	resp, body = get(t, http.MethodGet, srv.URL+exporter.MetricsPath, "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "carewatch_kpi_status") {
		t.Errorf("after Set: /metrics = %d without the snapshot", resp.StatusCode)
	}
}

func TestReload(t *testing.T) {
	var calls atomic.Int32
	var fail atomic.Bool
	reload := func(ctx context.Context) error {
		calls.Add(1)
		if fail.Load() {
			return errors.New(`config.yml: kpis[0].name is required`)
		}
		return ctx.Err()
	}
	srv := newMuxServer(t, exporter.MuxOptions{Exporter: exporter.New(nil), Reload: reload, EnableLifecycle: true})

	tests := []struct {
		name       string
		method     string
		fail       bool
		wantStatus int
		wantBody   string
		wantCalls  int32
	}{
		{name: "POST that reloads answers 200", method: http.MethodPost, wantStatus: http.StatusOK, wantBody: "config reloaded", wantCalls: 1},
		{name: "POST that fails answers 500 with the error", method: http.MethodPost, fail: true, wantStatus: http.StatusInternalServerError, wantBody: "kpis[0].name is required", wantCalls: 1},
		{name: "GET is refused with 405 and does not reload", method: http.MethodGet, wantStatus: http.StatusMethodNotAllowed, wantCalls: 0},
		{name: "PUT is refused with 405 and does not reload", method: http.MethodPut, wantStatus: http.StatusMethodNotAllowed, wantCalls: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls.Store(0)
			fail.Store(tt.fail)
			resp, body := get(t, tt.method, srv.URL+"/-/reload", "")
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("status %d, body %q; want %d with %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("reload called %d times, want %d", got, tt.wantCalls)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow = %q, want POST", resp.Header.Get("Allow"))
			}
		})
	}
}

func TestReloadIsRefusedWithoutTheLifecycleFlag(t *testing.T) {
	var calls atomic.Int32
	srv := newMuxServer(t, exporter.MuxOptions{Exporter: exporter.New(nil), Reload: func(context.Context) error {
		calls.Add(1)
		return nil
	}})
	resp, body := get(t, http.MethodPost, srv.URL+"/-/reload", "")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "Lifecycle API is not enabled") {
		t.Errorf("status %d, body %q; want 403 saying the lifecycle API is not enabled", resp.StatusCode, body)
	}
	if calls.Load() != 0 {
		t.Error("the configuration was reloaded")
	}
}

func TestReloadIsNotServedWithoutAReloadFunction(t *testing.T) {
	srv := newMuxServer(t, exporter.MuxOptions{Exporter: exporter.New(nil)})
	resp, _ := get(t, http.MethodPost, srv.URL+"/-/reload", "")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status %d, want 404", resp.StatusCode)
	}
}

func TestLandingPage(t *testing.T) {
	srv := newMuxServer(t, exporter.MuxOptions{
		Exporter: exporter.New(nil), Version: "1.2.3", DocsURL: "https://example.org/carewatch?a=1&b=2",
	})
	resp, body := get(t, http.MethodGet, srv.URL+"/", "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`href="/metrics"`, `href="/-/ready"`, "1.2.3", `href="https://example.org/carewatch?a=1&amp;b=2"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("landing page lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(string(body), "debug/pprof") {
		t.Error("landing page links to profiling endpoints that are not served")
	}

	resp, _ = get(t, http.MethodGet, srv.URL+"/nothing-here", "")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: status %d, want 404", resp.StatusCode)
	}
}

func TestNewMuxNeedsAnExporter(t *testing.T) {
	if _, err := exporter.NewMux(exporter.MuxOptions{}); err == nil {
		t.Error("NewMux without an exporter = nil error")
	}
}

func TestLandingPageLinksThePackFirst(t *testing.T) {
	pack := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("the pack")) })
	srv := newMuxServer(t, exporter.MuxOptions{Exporter: exporter.New(nil), Report: pack})
	_, body := get(t, http.MethodGet, srv.URL+"/", "")
	page := string(body)
	first, metrics := strings.Index(page, `href="/report"`), strings.Index(page, `href="/metrics"`)
	if first < 0 || metrics < 0 || first > metrics {
		t.Errorf("the landing page does not link the pack before the metrics:\n%s", page)
	}
	resp, body := get(t, http.MethodGet, srv.URL+exporter.ReportPath, "")
	if resp.StatusCode != http.StatusOK || string(body) != "the pack" {
		t.Errorf("/report = %d %q, want the pack", resp.StatusCode, body)
	}

	srv = newMuxServer(t, exporter.MuxOptions{Exporter: exporter.New(nil)})
	if resp, _ := get(t, http.MethodGet, srv.URL+exporter.ReportPath, ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("without a pack, /report = %d, want 404", resp.StatusCode)
	}
}
