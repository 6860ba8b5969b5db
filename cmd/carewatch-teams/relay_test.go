package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// teams is a stand-in Teams webhook: it records what it is sent and
// answers with the statuses it is told to, in turn (then 200).
type teams struct {
	srv *httptest.Server

	mu       sync.Mutex
	answers  []int
	header   http.Header // sent with every non-2xx answer
	received []received
	delay    time.Duration
}

type received struct {
	contentType string
	body        []byte
}

func newTeams(t *testing.T, answers ...int) *teams {
	t.Helper()
	tm := &teams{answers: answers, header: http.Header{}}
	tm.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tm.mu.Lock()
		tm.received = append(tm.received, received{contentType: r.Header.Get("Content-Type"), body: body})
		status := http.StatusAccepted // what Teams workflows answer
		if len(tm.answers) > 0 {
			status, tm.answers = tm.answers[0], tm.answers[1:]
		}
		delay := tm.delay
		tm.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if status/100 != 2 {
			for k, v := range tm.header {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			fmt.Fprint(w, "Webhook message delivery failed")
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(tm.srv.Close)
	return tm
}

func (tm *teams) posts() []received {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return append([]received(nil), tm.received...)
}

// urlFile writes a webhook URL file, as an operator would (with a newline).
func urlFile(t *testing.T, url string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "teams.url")
	if err := os.WriteFile(f, []byte(url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

type relayUnderTest struct {
	url   string
	logs  *bytes.Buffer
	relay *Relay
}

func newRelay(t *testing.T, channels map[string]string, tweak func(*Options)) *relayUnderTest {
	t.Helper()
	logs := &bytes.Buffer{}
	var mu sync.Mutex
	o := Options{
		Channels:        channels,
		Client:          &http.Client{Timeout: 2 * time.Second},
		Retries:         2,
		Backoff:         10 * time.Millisecond,
		MaxRequestBytes: 64 << 10,
		Card:            CardOptions{MaxAlerts: 20, MaxBytes: 24 << 10, MaxTextRunes: 1000, Location: london(t)},
		Logger:          slog.New(slog.NewTextHandler(lockedWriter{&mu, logs}, nil)),
	}
	if tweak != nil {
		tweak(&o)
	}
	r, err := NewRelay(o)
	if err != nil {
		t.Fatalf("NewRelay: %v", err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	return &relayUnderTest{url: srv.URL, logs: logs, relay: r}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func london(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// notification is what Alertmanager sends for a red team and a resolved
// amber, as the shipped rules write them.
func notification() Notification {
	return Notification{
		Version:     "4",
		GroupKey:    `{}/{service="children"}:{alertname="CarewatchKPIRed", service="children"}`,
		Status:      "firing",
		Receiver:    "children-critical",
		GroupLabels: map[string]string{"alertname": "CarewatchKPIRed", "service": "children"},
		CommonLabels: map[string]string{
			"alertname": "CarewatchKPIRed", "service": "children", "severity": "critical", "job": "carewatch",
			"kpi": "children_sw_caseload_average",
		},
		CommonAnnotations: map[string]string{},
		ExternalURL:       "http://alertmanager.council.example:9093",
		Alerts: []Alert{
			{
				Status: "firing",
				Labels: map[string]string{"alertname": "CarewatchKPIRed", "severity": "critical", "service": "children",
					"team": "Family Support East", "kpi": "children_sw_caseload_average"},
				Annotations: map[string]string{
					"summary":     "children_sw_caseload_average is red for Family Support East (children)",
					"description": "children_sw_caseload_average for team Family Support East in children's services is 24.5 cases, above its red threshold of 22 cases. Red since 3 July 2026 01:50 UTC. The value describes 3 July 2026.",
					"dashboard":   "https://grafana.council.example/d/carewatch-kpi?var-kpi=children_sw_caseload_average&var-team=Family+Support+East",
					"runbook_url": "https://intranet.council.example/carewatch/runbooks/kpi-status.md",
				},
				StartsAt: time.Date(2026, 7, 3, 2, 0, 0, 0, time.UTC),
			},
			{
				Status: "firing",
				Labels: map[string]string{"alertname": "CarewatchKPIRed", "severity": "critical", "service": "children",
					"team": "all", "kpi": "children_sw_caseload_average"},
				Annotations: map[string]string{
					"summary":     "children_sw_caseload_average is red for all teams (children)",
					"description": "children_sw_caseload_average for all teams in children's services is 18.2 cases, above its red threshold of 18 cases.",
				},
				StartsAt: time.Date(2026, 7, 3, 2, 0, 0, 0, time.UTC),
			},
			{
				Status: "resolved",
				Labels: map[string]string{"alertname": "CarewatchKPIRed", "severity": "critical", "service": "children",
					"team": "Assessment 2", "kpi": "children_sw_caseload_average"},
				Annotations: map[string]string{"summary": "children_sw_caseload_average is red for Assessment 2 (children)"},
				StartsAt:    time.Date(2026, 7, 1, 2, 0, 0, 0, time.UTC),
				EndsAt:      time.Date(2026, 7, 3, 2, 5, 0, 0, time.UTC),
			},
		},
	}
}

func post(t *testing.T, url string, body any) (int, string) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(text)
}

// texts is every TextRun of a posted card, in order.
func texts(t *testing.T, body []byte) (runs []string, msg teamsMessage) {
	t.Helper()
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatalf("the post is not JSON: %v\n%s", err, body)
	}
	if len(msg.Attachments) != 1 {
		t.Fatalf("%d attachments, want 1", len(msg.Attachments))
	}
	for _, el := range msg.Attachments[0].Content.Body {
		for _, r := range el.Inlines {
			runs = append(runs, r.Text)
		}
	}
	return runs, msg
}

func TestANotificationBecomesOneAdaptiveCardInTheMessageEnvelope(t *testing.T) {
	tm := newTeams(t)
	r := newRelay(t, map[string]string{"": urlFile(t, tm.srv.URL+"/webhookb2/secret-token")}, nil)

	status, text := post(t, r.url+"/alerts", notification())
	if status != http.StatusOK {
		t.Fatalf("relay answered %d %s", status, text)
	}
	posts := tm.posts()
	if len(posts) != 1 {
		t.Fatalf("Teams got %d posts, want 1", len(posts))
	}
	if posts[0].contentType != "application/json" {
		t.Errorf("Content-Type %q", posts[0].contentType)
	}
	// The envelope Teams webhooks and workflows accept, checked on the raw
	// JSON so that a renamed struct field cannot hide a change.
	var raw map[string]any
	if err := json.Unmarshal(posts[0].body, &raw); err != nil {
		t.Fatal(err)
	}
	att := raw["attachments"].([]any)[0].(map[string]any)
	content := att["content"].(map[string]any)
	for path, want := range map[string]any{
		"type": raw["type"], "contentType": att["contentType"], "content.type": content["type"], "content.version": content["version"],
	} {
		got := map[string]any{"type": "message", "contentType": "application/vnd.microsoft.card.adaptive",
			"content.type": "AdaptiveCard", "content.version": "1.4"}[path]
		if want != got {
			t.Errorf("%s = %v, want %v", path, want, got)
		}
	}
	if _, ok := att["contentUrl"]; !ok {
		t.Error("contentUrl is missing (Teams wants it, null)")
	}

	runs, msg := texts(t, posts[0].body)
	all := strings.Join(runs, "\n")
	for _, want := range []string{
		"2 firing, 1 resolved: CarewatchKPIRed in children",
		"children_sw_caseload_average is red for Family Support East (children)",
		"is 24.5 cases, above its red threshold of 22 cases",
		// 02:00 UTC on 3 July is 03:00 in London (BST).
		"Firing since 3 July 2026 03:00 BST.",
		"Resolved: children_sw_caseload_average is red for Assessment 2 (children)",
		"Resolved at 3 July 2026 03:05 BST.",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the card does not say %q:\n%s", want, all)
		}
	}
	// Resolved alerts, the news, come before the firing ones, which every
	// notification of the group repeats.
	if strings.Index(all, "Family Support East") < strings.Index(all, "Assessment 2") {
		t.Error("a firing alert is listed before a resolved one")
	}
	var links []string
	for _, el := range msg.Attachments[0].Content.Body {
		for _, r := range el.Inlines {
			if r.SelectAction != nil {
				links = append(links, r.Text+" "+r.SelectAction.URL)
			}
		}
		if el.Type != "RichTextBlock" {
			t.Errorf("element type %q: only RichTextBlocks keep text from being read as markdown", el.Type)
		}
	}
	if !slices.Equal(links, []string{
		" Open the dashboard https://grafana.council.example/d/carewatch-kpi?var-kpi=children_sw_caseload_average&var-team=Family+Support+East",
		" What to do https://intranet.council.example/carewatch/runbooks/kpi-status.md",
	}) {
		t.Errorf("links %q, want the alert's dashboard and runbook", links)
	}
	actions := msg.Attachments[0].Content.Actions
	if len(actions) != 1 || actions[0].URL != "http://alertmanager.council.example:9093" {
		t.Errorf("actions %+v, want one opening Alertmanager", actions)
	}
}

func TestNamedChannelsGoToTheirOwnWebhook(t *testing.T) {
	children, adults := newTeams(t), newTeams(t)
	r := newRelay(t, map[string]string{
		"children": urlFile(t, children.srv.URL),
		"adults":   urlFile(t, adults.srv.URL),
	}, nil)
	for _, tc := range []struct {
		name, path           string
		status               int
		toChildren, toAdults int
	}{
		{"children's channel posts to its webhook", "/alerts/children", http.StatusOK, 1, 0},
		{"adults' channel posts to its webhook", "/alerts/adults", http.StatusOK, 1, 1},
		{"an unknown channel is 404 and posts nothing", "/alerts/finance", http.StatusNotFound, 1, 1},
		{"the default channel is 404 when not configured", "/alerts", http.StatusNotFound, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, text := post(t, r.url+tc.path, notification())
			if status != tc.status {
				t.Errorf("status %d %s, want %d", status, text, tc.status)
			}
			if got := len(children.posts()); got != tc.toChildren {
				t.Errorf("children's webhook has %d posts, want %d", got, tc.toChildren)
			}
			if got := len(adults.posts()); got != tc.toAdults {
				t.Errorf("adults' webhook has %d posts, want %d", got, tc.toAdults)
			}
		})
	}
}

func TestFailuresAreRetriedOnlyWhenTryingAgainCanHelp(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers []int
		status  int
		posts   int
	}{
		{"two 503s then success is relayed on the third attempt", []int{503, 503}, http.StatusOK, 3},
		{"a 429 is tried again", []int{429}, http.StatusOK, 2},
		{"a 400 is not tried again and is a 502 for Alertmanager", []int{400}, http.StatusBadGateway, 1},
		{"a 404 (webhook deleted) is not tried again", []int{404}, http.StatusBadGateway, 1},
		{"503s beyond the retries are a 502 after 1+2 attempts", []int{503, 503, 503, 503}, http.StatusBadGateway, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := newTeams(t, tc.answers...)
			r := newRelay(t, map[string]string{"": urlFile(t, tm.srv.URL+"/secret-token")}, nil)
			status, text := post(t, r.url+"/alerts", notification())
			if status != tc.status {
				t.Errorf("status %d %s, want %d", status, text, tc.status)
			}
			if got := len(tm.posts()); got != tc.posts {
				t.Errorf("Teams got %d posts, want %d", got, tc.posts)
			}
			if strings.Contains(r.logs.String(), "secret-token") || strings.Contains(text, "secret-token") {
				t.Errorf("the webhook URL leaked into the log or the answer:\n%s\n%s", r.logs.String(), text)
			}
		})
	}
}

func TestRetryAfterIsHonouredUpToTheCap(t *testing.T) {
	tm := newTeams(t, 429)
	tm.header.Set("Retry-After", "120")
	r := newRelay(t, map[string]string{"": urlFile(t, tm.srv.URL)}, func(o *Options) { o.MaxBackoff = 300 * time.Millisecond })
	start := time.Now()
	status, text := post(t, r.url+"/alerts", notification())
	took := time.Since(start)
	if status != http.StatusOK {
		t.Fatalf("status %d %s", status, text)
	}
	if took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("took %v: want the 120s Retry-After capped at 300ms", took)
	}
}

func TestAHangingTeamsIsCutOffByTheTimeout(t *testing.T) {
	tm := newTeams(t)
	tm.delay = 10 * time.Second
	r := newRelay(t, map[string]string{"": urlFile(t, tm.srv.URL+"/secret-token")}, func(o *Options) {
		o.Client = &http.Client{Timeout: 200 * time.Millisecond}
		o.Retries = 1
	})
	start := time.Now()
	status, _ := post(t, r.url+"/alerts", notification())
	if status != http.StatusBadGateway {
		t.Errorf("status %d, want 502", status)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v with a 200ms timeout and one retry", took)
	}
	if got := len(tm.posts()); got != 2 {
		t.Errorf("%d attempts, want 2", got)
	}
	if strings.Contains(r.logs.String(), "secret-token") {
		t.Errorf("the webhook URL leaked into the log:\n%s", r.logs.String())
	}
}

func TestBadRequestsAreRefusedAndNothingIsPosted(t *testing.T) {
	tm := newTeams(t)
	r := newRelay(t, map[string]string{"": urlFile(t, tm.srv.URL)}, func(o *Options) { o.MaxRequestBytes = 4096 })
	big := notification()
	big.Alerts[0].Annotations["description"] = strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name   string
		body   any
		status int
	}{
		{"a body over the limit is 413", big, http.StatusRequestEntityTooLarge},
		{"a body that is not JSON is 400", []byte("<html>"), http.StatusBadRequest},
		{"JSON of the wrong shape is 400", []byte(`{"alerts": "many"}`), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, text := post(t, r.url+"/alerts", tc.body); status != tc.status {
				t.Errorf("status %d %s, want %d", status, text, tc.status)
			}
		})
	}
	resp, err := http.Get(r.url + "/alerts")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /alerts: %d, want 405", resp.StatusCode)
	}
	if got := len(tm.posts()); got != 0 {
		t.Errorf("Teams got %d posts from bad requests", got)
	}
}

