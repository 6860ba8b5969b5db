package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// PrometheusOptions say what a test Prometheus scrapes and evaluates.
type PrometheusOptions struct {
	// Targets are the carewatch addresses to scrape, as job "carewatch".
	Targets []string
	// RuleFiles are evaluated; see RulesWithFor for a quicker copy of
	// the shipped rules.
	RuleFiles []string
	// Alertmanager is the address alerts are sent to; none if empty.
	Alertmanager string
	// Interval is the scrape and evaluation interval; 1s if zero.
	Interval time.Duration
	// ExternalLabels are the Prometheus' external labels (the shipped rules
	// build dashboard links from grafana_url).
	ExternalLabels map[string]string
	// Binary is the prometheus to run; Debian's if empty (see
	// ComposePrometheus for the release Compose ships).
	Binary string
}

// Prometheus is a Prometheus server running as a subprocess.
type Prometheus struct {
	*Process
	Addr, URL string
}

// StartPrometheus writes a configuration for o, runs o.Binary (Debian's
// prometheus by default) on a free 127.0.0.1 port with its storage in a temporary folder, and
// waits until it is ready. It is stopped when tb ends.
func StartPrometheus(tb testing.TB, o PrometheusOptions) *Prometheus {
	tb.Helper()
	bin := o.Binary
	if bin == "" {
		bin = debianCommand(tb, "prometheus", "prometheus")
	}
	interval := o.Interval
	if interval <= 0 {
		interval = time.Second
	}
	cfg := map[string]any{
		"global": map[string]any{
			"scrape_interval":     model.Duration(interval).String(),
			"evaluation_interval": model.Duration(interval).String(),
			"external_labels":     o.ExternalLabels,
		},
		"rule_files": o.RuleFiles,
		"scrape_configs": []any{map[string]any{
			"job_name":       "carewatch",
			"static_configs": []any{map[string]any{"targets": o.Targets}},
		}},
	}
	if o.Alertmanager != "" {
		cfg["alerting"] = map[string]any{"alertmanagers": []any{map[string]any{
			"static_configs": []any{map[string]any{"targets": []string{o.Alertmanager}}},
		}}}
	}
	b, err := yaml.Marshal(cfg)
	mustf(tb, err, "prometheus configuration")
	file := WriteFile(tb, "prometheus.yml", string(b))
	addr := FreeAddr(tb)
	p := StartProcess(tb, "prometheus", bin, nil,
		"--config.file="+file,
		"--storage.tsdb.path="+filepath.Join(tb.TempDir(), "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	prom := &Prometheus{Process: p, Addr: addr, URL: "http://" + addr}
	p.WaitHTTP(tb, prom.URL+"/-/ready")
	return prom
}

// Query runs an instant PromQL query now, through the HTTP API.
func (p *Prometheus) Query(ctx context.Context, query string) (model.Value, error) {
	return p.api(ctx, "/api/v1/query", url.Values{"query": {query}})
}

// QueryRange runs a PromQL range query, as a Grafana time series panel does.
func (p *Prometheus) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) (model.Matrix, error) {
	v, err := p.api(ctx, "/api/v1/query_range", url.Values{
		"query": {query},
		"start": {strconv.FormatFloat(float64(start.UnixMilli())/1000, 'f', -1, 64)},
		"end":   {strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', -1, 64)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	})
	if err != nil {
		return nil, err
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("query_range %s: a %s, not a matrix", query, v.Type())
	}
	return m, nil
}

// api calls a query endpoint and decodes its result (the client in
// client_golang would bring in a JSON library of its own).
func (p *Prometheus) api(ctx context.Context, path string, params url.Values) (model.Value, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+path, strings.NewReader(params.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", params.Get("query"), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", params.Get("query"), err)
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %s: %s: %w", params.Get("query"), resp.Status, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", params.Get("query"), r.Error)
	}
	var v model.Value
	switch r.Data.ResultType {
	case "vector":
		v = &model.Vector{}
	case "matrix":
		v = &model.Matrix{}
	case "scalar":
		v = &model.Scalar{}
	case "string":
		v = &model.String{}
	default:
		return nil, fmt.Errorf("query %s: result type %q", params.Get("query"), r.Data.ResultType)
	}
	if err := json.Unmarshal(r.Data.Result, v); err != nil {
		return nil, fmt.Errorf("query %s: decoding the %s: %w", params.Get("query"), r.Data.ResultType, err)
	}
	switch x := v.(type) {
	case *model.Vector:
		return *x, nil
	case *model.Matrix:
		return *x, nil
	case *model.Scalar:
		return x, nil
	case *model.String:
		return x, nil
	}
	return v, nil
}

// Vector runs an instant query whose result must be a vector.
func (p *Prometheus) Vector(tb testing.TB, query string) model.Vector {
	tb.Helper()
	v, err := p.Query(context.Background(), query)
	mustf(tb, err, "prometheus")
	vec, ok := v.(model.Vector)
	if !ok {
		tb.Fatalf("e2e: query %s gave a %s, not a vector", query, v.Type())
	}
	return vec
}

// WaitForVector runs query until cond accepts its result or within passes.
func (p *Prometheus) WaitForVector(tb testing.TB, what, query string, within time.Duration, cond func(model.Vector) bool) model.Vector {
	tb.Helper()
	var got model.Vector
	Eventually(tb, what, within, func() (bool, string) {
		v, err := p.Query(context.Background(), query)
		if err != nil {
			return false, err.Error()
		}
		vec, ok := v.(model.Vector)
		if !ok {
			return false, fmt.Sprintf("a %s, not a vector", v.Type())
		}
		got = vec
		return cond(vec), fmt.Sprintf("%s = %v", query, vec)
	})
	return got
}

// RulesWithFor writes a copy of a rule file whose alerts named in fors have
// that `for` instead of their own (zero removes it), so that a test need
// not wait ten minutes or 36 hours; every other rule is unchanged. It fails
// tb if fors names an alert the file does not have.
func RulesWithFor(tb testing.TB, file string, fors map[string]time.Duration) string {
	tb.Helper()
	doc := readYAML(tb, file)
	seen := map[string]bool{}
	for _, g := range mapValue(tb, doc.Content[0], "groups").Content {
		for _, r := range mapValue(tb, g, "rules").Content {
			name := lookup(r, "alert")
			if name == nil {
				continue
			}
			d, ok := fors[name.Value]
			if !ok {
				continue
			}
			seen[name.Value] = true
			if d == 0 {
				deleteKey(r, "for")
			} else {
				setMapValue(r, "for", model.Duration(d).String())
			}
		}
	}
	var missing []string
	for name := range fors {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		tb.Fatalf("e2e: %s has no alert %s", file, strings.Join(missing, ", "))
	}
	return writeYAML(tb, filepath.Base(file), doc)
}
