package exporter

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TimezoneOffsetMetric is the council's time zone's offset from UTC now,
// labelled with the zone's name and its abbreviation now (GMT or BST).
const TimezoneOffsetMetric = "carewatch_timezone_offset_seconds"

// TimezoneCollector exports TimezoneOffsetMetric for the time zone the
// configuration in force names. Prometheus's alert templates have no time
// zone functions, so the alert rules add this offset to the Unix times they
// print and name the zone by its abbreviation: the times people read in an
// alert are the council's own.
type TimezoneCollector struct {
	desc     *prometheus.Desc
	location func() *time.Location
	now      func() time.Time
}

// NewTimezoneCollector returns a collector of the time zone that location
// returns at each scrape (it may change on a reload); now is the clock.
func NewTimezoneCollector(location func() *time.Location, now func() time.Time) *TimezoneCollector {
	return &TimezoneCollector{
		desc: prometheus.NewDesc(TimezoneOffsetMetric,
			"Offset from UTC, now, of the time zone carewatch runs its schedules in (global.timezone), with the zone's name and current abbreviation; alert texts use it to show local times.",
			[]string{"timezone", "abbreviation"}, nil),
		location: location,
		now:      now,
	}
}

// Describe implements prometheus.Collector.
func (c *TimezoneCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *TimezoneCollector) Collect(ch chan<- prometheus.Metric) {
	loc := c.location()
	if loc == nil {
		loc = time.UTC
	}
	abbr, offset := c.now().In(loc).Zone()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(offset), loc.String(), abbr)
}
