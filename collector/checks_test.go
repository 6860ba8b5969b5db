package collector_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

// copyDfE copies the DfE example files into a new folder, the workforce
// file changed by cut, and points the example's source at it.
func copyDfE(t *testing.T, cfg *config.Config, cut func([]byte) []byte) {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(dfeData)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dfeData, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == csww && cut != nil {
			b = cut(b)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg.SourceByName(cfg.Collectors[0].Source).Directory = dir
}

// cutInsideLastValue cuts the file one character before its end, inside
// the last row's last value, as a copy stopped short leaves it.
func cutInsideLastValue(b []byte) []byte {
	return bytes.TrimRight(b, "\r\n")[:len(bytes.TrimRight(b, "\r\n"))-1]
}

func TestAFileCutInsideItsLastRowIsRejectedByTheTruncationCheck(t *testing.T) {
	cfg, err := config.Load(dfeExample)
	if err != nil {
		t.Fatal(err)
	}
	copyDfE(t, cfg, cutInsideLastValue)
	cc := &cfg.Collectors[0]
	src, err := newSourceFor(cfg, cc)
	if err != nil {
		t.Fatal(err)
	}
	obs, warnings, err := collector.NewChecks(cc, config.SourceFile).Collect(context.Background(), src, kpi.RunInfo{Collector: cc.Name, At: time.Now(), Location: cfg.Location}, nil)
	if err == nil {
		t.Fatalf("a file cut inside its last row was accepted: %d observations, warnings %v", len(obs), warnings)
	}
	failures := collector.CheckFailures(err)
	if len(failures) != 1 || failures[0].Check != "truncation" || failures[0].Action != kpi.Reject {
		t.Fatalf("failures %+v, want the truncation check rejecting", failures)
	}
	// The last row of the file is Waltham Forest's for 2017; its absence
	// rate, 2.1, reads "2." once cut.
	for _, want := range []string{`collector "dfe_workforce"`, "check truncation", `file "csww_indicators_2017_to_2025.csv"`, "row 1464", `last value reads "2."`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %s: %v", want, err)
		}
	}
	if !collector.IsPermanent(err) {
		t.Error("a rejected run would be retried")
	}
}

func TestTruncationSetToWarnPublishesWithAWarning(t *testing.T) {
	cfg, err := config.Load(dfeExample)
	if err != nil {
		t.Fatal(err)
	}
	copyDfE(t, cfg, cutInsideLastValue)
	cc := &cfg.Collectors[0]
	cc.Expect = &config.CollectorExpect{Truncation: &config.ActionOnly{OnFail: "warn"}}
	src, err := newSourceFor(cfg, cc)
	if err != nil {
		t.Fatal(err)
	}
	obs, warnings, err := collector.NewChecks(cc, config.SourceFile).Collect(context.Background(), src, kpi.RunInfo{Collector: cc.Name, At: time.Now(), Location: cfg.Location}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) == 0 || len(warnings) != 1 || warnings[0].Check != "truncation" || warnings[0].Action != kpi.Warn {
		t.Errorf("%d observations with warnings %+v, want the truncation warning", len(obs), warnings)
	}
}

func TestWellFormedExportsPassTheTruncationCheck(t *testing.T) {
	for name, end := range map[string]func([]byte) []byte{
		"as published":                 nil,
		"with Windows line ends":       func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) },
		"with blank lines at the end":  func(b []byte) []byte { return append(b, "\n\n"...) },
		"with trailing spaces after a": func(b []byte) []byte { return append(b, "  "...) },
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Load(dfeExample)
			if err != nil {
				t.Fatal(err)
			}
			copyDfE(t, cfg, end)
			cc := &cfg.Collectors[0]
			src, err := newSourceFor(cfg, cc)
			if err != nil {
				t.Fatal(err)
			}
			obs, warnings, err := collector.NewChecks(cc, config.SourceFile).Collect(context.Background(), src, kpi.RunInfo{Collector: cc.Name, At: time.Now(), Location: cfg.Location}, nil)
			if err != nil || len(warnings) != 0 || len(obs) == 0 {
				t.Errorf("%d observations, warnings %v, err %v", len(obs), warnings, err)
			}
		})
	}
}

