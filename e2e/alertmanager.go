package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Alertmanager is Alertmanager running as a subprocess.
type Alertmanager struct {
	*Process
	Addr, URL string
}

// StartAlertmanager runs Debian's prometheus-alertmanager with configFile
// on a free 127.0.0.1 port, clustering off and its data in a temporary
// folder, and waits until it is ready. It is stopped when tb ends.
func StartAlertmanager(tb testing.TB, configFile string) *Alertmanager {
	tb.Helper()
	return StartAlertmanagerBinary(tb, "", configFile)
}

// StartAlertmanagerBinary is StartAlertmanager running bin, e.g. the
// release ComposeAlertmanager built; Debian's if bin is empty.
func StartAlertmanagerBinary(tb testing.TB, bin, configFile string) *Alertmanager {
	tb.Helper()
	if bin == "" {
		bin = debianCommand(tb, "prometheus-alertmanager", "prometheus-alertmanager")
	}
	addr := FreeAddr(tb)
	p := StartProcess(tb, "alertmanager", bin, nil,
		"--config.file="+configFile,
		"--storage.path="+filepath.Join(tb.TempDir(), "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=info",
	)
	am := &Alertmanager{Process: p, Addr: addr, URL: "http://" + addr}
	p.WaitHTTP(tb, am.URL+"/-/ready")
	return am
}

// AMAlert is an alert as Alertmanager's API (v2) lists it.
type AMAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Status      struct {
		// State is "active", "suppressed" (silenced or inhibited) or "unprocessed".
		State       string   `json:"state"`
		InhibitedBy []string `json:"inhibitedBy"`
		SilencedBy  []string `json:"silencedBy"`
	} `json:"status"`
	Fingerprint string `json:"fingerprint"`
}

// Alerts lists the alerts Alertmanager holds, inhibited and silenced ones
// included, matching the given label matchers (e.g. `alertname="X"`).
func (a *Alertmanager) Alerts(tb testing.TB, matchers ...string) []AMAlert {
	tb.Helper()
	q := url.Values{}
	for _, m := range matchers {
		q.Add("filter", m)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(a.URL + "/api/v2/alerts?" + q.Encode())
	mustf(tb, err, "listing Alertmanager's alerts")
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	mustf(tb, err, "listing Alertmanager's alerts")
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("e2e: listing Alertmanager's alerts: %s %s", resp.Status, body)
	}
	var alerts []AMAlert
	mustf(tb, json.Unmarshal(body, &alerts), "decoding Alertmanager's alerts")
	return alerts
}

// AlertmanagerTestOptions say where a test copy of an Alertmanager
// configuration sends its notifications instead of the council's people.
type AlertmanagerTestOptions struct {
	// Webhook, if set, is a URL that every receiver also posts to (with
	// /<receiver name> appended), so that a test sees every notification
	// with its labels.
	Webhook string
	// SMTP, if set, is the host:port of the SMTP server the email receivers
	// use, without TLS or authentication; if empty, email is left out.
	SMTP string
	// TeamsRelay, if set, is the host:port of a carewatch-teams the
	// receivers' Teams webhooks (port 9840 on loopback) go to instead; if
	// empty, they are left out.
	TeamsRelay string
	// TimeIntervals, if set, replaces the named time intervals' definitions
	// (each a list of Alertmanager time_interval specs) and keeps the
	// routes' active and mute intervals, so that a test can put now inside
	// or outside them; if nil, every route is active at all hours.
	TimeIntervals map[string][]map[string]any
	// Group replaces every route's group_wait and group_interval, so that
	// a notification follows within seconds; 1s if zero. Repeats are put
	// off beyond the test.
	Group time.Duration
}

// teamsRelayPort is where the shipped configuration expects carewatch-teams.
const teamsRelayPort = "9840"

// AlertmanagerTestConfig writes a copy of the Alertmanager configuration
// in file with the same routing (active at all hours), grouping keys and
// inhibit rules, its
// templates loaded from where they are, and its receivers pointed at the
// test's sinks as o says. It returns the copy's path.
func AlertmanagerTestConfig(tb testing.TB, file string, o AlertmanagerTestOptions) string {
	tb.Helper()
	group := o.Group
	if group <= 0 {
		group = time.Second
	}
	doc := readYAML(tb, file)
	root := doc.Content[0]

	if global := lookup(root, "global"); global != nil {
		deleteKey(global, "smtp_auth_username")
		deleteKey(global, "smtp_auth_password")
		deleteKey(global, "smtp_auth_password_file")
		if o.SMTP != "" {
			setMapValue(global, "smtp_smarthost", o.SMTP)
			setMapValue(global, "smtp_require_tls", "false")
		}
	}
	if tmpl := lookup(root, "templates"); tmpl != nil {
		for _, t := range tmpl.Content {
			if !filepath.IsAbs(t.Value) {
				t.Value = filepath.Join(filepath.Dir(file), t.Value)
			}
		}
	}
	var walk func(route *yaml.Node, top bool)
	walk = func(route *yaml.Node, top bool) {
		for _, key := range []string{"group_wait", "group_interval"} {
			if top || lookup(route, key) != nil {
				setMapValue(route, key, model.Duration(group).String())
			}
		}
		if top || lookup(route, "repeat_interval") != nil {
			setMapValue(route, "repeat_interval", "1h")
		}
		// Working hours would make what a test sees depend on when it
		// runs: every route is active at all hours here, unless the test
		// sets the intervals itself.
		if o.TimeIntervals == nil {
			deleteKey(route, "active_time_intervals")
			deleteKey(route, "mute_time_intervals")
		}
		if routes := lookup(route, "routes"); routes != nil {
			for _, r := range routes.Content {
				walk(r, false)
			}
		}
	}
	walk(mapValue(tb, root, "route"), true)
	if o.TimeIntervals != nil {
		intervals := mapValue(tb, root, "time_intervals")
		for _, ti := range intervals.Content {
			name := mapValue(tb, ti, "name").Value
			spec, ok := o.TimeIntervals[name]
			if !ok {
				continue
			}
			var n yaml.Node
			mustf(tb, n.Encode(spec), "time interval %s", name)
			setMapNode(ti, "time_intervals", &n)
		}
	}

	for _, rcv := range mapValue(tb, root, "receivers").Content {
		name := mapValue(tb, rcv, "name").Value
		if o.SMTP == "" {
			deleteKey(rcv, "email_configs")
		}
		hooks := lookup(rcv, "webhook_configs")
		if hooks != nil {
			var kept []*yaml.Node
			for _, h := range hooks.Content {
				u := mapValue(tb, h, "url")
				parsed, err := url.Parse(u.Value)
				mustf(tb, err, "receiver %s: webhook url", name)
				if parsed.Port() == teamsRelayPort {
					if o.TeamsRelay == "" {
						continue
					}
					parsed.Host = o.TeamsRelay
					u.Value = parsed.String()
				}
				kept = append(kept, h)
			}
			hooks.Content = kept
		}
		if o.Webhook != "" {
			var h yaml.Node
			mustf(tb, h.Encode(map[string]any{"url": o.Webhook + "/" + name, "send_resolved": true}), "webhook config")
			if hooks == nil {
				hooks = &yaml.Node{Kind: yaml.SequenceNode}
				rcv.Content = append(rcv.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "webhook_configs"}, hooks)
			}
			hooks.Content = append(hooks.Content, &h)
		}
		if hooks != nil && len(hooks.Content) == 0 {
			deleteKey(rcv, "webhook_configs")
		}
	}
	return writeYAML(tb, "alertmanager.yml", doc)
}

// setMapNode sets key of mapping m to node v.
func setMapNode(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
}
