package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

func TestLoadGoodConfigBuildsTheCatalogueWithDefaults(t *testing.T) {
	cfg, err := config.Load("testdata/good.yml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Location.String() != "Europe/London" {
		t.Errorf("location = %v", cfg.Location)
	}
	if cfg.Store.DSNEnv != config.DefaultStoreDSNEnv {
		t.Errorf("store dsn_env defaulted to %q", cfg.Store.DSNEnv)
	}
	k := cfg.Catalogue["children_sw_caseload_average"]
	if k == nil || k.Direction != kpi.LowerIsBetter || k.MaxAge != 36*time.Hour {
		t.Fatalf("caseload KPI = %+v", k)
	}
	if got := k.ThresholdsFor([]string{"children", "all"}); got.Amber.Value != 15 || got.Red.Value != 18 {
		t.Errorf("service-level override not applied: %+v", got)
	}
	if cfg.Catalogue["children_open_cases"].HasThresholds() {
		t.Error("a KPI without thresholds must have no status")
	}
	c0, c1 := &cfg.Collectors[0], &cfg.Collectors[1]
	if cfg.EffectiveTimeout(c0) != time.Minute || cfg.EffectiveTimeout(c1) != time.Duration(config.DefaultTimeout) {
		t.Errorf("timeouts %v %v", cfg.EffectiveTimeout(c0), cfg.EffectiveTimeout(c1))
	}
	if cfg.EffectiveRetries(c0) != 0 || cfg.EffectiveRetries(c1) != config.DefaultRetries {
		t.Errorf("retries %d %d", cfg.EffectiveRetries(c0), cfg.EffectiveRetries(c1))
	}
	// 06:00 on weekdays in Europe/London, across the October clock change.
	from := time.Date(2026, 10, 23, 12, 0, 0, 0, cfg.Location) // a Friday
	next := c1.ParsedSchedule.Next(from)
	if want := time.Date(2026, 10, 26, 6, 0, 0, 0, cfg.Location); !next.Equal(want) {
		t.Errorf("next run %v, want %v", next, want)
	}
}

