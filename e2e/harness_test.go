package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/carewatch/carewatch/e2e"
)

// The quick copy of the rules changes the named `for`s and nothing else,
// and promtool accepts it.
func TestRulesWithForChangesOnlyTheNamedFors(t *testing.T) {
	src := filepath.Join(e2e.RepoRoot(t), "deploy", "prometheus", "rules", "carewatch.rules.yml")
	out := e2e.RulesWithFor(t, src, map[string]time.Duration{"CarewatchKPIRed": 2 * time.Second, "CarewatchDown": 0})
	want, got := forsOf(t, src), forsOf(t, out)
	want["CarewatchKPIRed"], want["CarewatchDown"] = "2s", ""
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: for %q, want %q", name, got[name], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d alerts in the copy, %d in the original", len(got), len(want))
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool: ", err)
	}
	if b, err := exec.CommandContext(t.Context(), promtool, "check", "rules", out).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the copy: %v\n%s", err, b)
	}
}

func forsOf(t *testing.T, file string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				For   string `yaml:"for"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out[r.Alert] = r.For
			}
		}
	}
	return out
}

// The test copy of the Alertmanager configuration routes every kind of
// alert to the same receivers as the shipped one, and amtool accepts it.
func TestTheTestAlertmanagerConfigKeepsTheShippedRouting(t *testing.T) {
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		t.Fatal("amtool: ", err)
	}
	shipped := filepath.Join(e2e.RepoRoot(t), "deploy", "alertmanager", "alertmanager.yml")
	copied := e2e.AlertmanagerTestConfig(t, shipped, e2e.AlertmanagerTestOptions{
		Webhook: "http://127.0.0.1:1/alerts", SMTP: "127.0.0.1:2", TeamsRelay: "127.0.0.1:3",
	})
	amtoolRun := func(args ...string) string {
		t.Helper()
		b, err := exec.CommandContext(t.Context(), amtool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("amtool %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	if out := amtoolRun("check-config", copied); !strings.Contains(out, "1 templates") {
		t.Errorf("the copy does not load the shipped templates:\n%s", out)
	}
	for _, labels := range [][]string{
		{"alertname=CarewatchKPIRed", "severity=critical", "service=children"},
		{"alertname=CarewatchKPIAmber", "severity=warning", "service=adults"},
		{"alertname=CarewatchKPIStale", "severity=warning", "service=children"},
		{"alertname=CarewatchCollectorFailing", "severity=warning"},
		{"alertname=CarewatchDown", "severity=critical"},
	} {
		route := func(file string) string {
			out := strings.Split(strings.TrimSpace(amtoolRun(append([]string{"config", "routes", "test", "--config.file=" + file}, labels...)...)), "\n")
			return out[len(out)-1]
		}
		if a, b := route(shipped), route(copied); a != b {
			t.Errorf("%v: shipped config routes to %s, the test copy to %s", labels, a, b)
		}
	}
	text, err := os.ReadFile(copied)
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"smtp_auth_password_file:", "council.example:587", "127.0.0.1:9840"} {
		if strings.Contains(string(text), gone) {
			t.Errorf("the test copy still holds %q", gone)
		}
	}
}

// The fast demo configuration is one carewatch accepts.
func TestTheFastDemoConfigIsValid(t *testing.T) {
	cfg := e2e.DemoConfig(t, e2e.DemoConfigOptions{Every: 2 * time.Second, NoRetries: true, MaxAge: map[string]time.Duration{"adults_assessment_waiting_people": time.Second}})
	bin := e2e.BuildCommand(t, "./cmd/carewatch")
	if b, err := exec.CommandContext(t.Context(), bin, "check", "--config.file="+cfg).CombinedOutput(); err != nil {
		t.Fatalf("carewatch check: %v\n%s", err, b)
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`schedule: "@every 2s"`, "default_retries: 0", `max_age: "1s"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the fast demo configuration does not say %s", want)
		}
	}
}