const checksConfig = `
kpis:
  - name: children_sw_vacancy_ratio
    help: Vacancy rate.
    unit: ratio
    direction: lower_is_better
    labels: [team]
  - name: children_sw_caseload_average
    help: Caseload.
    unit: cases
    direction: lower_is_better
    labels: [team]
    expect:
      labels: {require: {team: [North, South, East]}}
  - name: children_sw_net_change
    help: Net change in social workers.
    unit: people
    direction: higher_is_better
    expect:
      range: {min: -50, max: 50, on_fail: warn}
sources:
  - {name: cms, type: postgres, dsn_env: CMS}
collectors:
  - name: workforce
    source: cms
    schedule: "@daily"
    query: SELECT 1
    metrics:
      - {kpi: children_sw_vacancy_ratio, value_column: v, labels: {team: team}}
      - {kpi: children_sw_caseload_average, value_column: c, labels: {team: team}}
      - {kpi: children_sw_net_change, value_column: n}
`

func TestImpossibleValuesAreRejectedNamingCollectorCheckSeriesAndValue(t *testing.T) {
	cfg, err := config.Parse([]byte(checksConfig), "carewatch.yml")
	if err != nil {
		t.Fatal(err)
	}
	cc := &cfg.Collectors[0]
	vacancy, caseload, net := cfg.Catalogue["children_sw_vacancy_ratio"], cfg.Catalogue["children_sw_caseload_average"], cfg.Catalogue["children_sw_net_change"]
	march := time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)
	obs := []kpi.Observation{
		{KPI: vacancy, Labels: []string{"North"}, Period: march, Value: kpi.Known(0.14)},
		{KPI: vacancy, Labels: []string{"South"}, Period: march, Value: kpi.Known(1.7)},
		{KPI: vacancy, Labels: []string{"East"}, Period: march, Value: kpi.Missing},
		{KPI: caseload, Labels: []string{"North"}, Period: march, Value: kpi.Known(-5)},
		{KPI: caseload, Labels: []string{"South"}, Period: march, Value: kpi.Known(0)},
		{KPI: net, Period: march, Value: kpi.Known(-3)},
	}
	failures, err := collector.NewChecks(cc, config.SourcePostgres).Run(context.Background(), obs, nil)
	if err != nil {
		t.Fatal(err)
	}
	rejected := collector.Rejected(failures)
	if rejected == nil {
		t.Fatalf("a ratio of 1.7 and a caseload of -5 were not rejected: %+v", failures)
	}
	for _, want := range []string{
		`collector "workforce": check range: KPI children_sw_vacancy_ratio, series {team="South"}, period 2026-03-31: value 1.7 is above the maximum 1 (a ratio lies within 0 and 1)`,
		`collector "workforce": check range: KPI children_sw_caseload_average, series {team="North"}, period 2026-03-31: value -5 is below the minimum 0`,
	} {
		if !strings.Contains(rejected.Error(), want) {
			t.Errorf("the rejection does not say\n  %s\nit says\n  %v", want, rejected)
		}
	}
	// A missing value is not out of range, zero is in range, and a KPI
	// whose range allows negatives keeps them.
	var labels *kpi.CheckFailure
	for i, f := range failures {
		if f.Check == "labels" {
			labels = &failures[i]
		}
		if f.Check == "range" && f.KPI == "children_sw_net_change" {
			t.Errorf("a net change of -3 failed its range: %s", f.Message)
		}
	}
	if labels == nil || labels.Action != kpi.Warn || !strings.Contains(labels.Message, `no series with team ["East"]`) {
		t.Errorf("the missing team is not warned about: %+v", labels)
	}
	var re *collector.RejectedError
	if !errors.As(rejected, &re) || re.Failures[0].Action != kpi.Reject {
		t.Errorf("the rejecting failures do not come first: %+v", re)
	}
}

