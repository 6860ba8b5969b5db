// Package deploy_test checks the Prometheus and Alertmanager files in
// deploy/ with the programs that will read them: promtool and amtool, both
// Debian's (packages prometheus and prometheus-alertmanager) and those of
// the releases the Compose stack ships, built from their Go modules.
package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/carewatch/carewatch/e2e"
	"github.com/carewatch/carewatch/internal/debian"
)

// tool finds a command from a Debian package (.ci/run installs it); a test
// that needs it fails, never skips, without it, saying how to install it.
func tool(t *testing.T, command, pkg string) string {
	t.Helper()
	p, err := debian.Find(command, pkg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// files lists the files matching pattern, failing if there are none: a
// check that finds nothing to check must not pass.
func files(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) == 0 {
		t.Fatalf("no file matches %s", pattern)
	}
	return m
}

// run runs a command and fails the test with its output if it fails.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// configs finds the YAML files under deploy/ whose top level has every one
// of keys: a Prometheus configuration has scrape_configs, an Alertmanager
// one route and receivers.
func configs(t *testing.T, keys ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(path) != ".yml" && filepath.Ext(path) != ".yaml") {
			return err
		}
		var top map[string]any
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if yaml.Unmarshal(b, &top) != nil {
			return nil // not a mapping: not a configuration
		}
		for _, k := range keys {
			if _, ok := top[k]; !ok {
				return nil
			}
		}
		out = append(out, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no configuration with %v under deploy/", keys)
	}
	return out
}

// versions are the releases of a tool the checks run on: Debian's package
// (.ci/run installs it) and the release the Compose stack ships, built from
// its Go module (see e2e/upstream).
type version struct{ name, path string }

func promtools(t *testing.T) []version {
	t.Helper()
	b := e2e.ComposePrometheus(t)
	return []version{{"debian", tool(t, "promtool", "prometheus")}, {"compose-" + b.Release, b.Command("promtool")}}
}

func amtools(t *testing.T) []version {
	t.Helper()
	b := e2e.ComposeAlertmanager(t)
	return []version{{"debian", tool(t, "amtool", "prometheus-alertmanager")}, {"compose-" + b.Release, b.Command("amtool")}}
}

func TestPromtoolAcceptsEveryPrometheusConfig(t *testing.T) {
	for _, promtool := range promtools(t) {
		for _, f := range configs(t, "scrape_configs") {
			t.Run(promtool.name+"/"+f, func(t *testing.T) {
				// check config also checks the rule files the config names.
				run(t, "", promtool.path, "check", "config", f)
			})
		}
	}
}

func TestPromtoolAcceptsEveryRuleFile(t *testing.T) {
	for _, promtool := range promtools(t) {
		for _, f := range files(t, "prometheus/rules/*.yml") {
			t.Run(promtool.name+"/"+f, func(t *testing.T) {
				run(t, "", promtool.path, "check", "rules", f)
			})
		}
	}
}

func TestEveryRuleUnitTestPasses(t *testing.T) {
	for _, promtool := range promtools(t) {
		for _, f := range files(t, "prometheus/tests/*.test.yml") {
			t.Run(promtool.name+"/"+f, func(t *testing.T) {
				t.Parallel()
				out := run(t, "", promtool.path, "test", "rules", f)
				if !strings.Contains(out, "SUCCESS") {
					t.Errorf("promtool test rules did not say SUCCESS:\n%s", out)
				}
			})
		}
	}
}

func TestAmtoolAcceptsEveryAlertmanagerConfig(t *testing.T) {
	for _, amtool := range amtools(t) {
		for _, f := range configs(t, "route", "receivers") {
			t.Run(amtool.name+"/"+f, func(t *testing.T) {
				out := run(t, "", amtool.path, "check-config", f)
				// A templates glob that matches nothing is not an error to
				// amtool; it is to us.
				if !strings.Contains(out, "templates") || strings.Contains(out, " 0 templates") {
					t.Errorf("amtool found no templates:\n%s", out)
				}
			})
		}
	}
}

// ruleFile is the part of a Prometheus rule file these tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// unitTestFile is the part of a promtool unit test file these tests read.
type unitTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name           string `yaml:"name"`
		AlertRuleTests []struct {
			EvalTime  string           `yaml:"eval_time"`
			AlertName string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func alerts(t *testing.T) map[string]rule {
	t.Helper()
	out := map[string]rule{}
	for _, f := range files(t, "prometheus/rules/*.yml") {
		var rf ruleFile
		readYAML(t, f, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					out[r.Alert] = r
				}
			}
		}
	}
	return out
}

