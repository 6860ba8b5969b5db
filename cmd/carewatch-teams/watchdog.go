package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// watchdog records that the Watchdog arrived from Alertmanager. The body
// is read (within the size limit) and not kept: its arrival is the news.
func (r *Relay) watchdog(w http.ResponseWriter, req *http.Request) {
	if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, req.Body, r.o.MaxRequestBytes)); err != nil {
		r.metrics.refused.WithLabelValues("bad_request").Inc()
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	now := r.o.Now()
	r.mu.Lock()
	r.lastWatchdog = now
	wasAlarmed := r.alarmed
	r.alarmed = false
	r.mu.Unlock()
	r.metrics.watchdog.Set(float64(now.UnixNano()) / 1e9)
	r.metrics.alarmNow.Set(0)
	if wasAlarmed && r.o.Watchdog.Channel != "" {
		r.o.Logger.Info("the Watchdog arrives again: the alerting path is back")
		r.postWatchdog(req.Context(), "resolved", now)
	}
	fmt.Fprintln(w, "OK")
}

// RunWatchdog checks, until ctx ends, whether the Watchdog is overdue,
// and raises the alarm once per silence. It does nothing unless
// Options.Watchdog names a channel.
func (r *Relay) RunWatchdog(ctx context.Context) {
	if r.o.Watchdog.Channel == "" {
		return
	}
	every := min(max(r.o.Watchdog.Timeout/10, 10*time.Millisecond), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.checkWatchdog(ctx)
		}
	}
}

func (r *Relay) checkWatchdog(ctx context.Context) {
	now := r.o.Now()
	r.mu.Lock()
	last := r.lastWatchdog
	overdue := !r.alarmed && now.Sub(last) > r.o.Watchdog.Timeout
	if overdue {
		r.alarmed = true
	}
	r.mu.Unlock()
	if !overdue {
		return
	}
	r.metrics.alarms.Inc()
	r.metrics.alarmNow.Set(1)
	r.o.Logger.Error("no Watchdog from Alertmanager: the alerting path is broken", "since", last, "timeout", r.o.Watchdog.Timeout)
	r.postWatchdog(ctx, "firing", last)
}

// postWatchdog tells the watchdog channel that the Watchdog stopped
// arriving at `at` (status firing) or arrives again at `at` (resolved),
// as a card like any alert's. A failed post is logged and counted like
// any other.
func (r *Relay) postWatchdog(ctx context.Context, status string, at time.Time) {
	a := Alert{
		Status: status,
		Labels: map[string]string{"alertname": "WatchdogMissing", "severity": "critical"},
		Annotations: map[string]string{
			"summary": "The alerting path is broken: no Watchdog from Alertmanager",
			"description": fmt.Sprintf("carewatch-teams has not received the Watchdog alert from Alertmanager for over %s. "+
				"Until it does, alerts may reach nobody: check Prometheus, Alertmanager and the network between them (docs/runbooks/alerting-path.md).",
				r.o.Watchdog.Timeout),
		},
		StartsAt: at,
	}
	if status == "resolved" {
		a.EndsAt = at
		a.StartsAt = time.Time{}
	}
	n := &Notification{Version: "4", Status: status, Receiver: "watchdog", GroupKey: "carewatch-teams/watchdog",
		CommonLabels: a.Labels, Alerts: []Alert{a}}
	msg, err := RenderCard(n, r.o.Card)
	if err != nil {
		r.o.Logger.Error("watchdog card not rendered", "err", err)
		return
	}
	channel := r.o.Watchdog.Channel
	logger := r.o.Logger.With("channel", channelLabel(channel), "watchdog", status)
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if attempts, err := r.postMeasured(pctx, channel, r.o.Channels[channel], msg, logger); err != nil {
		logger.Error("watchdog message not posted to Teams", "attempts", attempts, "err", err)
	}
}
