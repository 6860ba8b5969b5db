package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// channelName is what a channel may be called: it is a URL path segment.
var channelName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// defaultChannel is the channel of POST /alerts.
const defaultChannel = ""

// ParseChannels reads --teams.webhook-url-file values, each "FILE" (the
// default channel, POST /alerts) or "NAME=FILE" (POST /alerts/NAME), into a
// map from channel name to file.
func ParseChannels(values []string) (map[string]string, error) {
	channels := make(map[string]string, len(values))
	for _, v := range values {
		name, file := defaultChannel, v
		if before, after, ok := strings.Cut(v, "="); ok && channelName.MatchString(before) {
			name, file = before, after
		}
		if file == "" {
			return nil, fmt.Errorf("--teams.webhook-url-file %q names no file", v)
		}
		if _, dup := channels[name]; dup {
			if name == defaultChannel {
				return nil, errors.New("--teams.webhook-url-file: more than one file for the default channel")
			}
			return nil, fmt.Errorf("--teams.webhook-url-file: more than one file for channel %q", name)
		}
		channels[name] = file
	}
	if len(channels) == 0 {
		return nil, errors.New("--teams.webhook-url-file: no channel configured")
	}
	return channels, nil
}

// Options configure a Relay.
type Options struct {
	// Channels maps a channel name ("" for the default channel) to the
	// file holding its Teams webhook URL. The file is read for every
	// message, so a rotated URL needs no restart.
	Channels map[string]string
	// Client posts to Teams; its Timeout bounds one attempt.
	Client *http.Client
	// Retries is how many times a failed post is tried again; Backoff is
	// the first wait, doubled each time (a Retry-After from Teams, up to
	// MaxBackoff, is honoured instead).
	Retries    int
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxRequestBytes bounds the body Alertmanager may POST.
	MaxRequestBytes int64
	Card            CardOptions
	Logger          *slog.Logger
	// Watchdog, if its Channel is set, makes the relay a dead man's switch
	// for the alerting path: Alertmanager posts the always-firing Watchdog
	// alert to /watchdog every few minutes, and when none has arrived for
	// Timeout (counted from the start, or from the last one) the relay
	// posts an alarm to Channel, then an all-clear when one arrives again.
	Watchdog WatchdogOptions
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// WatchdogOptions configure the relay's dead man's switch.
type WatchdogOptions struct {
	Channel string
	Timeout time.Duration
}

// Relay turns Alertmanager webhook notifications into Teams messages.
type Relay struct {
	o       Options
	metrics *relayMetrics

	mu           sync.Mutex
	lastWatchdog time.Time // or the start, until one arrives
	alarmed      bool
}

// NewRelay checks that every channel's file holds a usable webhook URL.
func NewRelay(o Options) (*Relay, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	for name, file := range o.Channels {
		if _, err := readWebhookURL(file); err != nil {
			return nil, fmt.Errorf("channel %q: %w", channelLabel(name), err)
		}
	}
	if o.Watchdog.Channel != "" {
		if _, ok := o.Channels[o.Watchdog.Channel]; !ok {
			return nil, fmt.Errorf("watchdog channel %q is not a configured channel", o.Watchdog.Channel)
		}
		if o.Watchdog.Timeout <= 0 {
			return nil, errors.New("the watchdog needs a timeout above zero")
		}
	}
	return &Relay{o: o, metrics: newRelayMetrics(o.Channels), lastWatchdog: o.Now()}, nil
}

// Handler serves POST /alerts (the default channel), POST /alerts/{channel},
// POST /watchdog, GET /metrics, GET /-/healthy and GET /-/ready.
func (r *Relay) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /alerts", func(w http.ResponseWriter, req *http.Request) { r.serve(w, req, defaultChannel) })
	mux.HandleFunc("POST /alerts/{channel}", func(w http.ResponseWriter, req *http.Request) { r.serve(w, req, req.PathValue("channel")) })
	mux.HandleFunc("POST /watchdog", r.watchdog)
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "Healthy") })
	mux.HandleFunc("GET /-/ready", r.ready)
	return mux
}

