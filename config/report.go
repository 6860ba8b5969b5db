package config

import (
	"fmt"
)

// ReportConfig is the KPI pack: what it is called, whom it is about, and its
// sections in order with the KPIs of each.
type ReportConfig struct {
	Title    string                `yaml:"title"`
	Council  string                `yaml:"council"`
	Sections []ReportSectionConfig `yaml:"sections"`
}

// ReportSectionConfig is one section of the pack.
type ReportSectionConfig struct {
	Title string            `yaml:"title"`
	KPIs  []ReportKPIConfig `yaml:"kpis"`
}

// ReportKPIConfig is one KPI of a pack section.
type ReportKPIConfig struct {
	KPI string `yaml:"kpi"`
	// Title names the KPI in the pack; by default the start of its help.
	Title string `yaml:"title"`
	// Series selects the series shown by label values, e.g. {team: all}
	// for the service as a whole; unset shows every series (each team).
	Series map[string]string `yaml:"series"`
	// Benchmark adds the statistical neighbours' average, England and the
	// council's rank from benchmark series.
	Benchmark *ReportBenchmarkConfig `yaml:"benchmark"`
}

// ReportBenchmarkConfig names the series a KPI is benchmarked against:
// those of KPI (the item's own by default) whose scope label is council,
// stat_neighbour, region or england, as a file source's benchmark block
// labels them.
type ReportBenchmarkConfig struct {
	KPI        string `yaml:"kpi"`
	ScopeLabel string `yaml:"scope_label"`
	NameLabel  string `yaml:"name_label"`
}

// DefaultReportScopeLabel is the label a benchmark's scope is read from
// unless scope_label says otherwise.
const DefaultReportScopeLabel = "scope"

func (v *validator) report(c *Config) {
	r := c.Report
	if r == nil {
		return
	}
	if len(r.Sections) == 0 {
		v.addf("report.sections", "at least one section is required")
	}
	for i := range r.Sections {
		s := &r.Sections[i]
		p := fmt.Sprintf("report.sections[%d]", i)
		if s.Title == "" {
			v.addf(p+".title", "is required")
		}
		if len(s.KPIs) == 0 {
			v.addf(p+".kpis", "at least one KPI is required")
		}
		for j := range s.KPIs {
			it := &s.KPIs[j]
			ip := fmt.Sprintf("%s.kpis[%d]", p, j)
			k := c.Catalogue[it.KPI]
			switch {
			case it.KPI == "":
				v.addf(ip+".kpi", "is required")
				continue
			case k == nil:
				v.addf(ip+".kpi", "unknown KPI %q: it is not in kpis", it.KPI)
				continue
			}
			for _, l := range sortedKeys(it.Series) {
				if k.LabelIndex(l) < 0 {
					v.addf(ip+".series", "label %q is not one of %s's labels %v", l, k.Name, k.Labels)
				}
			}
			b := it.Benchmark
			if b == nil {
				continue
			}
			if b.ScopeLabel == "" {
				b.ScopeLabel = DefaultReportScopeLabel
			}
			bk := k
			if b.KPI != "" {
				if bk = c.Catalogue[b.KPI]; bk == nil {
					v.addf(ip+".benchmark.kpi", "unknown KPI %q: it is not in kpis", b.KPI)
					continue
				}
			}
			if bk.LabelIndex(b.ScopeLabel) < 0 {
				v.addf(ip+".benchmark.scope_label", "label %q is not one of %s's labels %v", b.ScopeLabel, bk.Name, bk.Labels)
			}
			if b.NameLabel != "" && bk.LabelIndex(b.NameLabel) < 0 {
				v.addf(ip+".benchmark.name_label", "label %q is not one of %s's labels %v", b.NameLabel, bk.Name, bk.Labels)
			}
		}
	}
}
