package exporter

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
)

// MetricsPath is where the exposition is served.
const MetricsPath = "/metrics"

// MuxOptions configure the HTTP surface.
type MuxOptions struct {
	// Exporter serves /metrics and answers /-/ready. Required.
	Exporter *Exporter
	// Self is gathered at each scrape, after the snapshot; usually the
	// registry from NewSelfRegistry. May be nil.
	Self prometheus.Gatherer
	// Reload loads the configuration again; POST /-/reload calls it. When
	// nil, /-/reload is not served.
	Reload func(ctx context.Context) error
	// EnableLifecycle allows POST /-/reload, as Prometheus's
	// --web.enable-lifecycle does; without it the endpoint answers 403, so
	// that whoever reaches the port cannot change what the daemon runs.
	EnableLifecycle bool
	// Version is shown on the landing page.
	Version string
	// DocsURL, when set, is linked from the landing page.
	DocsURL string
	// Report, when set, serves the KPI pack at ReportPath, linked first
	// from the landing page.
	Report http.Handler
}

// ReportPath is where the KPI pack is served.
const ReportPath = "/report"

// NewMux returns the daemon's HTTP routes:
//
//	/            landing page
//	/report      the KPI pack, when MuxOptions.Report is set
//	/metrics     the exposition (Exporter.Handler)
//	/-/healthy   200 while the process serves HTTP
//	/-/ready     200 once a snapshot has been set, 503 before
//	/-/reload    POST: 200 when Reload succeeds, 500 with its error otherwise,
//	             403 unless EnableLifecycle
func NewMux(o MuxOptions) (*http.ServeMux, error) {
	if o.Exporter == nil {
		return nil, errors.New("exporter: MuxOptions.Exporter is required")
	}
	links := []web.LandingLinks{
		{Address: MetricsPath, Text: "Metrics", Description: "KPI values, RAG statuses, thresholds and collector health"},
		{Address: "/-/healthy", Text: "Health"},
		{Address: "/-/ready", Text: "Readiness", Description: "ready once the first snapshot of the KPIs is loaded"},
	}
	if o.Report != nil {
		links = append([]web.LandingLinks{{Address: ReportPath, Text: "KPI pack", Description: "the performance report: exceptions, RAG status, trends, benchmarks and commentary"}}, links...)
	}
	extra := ""
	if o.DocsURL != "" {
		extra = fmt.Sprintf(`<div>Documentation: <a href="%s">%s</a></div>`, html.EscapeString(o.DocsURL), html.EscapeString(o.DocsURL))
	}
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "carewatch",
		Description: "Social care KPIs, collected on a schedule and served as Prometheus metrics",
		Version:     o.Version,
		Links:       links,
		ExtraHTML:   extra,
		Profiling:   "false",
	})
	if err != nil {
		return nil, fmt.Errorf("exporter: landing page: %w", err)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /{$}", landing)
	mux.Handle(MetricsPath, o.Exporter.Handler(o.Self))
	if o.Report != nil {
		mux.Handle("GET "+ReportPath, o.Report)
	}
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "carewatch is healthy.")
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !o.Exporter.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "carewatch is not ready: no snapshot of the KPIs yet.")
			return
		}
		fmt.Fprintln(w, "carewatch is ready.")
	})
	if o.Reload != nil {
		mux.HandleFunc("POST /-/reload", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if !o.EnableLifecycle {
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintln(w, "Lifecycle API is not enabled.")
				return
			}
			if err := o.Reload(r.Context()); err != nil {
				w.WriteHeader(http.StatusInternalServerError)
				fmt.Fprintf(w, "failed to reload config: %s\n", err)
				return
			}
			fmt.Fprintln(w, "config reloaded.")
		})
	}
	return mux, nil
}
