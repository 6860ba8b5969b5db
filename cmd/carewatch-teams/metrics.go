package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/collectors/version"
)

// relayMetrics are what the relay says about itself on /metrics, so that
// Prometheus notices when the last link of the alerting path breaks.
type relayMetrics struct {
	reg      *prometheus.Registry
	posts    *prometheus.CounterVec
	failures *prometheus.CounterVec
	refused  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	watchdog prometheus.Gauge
	alarms   prometheus.Counter
	alarmNow prometheus.Gauge
}

func newRelayMetrics(channels map[string]string) *relayMetrics {
	ch := []string{"channel"}
	m := &relayMetrics{
		reg: prometheus.NewRegistry(),
		posts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carewatch_teams_posts_total",
			Help: "Notifications posted to the channel's Teams webhook and accepted by Teams.",
		}, ch),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carewatch_teams_post_failures_total",
			Help: "Notifications that could not be posted to the channel's Teams webhook, after the relay's retries (Alertmanager is answered 502 and tries again later).",
		}, ch),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carewatch_teams_notifications_refused_total",
			Help: "Requests refused before anything was posted, by reason: unknown_channel, too_large, bad_request, unrenderable.",
		}, []string{"reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "carewatch_teams_post_duration_seconds",
			Help:    "Time taken to post one notification to Teams, retries and their waits included, successful or not.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, ch),
		watchdog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "carewatch_teams_watchdog_last_received_timestamp_seconds",
			Help: "Unix time at which the Watchdog last arrived from Alertmanager on /watchdog; 0 if it has not since the relay started.",
		}),
		alarms: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "carewatch_teams_watchdog_alarms_total",
			Help: "Times the relay raised the alarm because the Watchdog stopped arriving.",
		}),
		alarmNow: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "carewatch_teams_watchdog_alarm",
			Help: "Whether the Watchdog is overdue now (1) or not (0).",
		}),
	}
	for name := range channels {
		label := channelLabel(name)
		m.posts.WithLabelValues(label)
		m.failures.WithLabelValues(label)
		m.duration.WithLabelValues(label)
	}
	for _, reason := range []string{"unknown_channel", "too_large", "bad_request", "unrenderable"} {
		m.refused.WithLabelValues(reason)
	}
	m.reg.MustRegister(
		version.NewCollector("carewatch_teams"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.posts, m.failures, m.refused, m.duration, m.watchdog, m.alarms, m.alarmNow,
	)
	return m
}
