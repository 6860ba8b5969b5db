package exporter_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/carewatch/carewatch/exporter"
)

func TestTimezoneOffsetFollowsSummerTime(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		at   time.Time
		want string
	}{
		{"winter is GMT, no offset", time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC),
			`carewatch_timezone_offset_seconds{abbreviation="GMT",timezone="Europe/London"} 0`},
		{"summer is BST, an hour ahead", time.Date(2026, 7, 15, 12, 0, 0, 0, time.UTC),
			`carewatch_timezone_offset_seconds{abbreviation="BST",timezone="Europe/London"} 3600`},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(exporter.NewTimezoneCollector(func() *time.Location { return london }, func() time.Time { return c.at }))
			want := "# HELP carewatch_timezone_offset_seconds Offset from UTC, now, of the time zone carewatch runs its schedules in (global.timezone), with the zone's name and current abbreviation; alert texts use it to show local times.\n" +
				"# TYPE carewatch_timezone_offset_seconds gauge\n" + c.want + "\n"
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
				t.Error(err)
			}
		})
	}
}
