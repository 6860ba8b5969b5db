package dashboards_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	sdkdashboard "github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/carewatch/carewatch/dashboards"
	"github.com/carewatch/carewatch/kpi"
)

// The committed dashboards are what the generator makes of the demo's
// catalogue: go generate ./dashboards after any change to either.
func TestTheCommittedDashboardsAreTheGeneratedOnes(t *testing.T) {
	cfg := loadDemoConfig(t)
	files, err := dashboards.Generate(cfg.Catalogue, dashboards.Options{Timezone: cfg.Location.String()})
	if err != nil {
		t.Fatal(err)
	}
	var generated []string
	for _, f := range files {
		generated = append(generated, f.Name)
		committed, err := os.ReadFile(f.Name)
		if err != nil {
			t.Errorf("%s is generated but not committed: run go generate ./dashboards", f.Name)
			continue
		}
		if !bytes.Equal(committed, f.JSON) {
			t.Errorf("%s differs from what the generator makes: run go generate ./dashboards", f.Name)
		}
	}
	committed, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range committed {
		if !slices.Contains(generated, c) {
			t.Errorf("%s is committed but not generated: remove it, or generate it", c)
		}
	}
}

// A KPI a council adds to its catalogue gets its panels with no hand edit:
// in its service's dashboard, its series now and its history against its
// thresholds, in its unit, titled by its help text; the KPI detail
// dashboard offers every KPI Prometheus knows and every label of the
// catalogue; a new service gets a dashboard of its own.
func TestAKPIAddedToTheCatalogueGetsItsPanels(t *testing.T) {
	cat := loadDemoConfig(t).Catalogue
	added := []*kpi.KPI{
		{Name: "adults_reviews_overdue_ratio", Help: "Share of people whose annual review is overdue (Care Act section 27).", Unit: "ratio",
			Direction: kpi.LowerIsBetter, Labels: []string{"team", "locality"}, Thresholds: kpi.Thresholds{Amber: kpi.Threshold{Value: 0.1, Set: true}, Red: kpi.Threshold{Value: 0.2, Set: true}}, MaxAge: 45 * 24 * time.Hour},
		{Name: "housing_adaptations_wait_seconds", Help: "Median wait for a home adaptation.", Unit: "seconds",
			Direction: kpi.LowerIsBetter, MaxAge: 36 * time.Hour},
	}
	for _, k := range added {
		cat[k.Name] = k
	}
	files, err := dashboards.Generate(cat, dashboards.Options{Timezone: "Europe/London"})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]string{}
	for _, f := range files {
		byName[f.Name] = string(f.JSON)
	}
	adults := byName["service-adults.json"]
	for _, want := range []string{
		`"title": "Share of people whose annual review is overdue: now"`,
		`"title": "Share of people whose annual review is overdue: history against its thresholds"`,
		`WHERE o.kpi = 'adults_reviews_overdue_ratio'`,
		`(r.ov->>'amber')::double precision`,
	} {
		if !strings.Contains(adults, want) {
			t.Errorf("the adults' dashboard does not hold %s", want)
		}
	}
	housing, ok := byName["service-housing.json"]
	if !ok {
		t.Fatalf("no dashboard for the new service housing; files %v", slices.Sorted(func(yield func(string) bool) {
			for n := range byName {
				if !yield(n) {
					return
				}
			}
		}))
	}
	for _, want := range []string{`"uid": "carewatch-housing"`, `o.value / 86400 AS value`, `"unit": "suffix: days"`, `"timezone": "Europe/London"`} {
		if !strings.Contains(housing, want) {
			t.Errorf("the housing dashboard does not hold %s", want)
		}
	}
	detail := byName["kpi.json"]
	for _, want := range []string{`"definition": "label_values(carewatch_kpi_info, kpi)"`, `"name": "locality"`} {
		if !strings.Contains(detail, want) {
			t.Errorf("the KPI detail dashboard does not hold %s", want)
		}
	}
}

// Links carry the series and a time range fitting the KPI's cadence.
func TestCadenceDaysFitTheData(t *testing.T) {
	for _, c := range []struct {
		maxAge time.Duration
		want   int
	}{
		{36 * time.Hour, 30},         // daily: a month
		{45 * 24 * time.Hour, 900},   // monthly: two and a half years
		{540 * 24 * time.Hour, 1826}, // annual: five years at most
		{time.Hour, 14},              // at least two weeks
		{0, 90},                      // no max_age: a quarter
	} {
		if got := dashboards.CadenceDays(c.maxAge); got != c.want {
			t.Errorf("CadenceDays(%v) = %d, want %d", c.maxAge, got, c.want)
		}
	}
}

// The SDK's own checks: every committed dashboard reads back as the SDK's
// dashboard type, every query as one of a known datasource type (ours for
// PostgreSQL), passes the SDK's validation, and writes out again as the
// same JSON: no field of it is one Grafana's schema, as the SDK knows it,
// lacks. (The SDK's strict reader is not used: in v0.0.22 it reports its
// own empty error list as a failure of every panel.)
func TestTheSDKReadsAndValidatesEveryDashboard(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	cog.NewRuntime().RegisterDataqueryVariant(dashboards.SQLQueryVariant())
	for _, file := range dashboardFiles(t) {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var d sdkdashboard.Dashboard
			if err := json.Unmarshal(data, &d); err != nil {
				t.Fatalf("the SDK does not read it: %v", err)
			}
			if err := sdkError(d.Validate()); err != nil {
				t.Errorf("the SDK's validation: %v", err)
			}
			var queries int
			for _, p := range d.Panels {
				if p.Panel == nil {
					continue
				}
				for _, q := range p.Panel.Targets {
					queries++
					if _, unknown := q.(variants.UnknownDataquery); unknown {
						t.Errorf("panel %q: a query of a datasource type the SDK does not know", *p.Panel.Title)
					}
				}
			}
			if queries == 0 {
				t.Error("the SDK found no query: it did not read the panels")
			}
			again, err := json.MarshalIndent(d, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			var want, got any
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(again, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(want, got) {
				t.Error("the SDK does not write it back the same: a field is one it does not know")
			}
		})
	}
}

// sdkError is err, or nil when it is the SDK's empty list of errors (which
// its methods return as a non-nil error holding no error).
func sdkError(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}