func TestALargeGroupIsCutToFitTeamsAndCountsTheRest(t *testing.T) {
	n := notification()
	n.Alerts = nil
	for i := range 300 {
		n.Alerts = append(n.Alerts, Alert{
			Status: "firing",
			Labels: map[string]string{"alertname": "CarewatchKPIStale", "severity": "warning"},
			Annotations: map[string]string{
				"summary":     fmt.Sprintf("children_sw_agency_ratio data is stale for Team %03d (children)", i),
				"description": strings.Repeat("The latest value describes a day long past. ", 100),
			},
			StartsAt: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC),
		})
	}
	n.TruncatedAlerts = 7
	o := CardOptions{MaxAlerts: 50, MaxBytes: 24 << 10, MaxTextRunes: 1000, Location: london(t)}
	b, err := RenderCard(&n, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > o.MaxBytes {
		t.Errorf("card is %d bytes, more than %d", len(b), o.MaxBytes)
	}
	runs, _ := texts(t, b)
	all := strings.Join(runs, "\n")
	listed := strings.Count(all, "data is stale for Team")
	if listed == 0 || listed >= 50 {
		t.Errorf("%d alerts listed, want some but fewer than 50 to fit", listed)
	}
	if want := fmt.Sprintf("…and %d more, listed in Alertmanager.", 300-listed+7); !strings.Contains(all, want) {
		t.Errorf("the card does not say %q", want)
	}
	for _, r := range runs {
		if len([]rune(r)) > o.MaxTextRunes {
			t.Errorf("a text of %d runes, more than %d", len([]rune(r)), o.MaxTextRunes)
		}
	}
	// Firing since 9:00 UTC in January is 9:00 GMT in London.
	if !strings.Contains(all, "Firing since 5 January 2026 09:00 GMT.") {
		t.Error("the time is not shown in London time")
	}
}

