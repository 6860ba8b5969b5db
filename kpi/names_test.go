package kpi_test

import (
	"strings"
	"testing"

	"github.com/carewatch/carewatch/kpi"
)

func TestNameProblems(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(k *kpi.KPI)
		wantField string
		wantErr   string
	}{
		{name: "valid KPI is accepted", mutate: func(*kpi.KPI) {}},
		{name: "name with a dash is refused", mutate: func(k *kpi.KPI) { k.Name = "caseload-average" }, wantField: "name", wantErr: "must be lower-case letters, digits and underscores"},
		{name: "name with the carewatch_ prefix is refused", mutate: func(k *kpi.KPI) { k.Name = "carewatch_caseload" }, wantField: "name", wantErr: "the prefix is added to the metric name"},
		{name: "name of the build info metric is refused", mutate: func(k *kpi.KPI) { k.Name = "build_info" }, wantField: "name", wantErr: `starting with "build_" are reserved`},
		{name: "name of the store's self-metric is refused", mutate: func(k *kpi.KPI) { k.Name = "store_up" }, wantField: "name", wantErr: `starting with "store_" are reserved`},
		{name: "name in the kpi_ families is refused", mutate: func(k *kpi.KPI) { k.Name = "kpi_status" }, wantField: "name", wantErr: `starting with "kpi_" are reserved`},
		{name: "name in the collector_ families is refused", mutate: func(k *kpi.KPI) { k.Name = "collector_runs_total" }, wantField: "name", wantErr: `starting with "collector_" are reserved`},
		{name: "label kpi is refused", mutate: func(k *kpi.KPI) { k.Labels = []string{"kpi"} }, wantField: "labels[0]", wantErr: `label "kpi" is reserved`},
		{name: "label level is refused", mutate: func(k *kpi.KPI) { k.Labels = []string{"team", "level"} }, wantField: "labels[1]", wantErr: `label "level" is reserved`},
		{name: "label starting with two underscores is refused", mutate: func(k *kpi.KPI) { k.Labels = []string{"__team"} }, wantField: "labels[0]", wantErr: "not a valid Prometheus label name"},
		{name: "label with a dot is refused", mutate: func(k *kpi.KPI) { k.Labels = []string{"team.name"} }, wantField: "labels[0]", wantErr: "not a valid Prometheus label name"},
		{name: "label given twice is refused", mutate: func(k *kpi.KPI) { k.Labels = []string{"team", "team"} }, wantField: "labels[1]", wantErr: "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := caseload()
			tt.mutate(k)
			got := k.NameProblems()
			if tt.wantErr == "" {
				if len(got) != 0 {
					t.Fatalf("NameProblems() = %v, want none", got)
				}
				return
			}
			if len(got) != 1 || got[0].Field != tt.wantField || !strings.Contains(got[0].Message, tt.wantErr) {
				t.Fatalf("NameProblems() = %v, want one problem of %s containing %q", got, tt.wantField, tt.wantErr)
			}
		})
	}
}