// Each bad file is pinned to its exact messages, so an operator always sees
// the file, the line, the path and the rule.
func TestBadConfigsAreRefusedWithMessagesNamingThePath(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"unknown_key.yml", []string{
			`testdata/unknown_key.yml:5: kpis[0]: unknown key "treshold" (is it misspelt or in the wrong place?)`,
		}},
		{"wrong_type.yml", []string{
			`testdata/wrong_type.yml:5: kpis[0].thresholds.amber: "lots" is not a valid number`,
		}},
		{"bad_value_beside_good.yml", []string{
			`testdata/bad_value_beside_good.yml:5: kpis[0].thresholds.red: "lots" is not a valid number`,
			`testdata/bad_value_beside_good.yml:9: kpis[1].thresholds.amber: "many" is not a valid number`,
		}},
		{"bad_duration.yml", []string{
			`testdata/bad_duration.yml:5: kpis[0].max_age: "36 hours" is not a valid duration (e.g. 30s, 5m, 36h, 7d)`,
			`testdata/bad_duration.yml:11: collectors[0].timeout: "soon" is not a valid duration (e.g. 30s, 5m, 36h, 7d)`,
		}},
		{"amber_equals_red.yml", []string{
			`testdata/amber_equals_red.yml:5: kpis[0].thresholds.red: red and amber are both 20, so no value could ever be amber: set amber on the good side of red, or leave amber out`,
		}},
		{"own_series.yml", []string{
			`testdata/own_series.yml:6: kpis[0].own_series: label "area" is not one of the KPI's labels [la_code scope]`,
			`testdata/own_series.yml:11: kpis[1].own_series.scope: must not be empty: it is the value of the council's own series`,
		}},
		{"trajectory.yml", []string{
			`testdata/trajectory.yml:9: kpis[0].trajectory[1].from: 2026-01-01 is not after the previous step's date 2026-04-01: list the steps in date order`,
			`testdata/trajectory.yml:11: kpis[0].trajectory[2].from: "1 April 2027" is not a date written YYYY-MM-DD`,
			`testdata/trajectory.yml:12: kpis[0].trajectory[2].thresholds.red: red 16 is below amber 17, but caseload is lower_is_better: red must be the higher boundary`,
		}},
		{"expect.yml", []string{
			`testdata/expect.yml:7: kpis[0].expect.range.max: max 0.2 is below min 0.5`,
			`testdata/expect.yml:7: kpis[0].expect.range.on_fail: "ignore" is not one of reject, warn, off`,
			`testdata/expect.yml:8: kpis[0].expect.change: give max (in the KPI's unit), max_relative (a share of the previous value) or both`,
			`testdata/expect.yml:9: kpis[0].expect.labels.require: label "ward" is not one of the KPI's labels [team]`,
			`testdata/expect.yml:18: collectors[0].expect.rows.max: max 2 is below min 5`,
			`testdata/expect.yml:18: collectors[0].expect.rows.max_drop: 30 must be a share above 0 and at most 1 (0.3: a run may carry 30% fewer observations than the last good one)`,
			`testdata/expect.yml:19: collectors[0].expect.truncation: is for file sources, and source "cms" is a postgres source`,
		}},
		{"bad_cron.yml", []string{
			`testdata/bad_cron.yml:10: collectors[0].schedule: "61 * * * *" is not a valid schedule: end of range (61) above maximum (59): 61`,
		}},
		{"unknown_kpi.yml", []string{
			`testdata/unknown_kpi.yml:13: collectors[0].metrics[0].kpi: KPI "y" is not defined under kpis`,
		}},
		{"duplicate_names.yml", []string{
			`testdata/duplicate_names.yml:5: kpis[1].name: duplicate KPI name "x" (first defined at kpis[0])`,
			`testdata/duplicate_names.yml:17: collectors[1].name: duplicate collector name "c" (first defined at collectors[0])`,
		}},
		{"bad_names.yml", []string{
			`testdata/bad_names.yml:5: kpis[0].labels[1]: label "kpi" is reserved for carewatch's own series`,
			`testdata/bad_names.yml:6: kpis[1].name: "kpi_contacts" must not start with kpi_: names starting with "kpi_" are reserved for carewatch's own metrics`,
		}},
		{"wrong_side.yml", []string{
			`testdata/wrong_side.yml:5: kpis[0].thresholds.red: red 18 is below amber 22, but caseload is lower_is_better: red must be the higher boundary`,
			`testdata/wrong_side.yml:13: kpis[1].overrides[0].thresholds.red: red 0.95 is above amber 0.9, but within_45wd_ratio is higher_is_better: red must be the lower boundary`,
		}},
		{"percent_as_ratio.yml", []string{
			`testdata/percent_as_ratio.yml:5: kpis[0].thresholds.amber: 12 is outside 0–1, but vacancy_ratio is a ratio (write 12% as 0.12)`,
			`testdata/percent_as_ratio.yml:5: kpis[0].thresholds.red: 20 is outside 0–1, but vacancy_ratio is a ratio (write 12% as 0.12)`,
		}},
		{"labels_mismatch.yml", []string{
			`testdata/labels_mismatch.yml:14: collectors[0].metrics[0]: KPI x's label "service" is given no value: map it to a column under labels or fix it under static_labels`,
			`testdata/labels_mismatch.yml:16: collectors[0].metrics[0].labels: label "ward" is not one of KPI x's labels [service team]`,
		}},
		{"static_label_too_long.yml", []string{
			`testdata/static_label_too_long.yml:16: collectors[0].metrics[0].static_labels.service: is 257 bytes long: a label value is at most 256`,
		}},
		{"missing_source.yml", []string{
			`testdata/missing_source.yml:4: kpis[0].direction: direction "sideways" is not one of lower_is_better, higher_is_better`,
			`testdata/missing_source.yml:6: sources[0].type: unknown source type "oracle": one of file, http, mariadb, mysql, postgres, sqlserver`,
			`testdata/missing_source.yml:9: collectors[0].source: source "hr" is not defined under sources`,
		}},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".yml")+" is refused", func(t *testing.T) {
			cfg, err := config.Load(filepath.Join("testdata", tc.file))
			if err == nil {
				t.Fatalf("Load accepted a bad config: %+v", cfg)
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("messages:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestEmptyAndMalformedFilesAreRefused(t *testing.T) {
	for name, text := range map[string]string{
		"empty":           "",
		"not yaml":        "kpis: [\n",
		"tab indentation": "kpis:\n\t- name: x\n",
	} {
		t.Run(name+" is refused", func(t *testing.T) {
			if _, err := config.Parse([]byte(text), "c.yml"); err == nil || !strings.HasPrefix(err.Error(), "c.yml:") {
				t.Errorf("err = %v, want a message starting with the file name", err)
			}
		})
	}
}

func TestDSNComesFromEnvironmentOrFileNeverFromTheText(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "dsn")
	if err := os.WriteFile(f, []byte("postgres://file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CW_TEST_DSN", "postgres://env")
	for _, tc := range []struct {
		name    string
		src     config.SourceConfig
		want    string
		wantErr string
	}{
		{"from the environment", config.SourceConfig{Name: "s", DSNEnv: "CW_TEST_DSN"}, "postgres://env", ""},
		{"from a file, trimmed", config.SourceConfig{Name: "s", DSNFile: f}, "postgres://file", ""},
		{"unset variable is an error", config.SourceConfig{Name: "s", DSNEnv: "CW_TEST_UNSET"}, "", `source "s": environment variable CW_TEST_UNSET is not set`},
		{"a connection string in dsn_env is refused without echoing it", config.SourceConfig{Name: "s", DSNEnv: "postgres://u:s3cr3t@db/x"}, "", `source "s": dsn_env must be the name of an environment variable`},
		{"missing file is an error", config.SourceConfig{Name: "s", DSNFile: filepath.Join(dir, "nope")}, "", `source "s": reading dsn_file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.src.DSN()
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("DSN() = %q, %v", got, err)
			}
		})
	}
}

func TestKPINamesThatWouldMakeBadMetricNamesAreRefused(t *testing.T) {
	for name, want := range map[string]string{
		"assessment_duration_median_working_days": `names the unit "days": use seconds`,
		"wait_ms":                          `names the unit "ms": use seconds`,
		"vacancy_percent":                  `names the unit "percent": use a 0-1 ratio ending in _ratio`,
		"children_referrals_total":         "must not end in _total",
		"kpi_status":                       "must not start with kpi_",
		"collector_runs":                   "must not start with collector_",
		"caseload_gauge":                   "must not name its metric type",
		"adults_assessment_waiting_people": "",
	} {
		t.Run(name, func(t *testing.T) {
			text := "kpis: [{name: " + name + ", help: h, direction: lower_is_better}]\n" +
				"sources: [{name: s, type: postgres, dsn_env: X}]\n" +
				"collectors: [{name: c, source: s, schedule: '@daily', query: q, metrics: [{kpi: " + name + ", value_column: v}]}]\n"
			_, err := config.Parse([]byte(text), "c.yml")
			if want == "" {
				if err != nil {
					t.Fatalf("refused a good name: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "kpis[0].name: \""+name+"\" "+want) {
				t.Fatalf("err = %v, want %q", err, want)
			}
		})
	}
}

func TestParseScheduleAcceptsDescriptorsAndRefusesInlineTimeZones(t *testing.T) {
	for spec, ok := range map[string]bool{
		"@daily": true, "@every 15m": true, "0 6 * * 1-5": true, "*/5 * * * *": true,
		"@every 10ms": false, "CRON_TZ=UTC 0 6 * * *": false, "0 6 * *": false, "@fortnightly": false,
	} {
		_, err := config.ParseSchedule(spec)
		if (err == nil) != ok {
			t.Errorf("ParseSchedule(%q) err = %v, want ok=%v", spec, err, ok)
		}
	}
}

// The shipped example configurations must always load.
func TestShippedExamplesAreValid(t *testing.T) {
	for _, f := range []string{"../examples/reference.yml", "../examples/demo/carewatch.yml", "../examples/dfe/benchmarking.yml", "../examples/dfe/long-format.yml", "../examples/hr/carewatch.yml"} {
		t.Run(f, func(t *testing.T) {
			if _, err := config.Load(f); err != nil {
				t.Fatalf("%v", err)
			}
		})
	}
}

func TestATrajectoryTightensTheTargetOnItsDateInTheConfiguredZone(t *testing.T) {
	text := strings.Replace(mustRead(t, "testdata/trajectory.yml"), `      - from: 2026-01-01
        thresholds: {amber: 17}
      - from: 1 April 2027
        thresholds: {red: 16}
`, "", 1)
	cfg, err := config.Parse([]byte(text), "trajectory.yml")
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Catalogue["caseload"]
	april := time.Date(2026, 4, 1, 0, 0, 0, 0, cfg.Location) // midnight in London, 23:00 UTC the day before
	if th := k.ThresholdsAt(nil, april.Add(-time.Second)); th.Amber.Value != 20 || th.Red.Value != 24 {
		t.Errorf("before 1 April: %+v", th)
	}
	if th := k.ThresholdsAt(nil, april); th.Amber.Value != 18 || th.Red.Value != 22 {
		t.Errorf("from 1 April: %+v", th)
	}
}

func mustRead(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The reference config states the naming rules that Load enforces: every
// reserved label name is listed there.
func TestReferenceConfigListsTheReservedLabels(t *testing.T) {
	b, err := os.ReadFile("../examples/reference.yml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, l := range kpi.ReservedLabels() {
		if !strings.Contains(text, " "+l+",") && !strings.Contains(text, " "+l+" (") {
			t.Errorf("examples/reference.yml does not list the reserved label %q", l)
		}
	}
	for _, suffix := range []string{"_total", "_count", "_sum", "_bucket", "_info", "_created", "_ratio", "percent"} {
		if !strings.Contains(text, suffix) {
			t.Errorf("examples/reference.yml does not say what %s means for a KPI name", suffix)
		}
	}
}

// A connection string written into dsn_env is refused when the config
// loads, naming the path and never repeating it: it holds a password.
func TestAConnectionStringInDSNEnvIsRefusedWithoutEchoingIt(t *testing.T) {
	f := filepath.Join(t.TempDir(), "carewatch.yml")
	text := `
store:
  dsn_env: "postgres://carewatch:s3cr3t-pw@db.example:5432/carewatch"
kpis:
  - {name: children_open_cases, help: Open cases., direction: lower_is_better, labels: [team]}
sources:
  - {name: cms, type: postgres, dsn_env: "host=db user=u password=an0ther-pw"}
collectors:
  - name: open_cases
    source: cms
    schedule: "@every 1h"
    query: SELECT team, open FROM open_cases
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]
`
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(f)
	if err == nil {
		t.Fatal("Load accepted connection strings as dsn_env")
	}
	for _, want := range []string{"store.dsn_env: must be the name of an environment variable", "sources[0].dsn_env: must be the name of an environment variable"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	for _, secret := range []string{"s3cr3t", "an0ther", "db.example"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error repeats %q:\n%v", secret, err)
		}
	}
}