func TestAnEmptyRunWarnsByDefaultAndRowLimitsAreConfigurable(t *testing.T) {
	cfg, err := config.Parse([]byte(checksConfig), "carewatch.yml")
	if err != nil {
		t.Fatal(err)
	}
	cc := &cfg.Collectors[0]
	failures, err := collector.NewChecks(cc, config.SourcePostgres).Run(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(failures) != 1 || failures[0].Check != "rows" || failures[0].Action != kpi.Warn ||
		failures[0].Message != `collector "workforce": check rows: the run carried 0 observations, fewer than the 1 expected` {
		t.Errorf("an empty run: %+v", failures)
	}
	two, reject := 2, "reject"
	cc.Expect = &config.CollectorExpect{Rows: &config.RowsExpect{Max: &two, OnFail: reject}}
	obs := make([]kpi.Observation, 3)
	for i := range obs {
		obs[i] = kpi.Observation{KPI: cfg.Catalogue["children_sw_net_change"], Period: time.Now(), Value: kpi.Known(1)}
	}
	failures, err = collector.NewChecks(cc, config.SourcePostgres).Run(context.Background(), obs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if collector.Rejected(failures) == nil {
		t.Errorf("3 observations with at most 2 expected: %+v", failures)
	}
}

// impossibleConfig maps a vacancy ratio and a caseload per team, read by
// the collector "workforce" from the source named; collect is its file
// or query block.
func impossibleConfig(t *testing.T, source, collect string) (*config.Config, *config.CollectorConfig) {
	t.Helper()
	text := `
kpis:
  - {name: children_sw_vacancy_ratio, help: Vacancy rate., unit: ratio, direction: lower_is_better, labels: [team]}
  - {name: children_sw_caseload_average, help: Caseload., unit: cases, direction: lower_is_better, labels: [team]}
` + source + `
collectors:
  - name: workforce
    source: data
    schedule: "@daily"
` + collect + `
    period_column: snapshot
    metrics:
      - {kpi: children_sw_vacancy_ratio, value_column: vacancy, labels: {team: team}}
      - {kpi: children_sw_caseload_average, value_column: caseload, labels: {team: team}}
`
	cfg, err := config.Parse([]byte(text), "carewatch.yml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg, &cfg.Collectors[0]
}

// rejectsNamingRows collects cc and wants the run rejected by the range
// check with every one of messages said.
func rejectsNamingRows(t *testing.T, cfg *config.Config, cc *config.CollectorConfig, sourceType string, messages ...string) {
	t.Helper()
	src, err := newSourceFor(cfg, cc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	obs, _, err := collector.NewChecks(cc, sourceType).Collect(ctx, src, kpi.RunInfo{Collector: cc.Name, At: time.Now(), Location: cfg.Location}, nil)
	if err == nil {
		t.Fatalf("a ratio of 1.7 and a caseload of -5 were accepted: %d observations", len(obs))
	}
	failures := collector.CheckFailures(err)
	if len(failures) != 2 || failures[0].Check != "range" || failures[1].Check != "range" {
		t.Errorf("failures %+v, want the range check twice", failures)
	}
	for _, want := range messages {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the rejection does not say\n  %s\nit says\n  %v", want, err)
		}
	}
}

func TestImpossibleValuesFromAQueryAreRejectedNamingTheResultRow(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `
		CREATE TABLE workforce (team text, vacant numeric, posts numeric, cases integer, fte numeric, snapshot date);
		INSERT INTO workforce VALUES
			('North', 2, 20, 180, 12, '2026-03-31'),
			('South', 17, 10, 150, 10, '2026-03-31'),
			('West', 1, 10, -60, 12, '2026-03-31');`); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAREWATCH_TEST_WORKFORCE_DSN", dsn)
	cfg, cc := impossibleConfig(t, `sources: [{name: data, type: postgres, dsn_env: CAREWATCH_TEST_WORKFORCE_DSN}]`, `
    query: |
      SELECT team, vacant / posts AS vacancy, cases / fte AS caseload, snapshot
        FROM workforce ORDER BY team`)
	rejectsNamingRows(t, cfg, cc, config.SourcePostgres,
		`collector "workforce": check range: row 2, KPI children_sw_vacancy_ratio, series {team="South"}, period 2026-03-31: value 1.7 is above the maximum 1 (a ratio lies within 0 and 1)`,
		`collector "workforce": check range: row 3, KPI children_sw_caseload_average, series {team="West"}, period 2026-03-31: value -5 is below the minimum 0`)
}

func TestImpossibleValuesFromAFileAreRejectedNamingTheFileAndRow(t *testing.T) {
	dir := t.TempDir()
	csv := "Workforce at 31 March 2026\n" +
		"team,vacancy,caseload,snapshot\n" +
		"North,0.1,15,31/03/2026\n" +
		"South,1.7,15,31/03/2026\n" +
		"West,0.1,-5,31/03/2026\n"
	if err := os.WriteFile(filepath.Join(dir, "workforce.csv"), []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	source := `sources: [{name: data, type: file, directory: ` + strconv.Quote(dir) + `}]`
	t.Run("as read", func(t *testing.T) {
		cfg, cc := impossibleConfig(t, source, `    file: {path: workforce.csv, header_row: 2}`)
		rejectsNamingRows(t, cfg, cc, config.SourceFile,
			`collector "workforce": check range: file "workforce.csv", row 4, KPI children_sw_vacancy_ratio, series {team="South"}, period 2026-03-31: value 1.7 is above the maximum 1`,
			`collector "workforce": check range: file "workforce.csv", row 5, KPI children_sw_caseload_average, series {team="West"}, period 2026-03-31: value -5 is below the minimum 0`)
	})
	t.Run("through a query", func(t *testing.T) {
		cfg, cc := impossibleConfig(t, source, `    file: {path: workforce.csv, header_row: 2}
    query: SELECT * FROM workforce ORDER BY team DESC`)
		rejectsNamingRows(t, cfg, cc, config.SourceFile,
			`collector "workforce": check range: the query's result, row 2, KPI children_sw_vacancy_ratio, series {team="South"}, period 2026-03-31: value 1.7 is above the maximum 1`,
			`collector "workforce": check range: the query's result, row 1, KPI children_sw_caseload_average, series {team="West"}, period 2026-03-31: value -5 is below the minimum 0`)
	})
}

// A real workbook cut short, wherever the cut falls, is refused by the
// truncation check as a cut CSV is, not only by the zip reader; the whole
// workbook passes.
func TestAWorkbookCutShortIsRejectedByTheTruncationCheck(t *testing.T) {
	const name = "establishment_2025-03-31.xlsx"
	whole, err := os.ReadFile(filepath.Join(hrData, name))
	if err != nil {
		t.Fatal(err)
	}
	for what, size := range map[string]int{
		"whole":                   len(whole),
		"cut in half":             len(whole) / 2,
		"missing its last byte":   len(whole) - 1,
		"missing its last 30":     len(whole) - 30,
		"cut after its first 100": 100,
	} {
		t.Run(what, func(t *testing.T) {
			cfg, err := config.Load(hrExample)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, name), whole[:size], 0o644); err != nil {
				t.Fatal(err)
			}
			cc := &cfg.Collectors[0]
			cfg.SourceByName(cc.Source).Directory = dir
			src, err := newSourceFor(cfg, cc)
			if err != nil {
				t.Fatal(err)
			}
			obs, _, err := collector.NewChecks(cc, config.SourceFile).Collect(t.Context(), src, kpi.RunInfo{Collector: cc.Name, At: time.Now(), Location: cfg.Location}, nil)
			if size == len(whole) {
				if err != nil || len(obs) == 0 {
					t.Fatalf("the whole workbook: %d observations, %v", len(obs), err)
				}
				return
			}
			failures := collector.CheckFailures(err)
			if len(failures) != 1 || failures[0].Check != "truncation" || failures[0].Action != kpi.Reject {
				t.Fatalf("err %v, failures %+v: want the truncation check rejecting", err, failures)
			}
			want := fmt.Sprintf(`collector %q: check truncation: file %q: the workbook (%d bytes) does not end with the directory that closes every XLSX file (a zip archive), so it looks cut short`, cc.Name, name, size)
			if failures[0].Message != want {
				t.Errorf("the failure says\n  %s\nwant\n  %s", failures[0].Message, want)
			}
			if !collector.IsPermanent(err) {
				t.Error("a rejected run would be retried")
			}
		})
	}
}