// Every alert rule has unit tests that show it firing and not firing.
func TestEveryAlertHasUnitTestsThatShowItFiringAndNot(t *testing.T) {
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, f := range files(t, "prometheus/tests/*.test.yml") {
		var tf unitTestFile
		readYAML(t, f, &tf)
		for _, tc := range tf.Tests {
			for _, a := range tc.AlertRuleTests {
				if len(a.ExpAlerts) > 0 {
					fires[a.AlertName] = true
				} else {
					quiet[a.AlertName] = true
				}
			}
		}
	}
	names := alerts(t)
	if len(names) == 0 {
		t.Fatal("no alert rules found")
	}
	for name := range names {
		if !fires[name] {
			t.Errorf("alert %s has no unit test in which it fires", name)
		}
		// The Watchdog fires always: there is no test in which it does not.
		if !quiet[name] && name != "Watchdog" {
			t.Errorf("alert %s has no unit test in which it does not fire", name)
		}
	}
	for name := range fires {
		if _, ok := names[name]; !ok {
			t.Errorf("unit tests expect alert %s, which no rule defines", name)
		}
	}
}

// runbookURL matches the default runbook link of an alert and captures
// the page's path in the repository.
var runbookURL = regexp.MustCompile(`^\{\{ with \$externalLabels\.runbook_url \}\}\{\{ \. \}\}\{\{ else \}\}https://github\.com/carewatch/carewatch/blob/main/(docs/runbooks)\{\{ end \}\}(/[a-z-]+\.md)$`)

// Every alert says how bad it is and what it is about, in words, and links
// to a runbook page that exists in the repository; the KPI alerts also say
// which service and series, and link to the KPI detail dashboard.
func TestEveryAlertCarriesTheLabelsAndTextPeopleNeed(t *testing.T) {
	for name, r := range alerts(t) {
		t.Run(name, func(t *testing.T) {
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && !(name == "Watchdog" && s == "none") {
				t.Errorf("severity %q, want critical or warning", s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("no %s annotation", a)
				}
			}
			m := runbookURL.FindStringSubmatch(strings.TrimSpace(r.Annotations["runbook_url"]))
			if m == nil {
				t.Errorf("runbook_url %q is not a page of docs/runbooks", r.Annotations["runbook_url"])
			} else if _, err := os.Stat(filepath.Join("..", m[1]+m[2])); err != nil {
				t.Errorf("runbook_url names a page that does not exist: %v", err)
			}
			if strings.HasPrefix(name, "CarewatchKPI") {
				for _, l := range []string{"service", "series"} {
					if r.Labels[l] == "" {
						t.Errorf("KPI alert without a %s label", l)
					}
				}
				if !strings.Contains(r.Annotations["dashboard"], "/d/carewatch-kpi?") {
					t.Errorf("KPI alert without a link to the KPI detail dashboard: %q", r.Annotations["dashboard"])
				}
			}
		})
	}
}

// The routing tree sends each kind of alert to the people who act on it.
func TestAlertmanagerRoutesEachAlertToThePeopleWhoActOnIt(t *testing.T) {
	amtool := tool(t, "amtool", "prometheus-alertmanager")
	for _, tc := range []struct {
		name   string
		labels []string
		want   []string
	}{
		{"a red children's KPI goes to children's services, critical",
			[]string{"alertname=CarewatchKPIRed", "severity=critical", "service=children", "kpi=children_sw_caseload_average", "team=Assessment 1"},
			[]string{"children-critical", "children-teams"}},
		{"an amber children's KPI goes to children's services, warning",
			[]string{"alertname=CarewatchKPIAmber", "severity=warning", "service=children", "kpi=children_sw_vacancy_ratio"},
			[]string{"children-warning"}},
		{"a red adults' KPI goes to adults' services, critical",
			[]string{"alertname=CarewatchKPIRed", "severity=critical", "service=adults", "kpi=adults_assessment_wait_median_seconds"},
			[]string{"adults-critical", "adults-teams"}},
		{"an amber adults' KPI goes to adults' services, warning",
			[]string{"alertname=CarewatchKPIAmber", "severity=warning", "service=adults"},
			[]string{"adults-warning"}},
		{"stale data goes to the operators and to the service",
			[]string{"alertname=CarewatchKPIStale", "severity=warning", "service=adults"},
			[]string{"carewatch-operators", "carewatch-operators-teams", "adults-warning"}},
		{"a failing collector goes to the operators",
			[]string{"alertname=CarewatchCollectorFailing", "severity=warning", "collector=workforce"},
			[]string{"carewatch-operators", "carewatch-operators-teams"}},
		{"carewatch down goes to the operators",
			[]string{"alertname=CarewatchDown", "severity=critical", "job=carewatch"},
			[]string{"carewatch-operators", "carewatch-operators-teams"}},
		{"an unreachable store goes to the operators",
			[]string{"alertname=CarewatchStoreDown", "severity=critical"},
			[]string{"carewatch-operators", "carewatch-operators-teams"}},
		{"a broken alerting path goes to the operators",
			[]string{"alertname=AlertmanagerNotificationsFailing", "severity=critical", "integration=email"},
			[]string{"carewatch-operators", "carewatch-operators-teams"}},
		{"the Teams relay failing goes to the operators",
			[]string{"alertname=CarewatchTeamsPostsFailing", "severity=critical", "channel=children"},
			[]string{"carewatch-operators", "carewatch-operators-teams"}},
		{"the Watchdog goes to the dead man's switch only",
			[]string{"alertname=Watchdog", "severity=none"},
			[]string{"watchdog"}},
		{"a KPI of no known service goes to the operators",
			[]string{"alertname=CarewatchKPIRed", "severity=critical", "kpi=council_complaints_open"},
			[]string{"carewatch-operators"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"config", "routes", "test", "--config.file=alertmanager/alertmanager.yml"}, tc.labels...)
			out := strings.TrimSpace(lastLine(run(t, "", amtool, args...)))
			got := strings.Split(out, ",")
			if !slices.Equal(sorted(got), sorted(tc.want)) {
				t.Errorf("routed to %v, want %v", got, tc.want)
			}
		})
	}
}

