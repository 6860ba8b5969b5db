// Package deploy_test checks the Prometheus and Alertmanager files in
// deploy/ with the programs that will read them: promtool (Debian's
// prometheus package) and amtool (prometheus-alertmanager), installed on
// demand as root on Debian.
package deploy_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/carewatch/carewatch/internal/debian"
)

// tool finds a command from a Debian package, installing it if missing
// and allowed; a test that needs it fails, never skips, without it.
func tool(t *testing.T, command, pkg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	p, err := debian.Ensure(ctx, slog.New(slog.NewTextHandler(t.Output(), nil)), command, pkg)
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

func TestPromtoolAcceptsEveryPrometheusConfig(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	for _, f := range configs(t, "scrape_configs") {
		t.Run(f, func(t *testing.T) {
			// check config also checks the rule files the config names.
			run(t, "", promtool, "check", "config", f)
		})
	}
}

func TestPromtoolAcceptsEveryRuleFile(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	for _, f := range files(t, "prometheus/rules/*.yml") {
		t.Run(f, func(t *testing.T) {
			run(t, "", promtool, "check", "rules", f)
		})
	}
}

func TestEveryRuleUnitTestPasses(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	for _, f := range files(t, "prometheus/tests/*.test.yml") {
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			out := run(t, "", promtool, "test", "rules", f)
			if !strings.Contains(out, "SUCCESS") {
				t.Errorf("promtool test rules did not say SUCCESS:\n%s", out)
			}
		})
	}
}

func TestAmtoolAcceptsEveryAlertmanagerConfig(t *testing.T) {
	amtool := tool(t, "amtool", "prometheus-alertmanager")
	for _, f := range configs(t, "route", "receivers") {
		t.Run(f, func(t *testing.T) {
			out := run(t, "", amtool, "check-config", f)
			// A templates glob that matches nothing is not an error to
			// amtool; it is to us.
			if !strings.Contains(out, "templates") || strings.Contains(out, " 0 templates") {
				t.Errorf("amtool found no templates:\n%s", out)
			}
		})
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
		if !quiet[name] {
			t.Errorf("alert %s has no unit test in which it does not fire", name)
		}
	}
	for name := range fires {
		if _, ok := names[name]; !ok {
			t.Errorf("unit tests expect alert %s, which no rule defines", name)
		}
	}
}

// Every alert says how bad it is and what it is about, in words; the KPI
// alerts also say which service and series, and link to the dashboard.
func TestEveryAlertCarriesTheLabelsAndTextPeopleNeed(t *testing.T) {
	for name, r := range alerts(t) {
		t.Run(name, func(t *testing.T) {
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("severity %q, want critical or warning", s)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("no %s annotation", a)
				}
			}
			if strings.HasPrefix(name, "CarewatchKPI") {
				for _, l := range []string{"service", "series"} {
					if r.Labels[l] == "" {
						t.Errorf("KPI alert without a %s label", l)
					}
				}
				if !strings.Contains(r.Annotations["dashboard"], "/d/carewatch-overview") {
					t.Errorf("KPI alert without a dashboard link: %q", r.Annotations["dashboard"])
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
			[]string{"children-critical"}},
		{"an amber children's KPI goes to children's services, warning",
			[]string{"alertname=CarewatchKPIAmber", "severity=warning", "service=children", "kpi=children_sw_vacancy_ratio"},
			[]string{"children-warning"}},
		{"a red adults' KPI goes to adults' services, critical",
			[]string{"alertname=CarewatchKPIRed", "severity=critical", "service=adults", "kpi=adults_assessment_wait_median_seconds"},
			[]string{"adults-critical"}},
		{"an amber adults' KPI goes to adults' services, warning",
			[]string{"alertname=CarewatchKPIAmber", "severity=warning", "service=adults"},
			[]string{"adults-warning"}},
		{"stale data goes to the operators and to the service",
			[]string{"alertname=CarewatchKPIStale", "severity=warning", "service=adults"},
			[]string{"carewatch-operators", "adults-warning"}},
		{"a failing collector goes to the operators",
			[]string{"alertname=CarewatchCollectorFailing", "severity=warning", "collector=workforce"},
			[]string{"carewatch-operators"}},
		{"carewatch down goes to the operators",
			[]string{"alertname=CarewatchDown", "severity=critical", "job=carewatch"},
			[]string{"carewatch-operators"}},
		{"an unreachable store goes to the operators",
			[]string{"alertname=CarewatchStoreDown", "severity=critical"},
			[]string{"carewatch-operators"}},
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
