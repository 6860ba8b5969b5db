package config_test

import (
	"strings"
	"testing"

	"github.com/carewatch/carewatch/config"
)

func TestBadReportIsRefusedWithMessagesNamingThePath(t *testing.T) {
	_, err := config.Load("testdata/bad_report.yml")
	if err == nil {
		t.Fatal("Load accepted a bad report section")
	}
	want := []string{
		`testdata/bad_report.yml:18: report.sections[0].kpis[0].kpi: unknown KPI "caseloads": it is not in kpis`,
		`testdata/bad_report.yml:20: report.sections[0].kpis[1].series: label "ward" is not one of caseload's labels [team]`,
		`testdata/bad_report.yml:22: report.sections[0].kpis[2].benchmark.scope_label: label "scope" is not one of dfe_caseload's labels [la_code area]`,
		`testdata/bad_report.yml:23: report.sections[1].title: is required`,
		`testdata/bad_report.yml:23: report.sections[1].kpis: at least one KPI is required`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("messages:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestReportSectionLoads(t *testing.T) {
	cfg, err := config.Load("../examples/demo/carewatch.yml")
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Report
	if r == nil || r.Title == "" || len(r.Sections) == 0 {
		t.Fatalf("the demo configuration has no KPI pack: %+v", r)
	}
	for _, s := range r.Sections {
		for _, k := range s.KPIs {
			if k.Benchmark != nil && k.Benchmark.ScopeLabel != config.DefaultReportScopeLabel {
				t.Errorf("%s: benchmark scope label %q, want the default %q", k.KPI, k.Benchmark.ScopeLabel, config.DefaultReportScopeLabel)
			}
		}
	}
}