// lastLine is amtool's answer without the warnings it prints first.
func lastLine(s string) string {
	var last string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if !strings.HasPrefix(l, "Warning:") && strings.TrimSpace(l) != "" {
			last = l
		}
	}
	return last
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// amRoute is the part of an Alertmanager route these tests read.
type amRoute struct {
	Receiver            string     `yaml:"receiver"`
	ActiveTimeIntervals []string   `yaml:"active_time_intervals"`
	MuteTimeIntervals   []string   `yaml:"mute_time_intervals"`
	Routes              []*amRoute `yaml:"routes"`
}

// Teams is for working hours and email for any time: every route to a
// receiver that posts to Teams is active in working hours only, and no
// route to an email receiver is ever muted. The interval itself is
// Monday to Friday, 08:00 to 18:00 in Europe/London.
func TestTeamsInWorkingHoursEmailAtAnyTime(t *testing.T) {
	var cfg struct {
		TimeIntervals []struct {
			Name          string `yaml:"name"`
			TimeIntervals []struct {
				Weekdays []string `yaml:"weekdays"`
				Times    []struct {
					Start string `yaml:"start_time"`
					End   string `yaml:"end_time"`
				} `yaml:"times"`
				Location string `yaml:"location"`
			} `yaml:"time_intervals"`
		} `yaml:"time_intervals"`
		Route     amRoute `yaml:"route"`
		Receivers []struct {
			Name     string           `yaml:"name"`
			Email    []map[string]any `yaml:"email_configs"`
			Webhooks []struct {
				URL string `yaml:"url"`
			} `yaml:"webhook_configs"`
		} `yaml:"receivers"`
	}
	readYAML(t, "alertmanager/alertmanager.yml", &cfg)
	var found bool
	for _, ti := range cfg.TimeIntervals {
		if ti.Name != "working-hours" {
			continue
		}
		found = true
		if len(ti.TimeIntervals) != 1 || !slices.Equal(ti.TimeIntervals[0].Weekdays, []string{"monday:friday"}) ||
			len(ti.TimeIntervals[0].Times) != 1 || ti.TimeIntervals[0].Times[0].Start != "08:00" || ti.TimeIntervals[0].Times[0].End != "18:00" ||
			ti.TimeIntervals[0].Location != "Europe/London" {
			t.Errorf("working-hours is %+v, want Monday to Friday 08:00-18:00 Europe/London", ti.TimeIntervals)
		}
	}
	if !found {
		t.Fatal("no time interval working-hours")
	}
	teams, email := map[string]bool{}, map[string]bool{}
	for _, r := range cfg.Receivers {
		for _, h := range r.Webhooks {
			if strings.Contains(h.URL, ":9840/alerts") {
				teams[r.Name] = true
			}
		}
		if len(r.Email) > 0 {
			email[r.Name] = true
		}
		if teams[r.Name] && email[r.Name] {
			t.Errorf("receiver %s both emails and posts to Teams: they need different hours", r.Name)
		}
	}
	if len(teams) == 0 || len(email) == 0 {
		t.Fatalf("Teams receivers %v, email receivers %v: want both", teams, email)
	}
	var walk func(r *amRoute, path string)
	walk = func(r *amRoute, path string) {
		if teams[r.Receiver] && !slices.Equal(r.ActiveTimeIntervals, []string{"working-hours"}) {
			t.Errorf("%s: the route to Teams receiver %s is active %v, want [working-hours]", path, r.Receiver, r.ActiveTimeIntervals)
		}
		if email[r.Receiver] && (len(r.ActiveTimeIntervals) > 0 || len(r.MuteTimeIntervals) > 0) {
			t.Errorf("%s: the route to email receiver %s is limited in time", path, r.Receiver)
		}
		for i, c := range r.Routes {
			walk(c, fmt.Sprintf("%s.routes[%d]", path, i))
		}
	}
	walk(&cfg.Route, "route")
}
