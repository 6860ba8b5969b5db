package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the relay's /metrics as Prometheus would and returns the
// value of each series, keyed by name{labels}.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics answered %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics is not the text format: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestMetricsCountPostsFailuresAndRefusalsPerChannel(t *testing.T) {
	ok, broken := newTeams(t), newTeams(t, 404)
	r := newRelay(t, map[string]string{
		"children": urlFile(t, ok.srv.URL+"/children"),
		"adults":   urlFile(t, broken.srv.URL+"/adults"),
	}, nil)

	before := scrape(t, r.url)
	for _, key := range []string{
		"carewatch_teams_posts_total{channel=children}", "carewatch_teams_posts_total{channel=adults}",
		"carewatch_teams_post_failures_total{channel=children}", "carewatch_teams_post_failures_total{channel=adults}",
	} {
		if v, ok := before[key]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v) before any post, want 0: a channel's series exist from the start", key, v, ok)
		}
	}

	post(t, r.url+"/alerts/children", notification())
	post(t, r.url+"/alerts/children", notification())
	if status, _ := post(t, r.url+"/alerts/adults", notification()); status != http.StatusBadGateway {
		t.Fatalf("a post Teams refuses answered %d, want 502", status)
	}
	post(t, r.url+"/alerts/nowhere", notification())
	post(t, r.url+"/alerts/children", "not a notification")

	got := scrape(t, r.url)
	for key, want := range map[string]float64{
		"carewatch_teams_posts_total{channel=children}":                       2,
		"carewatch_teams_posts_total{channel=adults}":                         0,
		"carewatch_teams_post_failures_total{channel=children}":               0,
		"carewatch_teams_post_failures_total{channel=adults}":                 1,
		"carewatch_teams_post_duration_seconds{channel=children}_count":       2,
		"carewatch_teams_post_duration_seconds{channel=adults}_count":         1,
		"carewatch_teams_notifications_refused_total{reason=unknown_channel}": 1,
		"carewatch_teams_notifications_refused_total{reason=bad_request}":     1,
		"carewatch_teams_watchdog_last_received_timestamp_seconds":            0,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	var build bool
	for key := range got {
		build = build || strings.HasPrefix(key, "carewatch_teams_build_info")
	}
	if !build {
		t.Error("no carewatch_teams_build_info")
	}
}

// The relay as a dead man's switch: silence longer than the timeout posts
// one alarm to the watchdog channel (not one per check), and the next
// Watchdog posts the all-clear.
func TestAWatchdogThatStopsArrivingRaisesOneAlarmAndItsReturnClearsIt(t *testing.T) {
	tm := newTeams(t)
	r := newRelay(t, map[string]string{"operators": urlFile(t, tm.srv.URL+"/operators")}, func(o *Options) {
		o.Watchdog = WatchdogOptions{Channel: "operators", Timeout: 300 * time.Millisecond}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.relay.RunWatchdog(ctx)

	// Arriving in time: no alarm.
	for range 4 {
		if status, text := post(t, r.url+"/watchdog", notification()); status != http.StatusOK {
			t.Fatalf("/watchdog answered %d %s", status, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(tm.posts()); n != 0 {
		t.Fatalf("%d posts while the Watchdog arrives in time, want none", n)
	}
	if v := scrape(t, r.url)["carewatch_teams_watchdog_last_received_timestamp_seconds"]; v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("watchdog last received %v, want about now", v)
	}

	// Silence: one alarm, however long it lasts.
	time.Sleep(time.Second)
	posts := tm.posts()
	if len(posts) != 1 {
		t.Fatalf("%d posts after a silence of three timeouts, want exactly one alarm", len(posts))
	}
	runs, _ := texts(t, posts[0].body)
	if all := strings.Join(runs, "\n"); !strings.Contains(all, "The alerting path is broken: no Watchdog from Alertmanager") {
		t.Errorf("the alarm does not say what is wrong:\n%s", all)
	}
	m := scrape(t, r.url)
	if m["carewatch_teams_watchdog_alarms_total"] != 1 || m["carewatch_teams_watchdog_alarm"] != 1 {
		t.Errorf("alarms_total %v, alarm %v; want 1 and 1", m["carewatch_teams_watchdog_alarms_total"], m["carewatch_teams_watchdog_alarm"])
	}

	// It comes back: the all-clear, once.
	post(t, r.url+"/watchdog", notification())
	posts = tm.posts()
	if len(posts) != 2 {
		t.Fatalf("%d posts after the Watchdog came back, want the alarm and one all-clear", len(posts))
	}
	runs, _ = texts(t, posts[1].body)
	if all := strings.Join(runs, "\n"); !strings.Contains(all, "Resolved: The alerting path is broken") {
		t.Errorf("the all-clear does not say the alarm is resolved:\n%s", all)
	}
	if v := scrape(t, r.url)["carewatch_teams_watchdog_alarm"]; v != 0 {
		t.Errorf("alarm %v after the Watchdog came back, want 0", v)
	}
}

func TestTheWatchdogChannelMustBeConfigured(t *testing.T) {
	_, err := NewRelay(Options{
		Channels: map[string]string{"operators": urlFile(t, "https://teams.example/x")},
		Watchdog: WatchdogOptions{Channel: "children", Timeout: time.Minute},
	})
	if err == nil || !strings.Contains(err.Error(), `watchdog channel "children" is not a configured channel`) {
		t.Errorf("err = %v", err)
	}
}
