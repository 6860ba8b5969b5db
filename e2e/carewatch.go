package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/carewatch/carewatch/demo"
)

// Environment variables the demo configuration reads its DSNs from.
const (
	StoreDSNEnv  = demo.StoreDSNEnv
	SourceDSNEnv = demo.SourceDSNEnv
)

// CarewatchOptions say how to run carewatch.
type CarewatchOptions struct {
	// Binary is the carewatch binary; BuildCommand(tb, "./cmd/carewatch")
	// builds one, and an empty Binary is built that way.
	Binary     string
	ConfigFile string
	// Env holds extra environment variables (NAME=value), such as the DSNs
	// the configuration names.
	Env []string
	// Addr is the 127.0.0.1:port to listen on; a free port if empty. Keep it
	// across restarts so that Prometheus finds the new process.
	Addr string
}

// Carewatch is a carewatch daemon running as a subprocess.
type Carewatch struct {
	*Process
	// Options are the options it was started with, Addr and Binary filled
	// in: StartCarewatch(tb, c.Options) starts it again in the same place.
	Options CarewatchOptions
	// Addr is host:port, URL is http://Addr.
	Addr, URL string
}

// StartCarewatch runs `carewatch run` and waits until it is ready (it
// serves its first snapshot). It is stopped when tb ends.
func StartCarewatch(tb testing.TB, o CarewatchOptions) *Carewatch {
	tb.Helper()
	if o.Binary == "" {
		o.Binary = BuildCommand(tb, "./cmd/carewatch")
	}
	if o.Addr == "" {
		o.Addr = FreeAddr(tb)
	}
	p := StartProcess(tb, "carewatch", o.Binary, o.Env,
		"run",
		"--config.file="+o.ConfigFile,
		"--web.listen-address="+o.Addr,
		"--log.level=debug",
		"--shutdown.timeout=10s",
	)
	c := &Carewatch{Process: p, Options: o, Addr: o.Addr, URL: "http://" + o.Addr}
	p.WaitHTTP(tb, c.URL+"/-/ready")
	return c
}

// Metrics scrapes carewatch's /metrics.
func (c *Carewatch) Metrics(tb testing.TB) map[string]*dto.MetricFamily {
	tb.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(c.URL + "/metrics")
	if err != nil {
		tb.Fatalf("e2e: scraping carewatch: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("e2e: scraping carewatch: %s %v", resp.Status, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("e2e: parsing carewatch's /metrics: %v", err)
	}
	return fams
}

// CollectorGauge returns a per-collector gauge's value by collector name,
// e.g. carewatch_collector_last_run_timestamp_seconds.
func CollectorGauge(fams map[string]*dto.MetricFamily, metric string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range fams[metric].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "collector" {
				out[l.GetValue()] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// DemoConfigOptions change the demo configuration for a test.
type DemoConfigOptions struct {
	// Every is every collector's schedule (@every Every); they also run at
	// start. Zero keeps the demo's schedules.
	Every time.Duration
	// Idle makes every collector wait for a yearly tick instead of running
	// at start, so that a carewatch started on it serves only what the
	// store holds. It overrides Every.
	Idle bool
	// NoRetries makes a failing run fail at once instead of after retries.
	NoRetries bool
	// MaxAge replaces KPIs' max_age, by KPI name.
	MaxAge map[string]time.Duration
	// Directories replace file sources' directories, by source name.
	Directories map[string]string
}

// DemoConfig writes a copy of the demo configuration
// (examples/demo/carewatch.yml) changed as o says, and returns its path.
func DemoConfig(tb testing.TB, o DemoConfigOptions) string {
	tb.Helper()
	src := filepath.Join(RepoRoot(tb), "examples", "demo", "carewatch.yml")
	doc := readYAML(tb, src)
	root := doc.Content[0]
	// The copy lives elsewhere: a file source's folder, relative to the
	// configuration file, must become absolute.
	for _, s := range mapValue(tb, root, "sources").Content {
		if dir, ok := o.Directories[mapValue(tb, s, "name").Value]; ok {
			setMapValue(s, "directory", dir)
		} else if d := lookup(s, "directory"); d != nil && !filepath.IsAbs(d.Value) {
			setMapValue(s, "directory", filepath.Join(filepath.Dir(src), d.Value))
		}
	}
	if o.NoRetries {
		setMapValue(mapValue(tb, root, "global"), "default_retries", "0")
	}
	switch {
	case o.Idle:
		for _, c := range mapValue(tb, root, "collectors").Content {
			setMapValue(c, "schedule", "@yearly")
			setMapValue(c, "run_on_start", "false")
		}
	case o.Every > 0:
		for _, c := range mapValue(tb, root, "collectors").Content {
			setMapValue(c, "schedule", "@every "+o.Every.String())
			setMapValue(c, "run_on_start", "true")
		}
	}
	for name, age := range o.MaxAge {
		found := false
		for _, k := range mapValue(tb, root, "kpis").Content {
			if v := mapValue(tb, k, "name"); v.Value == name {
				setMapValue(k, "max_age", model.Duration(age).String())
				found = true
			}
		}
		if !found {
			tb.Fatalf("e2e: the demo configuration has no KPI %q", name)
		}
	}
	return writeYAML(tb, "carewatch.yml", doc)
}

func readYAML(tb testing.TB, file string) *yaml.Node {
	tb.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		tb.Fatalf("e2e: %s: %v", file, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		tb.Fatalf("e2e: %s is not a YAML mapping", file)
	}
	return &doc
}

func writeYAML(tb testing.TB, name string, doc *yaml.Node) string {
	tb.Helper()
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		tb.Fatalf("e2e: encoding %s: %v", name, err)
	}
	return WriteFile(tb, name, b.String())
}

// mapValue returns the value of key in mapping m, failing tb if absent.
func mapValue(tb testing.TB, m *yaml.Node, key string) *yaml.Node {
	tb.Helper()
	if v := lookup(m, key); v != nil {
		return v
	}
	tb.Fatalf("e2e: no key %q at line %d", key, m.Line)
	return nil
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setMapValue sets key in mapping m to the scalar value, adding it if absent.
func setMapValue(m *yaml.Node, key, value string) {
	scalar := &yaml.Node{Kind: yaml.ScalarNode, Value: value}
	if _, err := strconv.ParseFloat(value, 64); err == nil || value == "true" || value == "false" {
		scalar.Tag = "" // a number or a boolean, as written
	} else {
		scalar.Tag, scalar.Style = "!!str", yaml.DoubleQuotedStyle
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = scalar
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, scalar)
}

// deleteKey removes key from mapping m.
func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

func mustf(tb testing.TB, err error, format string, args ...any) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("e2e: %s: %v", fmt.Sprintf(format, args...), err)
	}
}