func TestTheWebhookURLFileIsReadForEveryMessage(t *testing.T) {
	before, after := newTeams(t), newTeams(t)
	file := urlFile(t, before.srv.URL)
	r := newRelay(t, map[string]string{"": file}, nil)
	if status, _ := post(t, r.url+"/alerts", notification()); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if err := os.WriteFile(file, []byte(after.srv.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, _ := post(t, r.url+"/alerts", notification()); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if len(before.posts()) != 1 || len(after.posts()) != 1 {
		t.Errorf("posts before rotation %d, after %d: want 1 and 1", len(before.posts()), len(after.posts()))
	}
}

func TestHealthAndReadiness(t *testing.T) {
	tm := newTeams(t)
	file := urlFile(t, tm.srv.URL)
	r := newRelay(t, map[string]string{"children": file}, nil)
	get := func(path string) int {
		resp, err := http.Get(r.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("/-/healthy"); got != http.StatusOK {
		t.Errorf("/-/healthy: %d", got)
	}
	if got := get("/-/ready"); got != http.StatusOK {
		t.Errorf("/-/ready: %d", got)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if got := get("/-/ready"); got != http.StatusServiceUnavailable {
		t.Errorf("/-/ready with the URL file gone: %d, want 503", got)
	}
	if got := get("/-/healthy"); got != http.StatusOK {
		t.Errorf("/-/healthy with the URL file gone: %d, want 200", got)
	}
}

func TestNewRelayRefusesAnUnusableURLFileWithoutShowingItsContent(t *testing.T) {
	notURL := filepath.Join(t.TempDir(), "bad.url")
	if err := os.WriteFile(notURL, []byte("secret-token-without-scheme"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, file, want string }{
		{"a missing file names the channel", filepath.Join(t.TempDir(), "none"), `channel "children": reading the webhook URL file`},
		{"a file without a URL says so", notURL, "does not hold an http(s) URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRelay(Options{Channels: map[string]string{"children": tc.file}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret-token") {
				t.Errorf("the error shows the file's content: %v", err)
			}
		})
	}
}

func TestParseChannels(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   map[string]string
		err    string
	}{
		{"a bare file is the default channel", []string{"/run/teams.url"}, map[string]string{"": "/run/teams.url"}, ""},
		{"NAME=FILE names a channel", []string{"children=/run/c.url", "adults=/run/a.url"},
			map[string]string{"children": "/run/c.url", "adults": "/run/a.url"}, ""},
		{"an = inside a path is part of the path", []string{"/run/a=b.url"}, map[string]string{"": "/run/a=b.url"}, ""},
		{"a channel twice is refused", []string{"children=/a", "children=/b"}, nil, `more than one file for channel "children"`},
		{"two default files are refused", []string{"/a", "/b"}, nil, "more than one file for the default channel"},
		{"a name without a file is refused", []string{"children="}, nil, "names no file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseChannels(tc.values)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRunRefusesBadFlagsAndAMissingURLFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no URL file is a usage error", []string{"--web.listen-address=127.0.0.1:0"}, 2, "required flag(s) '--teams.webhook-url-file' not provided"},
		{"an unknown time zone is a usage error", []string{"--teams.webhook-url-file=/x", "--display.timezone=Mars/Olympus"}, 2, "--display.timezone"},
		{"a missing URL file stops it at start", []string{"--web.listen-address=127.0.0.1:0", "--teams.webhook-url-file=children=" + filepath.Join(t.TempDir(), "none")}, 1, `channel "children"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(tc.args, &stderr); code != tc.code {
				t.Errorf("exit code %d, want %d: %s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr does not say %q: %s", tc.want, stderr.String())
			}
		})
	}
}

func TestAResolvedAlertIsListedEvenWhenFiringOnesAreCut(t *testing.T) {
	n := notification()
	resolved := n.Alerts[2]
	n.Alerts = nil
	for i := range 30 {
		n.Alerts = append(n.Alerts, Alert{
			Status:      "firing",
			Labels:      map[string]string{"alertname": "CarewatchKPIRed", "severity": "critical"},
			Annotations: map[string]string{"summary": fmt.Sprintf("children_sw_agency_ratio is red for Team %02d (children)", i)},
		})
	}
	n.Alerts = append(n.Alerts, resolved)
	b, err := RenderCard(&n, CardOptions{MaxAlerts: 20, MaxBytes: 24 << 10, MaxTextRunes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	runs, _ := texts(t, b)
	all := strings.Join(runs, "\n")
	if !strings.Contains(all, "Resolved: "+resolved.Annotations["summary"]) {
		t.Errorf("the resolved alert, sent only once, is not listed:\n%s", all)
	}
	if !strings.Contains(all, "…and 11 more, listed in Alertmanager.") {
		t.Errorf("the card does not count the 11 firing alerts left out:\n%s", all)
	}
}

// --help and --version print, exit 0 and do nothing else, though the
// required --teams.webhook-url-file is missing.
func TestHelpAndVersionPrintAndExitZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"--version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out bytes.Buffer
			if code := run(args, &out); code != 0 {
				t.Errorf("exit %d, want 0:\n%s", code, out.String())
			}
			if !strings.Contains(out.String(), "carewatch-teams") || strings.Contains(out.String(), "carewatch-teams: ") {
				t.Errorf("output:\n%s", out.String())
			}
		})
	}
}

// A listen address in use is an error at once, with a non-zero exit.
func TestAnAddressInUseFailsAtOnce(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	file := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(file, []byte("https://example.org/hook\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"--teams.webhook-url-file=" + file, "--web.listen-address=" + busy.Addr().String()}, &out)
	}()
	select {
	case code := <-done:
		if code == 0 || !strings.Contains(out.String(), "address already in use") {
			t.Errorf("exit %d:\n%s", code, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10s after start with its address in use")
	}
}
