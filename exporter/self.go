package exporter

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/collectors/version"
)

// Names of carewatch's own self-metrics, beside the Go runtime's (go_*) and
// the process's (process_*).
const (
	// BuildInfoMetric is 1, labelled with the version, revision and Go version of the binary.
	BuildInfoMetric = "carewatch_build_info"
	// ReloadSuccessfulMetric is 1 if the latest load of the configuration succeeded, else 0.
	ReloadSuccessfulMetric = "carewatch_config_last_reload_successful"
	// ReloadSuccessTimeMetric is when the configuration was last loaded successfully.
	ReloadSuccessTimeMetric = "carewatch_config_last_reload_success_timestamp_seconds"
	// StoreUpMetric is 1 if the daemon's last round trip to its store succeeded, else 0.
	StoreUpMetric = "carewatch_store_up"
)

// NewSelfRegistry returns a registry of the daemon's self-metrics: build
// information (carewatch_build_info, labelled with what
// github.com/prometheus/common/version was given at link time), the Go
// runtime and the process. Register ReloadMetrics and anything else the
// daemon measures about itself in it, and pass it to Exporter.Handler.
func NewSelfRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		version.NewCollector("carewatch"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// ReloadMetrics are the self-metrics of configuration reloads, named like
// Prometheus' and Alertmanager's own so that the same alert rules fit.
type ReloadMetrics struct {
	successful  prometheus.Gauge
	successTime prometheus.Gauge
}

// NewReloadMetrics registers carewatch_config_last_reload_successful and
// carewatch_config_last_reload_success_timestamp_seconds in reg. Until an
// outcome is recorded both are 0.
func NewReloadMetrics(reg prometheus.Registerer) (*ReloadMetrics, error) {
	m := &ReloadMetrics{
		successful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: ReloadSuccessfulMetric,
			Help: "Whether the latest attempt to load the configuration succeeded (1) or failed (0); after a failure the previous configuration is still in use.",
		}),
		successTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: ReloadSuccessTimeMetric,
			Help: "Unix time of the latest successful load of the configuration.",
		}),
	}
	for _, c := range []prometheus.Collector{m.successful, m.successTime} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering reload metrics: %w", err)
		}
	}
	return m, nil
}

// Succeeded records a configuration loaded at the given time.
func (m *ReloadMetrics) Succeeded(at time.Time) {
	m.successful.Set(1)
	m.successTime.Set(unixSeconds(at))
}

// Failed records a configuration that could not be loaded.
func (m *ReloadMetrics) Failed() {
	m.successful.Set(0)
}
