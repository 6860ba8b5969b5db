package collector_test

import (
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// vacancyCollector is a collector config as Load leaves it: its value
// expression parsed.
func vacancyCollector(mm config.MetricMapping) *config.CollectorConfig {
	mm.KPI = "children_sw_vacancy_ratio"
	mm.StaticLabels = map[string]string{"authority": "Exampleshire"}
	mm.Labels = map[string]string{"service": "service"}
	if mm.ValueExpression != "" {
		e, err := config.ParseExpression(mm.ValueExpression)
		if err != nil {
			panic(err) // the tests' own expressions
		}
		mm.Expression = e
	}
	return &config.CollectorConfig{Name: "workforce", Metrics: []config.MetricMapping{mm}}
}

func TestMapReadsNumbersAsExportsWriteThem(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mapping config.MetricMapping
		cell    any
		want    kpi.Value
	}{
		{"thousands separators are read", config.MetricMapping{ValueColumn: "v"}, "1,234,567.5", kpi.Known(1234567.5)},
		{"a negative number with separators", config.MetricMapping{ValueColumn: "v"}, "-1,234", kpi.Known(-1234)},
		{"percent makes a bare number a ratio", config.MetricMapping{ValueColumn: "v", Percent: true}, " 19.2 ", kpi.Known(0.192)},
		{"percent does not divide a percentage twice", config.MetricMapping{ValueColumn: "v", Percent: true}, "19.2%", kpi.Known(0.192)},
		{"percent divides a number from a database", config.MetricMapping{ValueColumn: "v", Percent: true}, 50.0, kpi.Known(0.5)},
		{"percent keeps a suppressed cell missing", config.MetricMapping{ValueColumn: "v", Percent: true}, "[x]", kpi.Missing},
		{"two dots are missing", config.MetricMapping{ValueColumn: "v"}, "..", kpi.Missing},
		{"a spreadsheet's division by zero is missing", config.MetricMapping{ValueColumn: "v"}, "#DIV/0!", kpi.Missing},
		{"a word of the value map", config.MetricMapping{ValueColumn: "v", ValueMap: map[string]float64{"Requires improvement": 2}}, " requires IMPROVEMENT ", kpi.Known(2)},
		{"a number where a word could be", config.MetricMapping{ValueColumn: "v", ValueMap: map[string]float64{"Good": 3}}, "3", kpi.Known(3)},
		{"a blank where a word could be", config.MetricMapping{ValueColumn: "v", ValueMap: map[string]float64{"Good": 3}}, "  ", kpi.Missing},
		{"an expression over the row", config.MetricMapping{ValueExpression: "v / (v + w)"}, "1,000", kpi.Known(0.5)},
		{"an expression with a missing operand is missing", config.MetricMapping{ValueExpression: "v / (v + w)"}, "z", kpi.Missing},
		{"an expression dividing by zero is missing", config.MetricMapping{ValueExpression: "w / (v - v)"}, "3", kpi.Missing},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := mustMapper(t, vacancyCollector(tt.mapping), 10, "service", "v", "w")
			obs, err := m.Map(row(1), []any{"children", tt.cell, "1000"}, runAt(t, "2025-10-01T09:00:00Z"))
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if obs[0].Value != tt.want {
				t.Errorf("value = %v, want %v", obs[0].Value, tt.want)
			}
		})
	}
}

func TestMapWithAPeriodFormat(t *testing.T) {
	cc := vacancyCollector(config.MetricMapping{ValueColumn: "v"})
	cc.PeriodColumn, cc.PeriodFormat, cc.PeriodDay = "year", "YYYY", "09-30"
	spec, err := config.ParsePeriod(cc.PeriodFormat, cc.PeriodDay)
	if err != nil {
		t.Fatal(err)
	}
	cc.Period = spec
	m := mustMapper(t, cc, 10, "service", "v", "year")
	run := runAt(t, "2026-01-01T09:00:00Z")
	obs, err := m.Map(row(1), []any{"children", "0.1", " 2025 "}, run)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 9, 30, 0, 0, 0, 0, london(t)); !obs[0].Period.Equal(want) {
		t.Errorf("period %s, want %s", obs[0].Period, want)
	}
	// A date from a database or a workbook is a date whatever the format.
	obs, err = m.Map(row(2), []any{"children", "0.1", time.Date(2024, 9, 30, 0, 0, 0, 0, time.FixedZone("", 0))}, run)
	if err != nil || !obs[0].Period.Equal(time.Date(2024, 9, 30, 0, 0, 0, 0, london(t))) {
		t.Errorf("period %v, %v", obs, err)
	}
	if _, err := m.Map(row(3), []any{"children", "0.1", ""}, run); err == nil || err.Error() != `collector "workforce": row 3, column "year": the period is empty` {
		t.Errorf("err = %v", err)
	}
}

// Two files of one run that give the same series and period are ambiguous,
// and the error names both.
func TestARunKeepsWhatItProducedAcrossTables(t *testing.T) {
	mapper, err := collector.NewMapper(vacancyCollector(config.MetricMapping{ValueColumn: "v"}), catalogue(), 10)
	if err != nil {
		t.Fatal(err)
	}
	run := runAt(t, "2025-10-01T09:00:00Z")
	m := mapper.NewRun()
	if err := m.Bind(`file "a.csv"`, []string{"service", "v"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Map(`file "a.csv", row 2`, []any{"children", "0.1"}, run); err != nil {
		t.Fatal(err)
	}
	if err := m.Bind(`file "b.csv"`, []string{"v", "service"}); err != nil {
		t.Fatal(err)
	}
	_, err = m.Map(`file "b.csv", row 7`, []any{"0.2", "children"}, run)
	want := `collector "workforce": file "a.csv", row 2 and file "b.csv", row 7 both give KPI "children_sw_vacancy_ratio"`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %v, want %s", err, want)
	}
	if err := m.Bind(`file "c.csv"`, []string{"service"}); err == nil || err.Error() != `collector "workforce": file "c.csv" has no column "v" (named by metrics[0].value_column); columns present: "service"` {
		t.Errorf("err = %v", err)
	}
}

// A Mapper is immutable: runs of one collector each keep their own state,
// so two at once neither race nor see each other's rows as duplicates.
func TestOneMapperServesRunsAtOnce(t *testing.T) {
	mapper, err := collector.NewMapper(vacancyCollector(config.MetricMapping{ValueColumn: "v"}), catalogue(), 10)
	if err != nil {
		t.Fatal(err)
	}
	run := runAt(t, "2025-10-01T09:00:00Z")
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			r := mapper.NewRun()
			if err := r.Bind("", []string{"service", "v"}); err != nil {
				errs <- err
				return
			}
			_, err := r.Map("row 1", []any{"children", "0.1"}, run)
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