// ready says whether every channel's file can be read now.
func (r *Relay) ready(w http.ResponseWriter, _ *http.Request) {
	for name, file := range r.o.Channels {
		if _, err := readWebhookURL(file); err != nil {
			r.o.Logger.Warn("not ready", "channel", channelLabel(name), "err", err)
			http.Error(w, fmt.Sprintf("channel %q: webhook URL file unusable", channelLabel(name)), http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "Ready")
}

// serve relays one notification. A failure to reach Teams is a 502, so that
// Alertmanager tries again later; a bad request is a 4xx, which it does not.
func (r *Relay) serve(w http.ResponseWriter, req *http.Request, channel string) {
	logger := r.o.Logger.With("channel", channelLabel(channel))
	file, ok := r.o.Channels[channel]
	if !ok {
		r.metrics.refused.WithLabelValues("unknown_channel").Inc()
		http.Error(w, fmt.Sprintf("no channel %q is configured", channel), http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.o.MaxRequestBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			r.metrics.refused.WithLabelValues("too_large").Inc()
			logger.Warn("notification refused: too large", "limit_bytes", r.o.MaxRequestBytes)
			http.Error(w, fmt.Sprintf("body larger than %d bytes", r.o.MaxRequestBytes), http.StatusRequestEntityTooLarge)
			return
		}
		r.metrics.refused.WithLabelValues("bad_request").Inc()
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var n Notification
	if err := json.Unmarshal(body, &n); err != nil {
		r.metrics.refused.WithLabelValues("bad_request").Inc()
		logger.Warn("notification refused: not Alertmanager webhook JSON", "err", err)
		http.Error(w, "not Alertmanager webhook JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	if n.Version != "4" {
		logger.Warn("unexpected Alertmanager webhook version; relaying anyway", "version", n.Version)
	}
	msg, err := RenderCard(&n, r.o.Card)
	if err != nil {
		r.metrics.refused.WithLabelValues("unrenderable").Inc()
		logger.Error("notification not relayed", "err", err)
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	logger = logger.With("group_key", n.GroupKey, "status", n.Status, "alerts", len(n.Alerts))
	start := time.Now()
	attempts, err := r.postMeasured(req.Context(), channel, file, msg, logger)
	if err != nil {
		logger.Error("notification not relayed to Teams", "attempts", attempts, "err", err)
		http.Error(w, "posting to Teams: "+err.Error(), http.StatusBadGateway)
		return
	}
	logger.Info("notification relayed to Teams", "attempts", attempts, "bytes", len(msg), "took", time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(w, "OK")
}

// postMeasured is post, counted and timed for channel.
func (r *Relay) postMeasured(ctx context.Context, channel, file string, msg []byte, logger *slog.Logger) (int, error) {
	label := channelLabel(channel)
	start := time.Now()
	attempts, err := r.post(ctx, file, msg, logger)
	r.metrics.duration.WithLabelValues(label).Observe(time.Since(start).Seconds())
	if err != nil {
		r.metrics.failures.WithLabelValues(label).Inc()
	} else {
		r.metrics.posts.WithLabelValues(label).Inc()
	}
	return attempts, err
}

// post sends msg to the channel's webhook, trying again after network
// errors, 429 and 5xx; it returns the number of attempts made.
func (r *Relay) post(ctx context.Context, file string, msg []byte, logger *slog.Logger) (int, error) {
	target, err := readWebhookURL(file)
	if err != nil {
		return 0, err
	}
	wait := r.o.Backoff
	for attempt := 1; ; attempt++ {
		retryAfter, err := r.postOnce(ctx, target, msg)
		if err == nil {
			return attempt, nil
		}
		var permanent permanentError
		if errors.As(err, &permanent) || attempt > r.o.Retries || ctx.Err() != nil {
			return attempt, err
		}
		d := wait
		if retryAfter > 0 {
			d = retryAfter
		}
		d = min(d, r.o.MaxBackoff)
		logger.Warn("posting to Teams failed; trying again", "attempt", attempt, "in", d, "err", err)
		select {
		case <-ctx.Done():
			return attempt, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(d):
		}
		wait *= 2
	}
}

// permanentError is a refusal that trying again will not change.
type permanentError struct{ error }

func (r *Relay) postOnce(ctx context.Context, target string, msg []byte) (retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(msg))
	if err != nil {
		return 0, permanentError{err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.o.Client.Do(req)
	if err != nil {
		// The error holds the URL, which is a secret: keep only the cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return 0, err
	}
	defer resp.Body.Close()
	// Teams says why it refused in a short body; read a little of it.
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		return 0, nil
	}
	err = fmt.Errorf("the Teams webhook answered %s: %s", resp.Status, strings.TrimSpace(string(text)))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5:
		return parseRetryAfter(resp.Header.Get("Retry-After")), err
	default:
		return 0, permanentError{err}
	}
}

// parseRetryAfter reads a Retry-After header given in seconds.
func parseRetryAfter(v string) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || s <= 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}

// readWebhookURL reads a Teams webhook URL from file. The URL is a secret:
// errors never include it.
func readWebhookURL(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading the webhook URL file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("webhook URL file %s does not hold an http(s) URL", file)
	}
	return s, nil
}

func channelLabel(name string) string {
	if name == defaultChannel {
		return "default"
	}
	return name
}
