package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	dto "github.com/prometheus/client_model/go"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

const (
	dfeConfig = "../../examples/dfe/benchmarking.yml"
	dfeData   = "../../examples/dfe/data"
)

// dfePublished is the DfE file's 2025 figures by ONS code (or region or
// country code), read with encoding/csv alone: the test's own account.
func dfePublished(t *testing.T) map[string]map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dfeData, "csww_indicators_2017_to_2025.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := recs[0]
	header[0] = strings.TrimPrefix(header[0], "\ufeff")
	out := map[string]map[string]string{}
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range header {
			m[h] = r[i]
		}
		if m["time_period"] != "2025" {
			continue
		}
		code := m["new_la_code"]
		switch m["geographic_level"] {
		case "National":
			code = m["country_code"]
		case "Regional":
			code = m["region_code"]
		}
		out[code] = m
	}
	return out
}

// sample finds a KPI sample by its la_code, or reports it absent.
func sample(fams map[string]*dto.MetricFamily, metric, laCode string) (float64, map[string]string, bool) {
	for _, m := range fams[metric].GetMetric() {
		if ls := labelsOf(m); ls["la_code"] == laCode {
			return sampleValue(m), ls, true
		}
	}
	return 0, nil, false
}

func collectorSucceeded(name string) func(map[string]*dto.MetricFamily) bool {
	return func(f map[string]*dto.MetricFamily) bool {
		return collectorValue(f, "carewatch_collector_last_run_success", name) == 1
	}
}

// The DfE example for Croydon, run by the daemon: /metrics shows Croydon's
// 2025 vacancy 0.192, agency 0.189 and caseload 19.1, its neighbours' and
// England's 2025 figures as published, with the period 30 September 2025;
// PostgreSQL holds every year from 2017 to 2025 for every one of them.
func TestDfEBenchmarkThroughTheDaemonIntoPostgreSQLAndMetrics(t *testing.T) {
	storeDSN := pgtest.NewDatabase(t)
	t.Setenv(demo.StoreDSNEnv, storeDSN)
	in := startDaemon(t, dfeConfig)
	fams := in.waitFor(t, "the DfE collector to succeed", 60*time.Second, collectorSucceeded("dfe_workforce"))

	for metric, want := range map[string]float64{
		"carewatch_children_sw_dfe_vacancy_ratio":    0.192,
		"carewatch_children_sw_dfe_agency_ratio":     0.189,
		"carewatch_children_sw_dfe_caseload_average": 19.1,
	} {
		v, ls, ok := sample(fams, metric, "E09000008")
		if !ok || v != want || ls["scope"] != "council" || ls["la_name"] != "Croydon" {
			t.Errorf("%s{la_code=E09000008} = %v %v (present %t), want %v for Croydon as council", metric, v, ls, ok, want)
		}
	}

	published := dfePublished(t)
	neighbours := map[string]bool{}
	columns := map[string]struct {
		column string
		scale  float64
	}{
		"carewatch_children_sw_dfe_vacancy_ratio":    {"vacancy_rate_fte", 100},
		"carewatch_children_sw_dfe_agency_ratio":     {"agency_rate_fte", 100},
		"carewatch_children_sw_dfe_caseload_average": {"caseload_fte", 1},
	}
	for metric, c := range columns {
		for _, m := range fams[metric].GetMetric() {
			ls := labelsOf(m)
			if ls["scope"] == "stat_neighbour" {
				neighbours[ls["la_code"]] = true
			}
			row, ok := published[ls["la_code"]]
			if !ok {
				t.Errorf("%s: %v is not in the file", metric, ls)
				continue
			}
			want, err := strconv.ParseFloat(row[c.column], 64)
			if err != nil {
				t.Errorf("%s %v is exported, but the file has %q", metric, ls, row[c.column])
				continue
			}
			if got := sampleValue(m); math.Abs(got-want/c.scale) > 1e-12 {
				t.Errorf("%s %v = %v, the file says %v", metric, ls, got, want/c.scale)
			}
		}
		if v, _, ok := sample(fams, metric, "E92000001"); !ok || v == 0 {
			t.Errorf("%s has no England value", metric)
		}
	}
	if len(neighbours) != 10 {
		t.Errorf("%d statistical neighbours exported, want 10: %v", len(neighbours), neighbours)
	}
	reporting := time.Date(2025, 9, 30, 0, 0, 0, 0, mustLondon(t)).Unix()
	for _, m := range fams["carewatch_kpi_period_timestamp_seconds"].GetMetric() {
		if v := sampleValue(m); int64(v) != reporting {
			t.Errorf("%v: period %v, want 30 September 2025", labelsOf(m), time.Unix(int64(v), 0))
		}
	}

	db := sqlx.MustOpen("postgres", storeDSN)
	defer db.Close()
	var rows []struct {
		KPI     string    `db:"kpi"`
		LACode  string    `db:"la_code"`
		Scope   string    `db:"scope"`
		Periods int       `db:"periods"`
		First   time.Time `db:"first"`
		Last    time.Time `db:"last"`
	}
	if err := db.SelectContext(t.Context(), &rows, `
		SELECT s.kpi, s.labels->>'la_code' AS la_code, s.labels->>'scope' AS scope,
		       count(DISTINCT o.period) AS periods, min(o.period) AS first, max(o.period) AS last
		  FROM observations o JOIN series s ON s.id = o.series_id
		 GROUP BY 1, 2, 3`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5*13 {
		t.Errorf("%d series stored, want 65 (5 KPIs for Croydon, 10 neighbours, Outer London, England)", len(rows))
	}
	scopes := map[string]int{}
	for _, r := range rows {
		scopes[r.Scope]++
		first, last := r.First.In(mustLondon(t)), r.Last.In(mustLondon(t))
		if r.Periods != 9 || first.Format("2006-01-02") != "2017-09-30" || last.Format("2006-01-02") != "2025-09-30" {
			t.Errorf("%s %s: %d periods from %s to %s, want every year 2017 to 2025", r.KPI, r.LACode, r.Periods, first, last)
		}
	}
	if fmt.Sprint(scopes) != "map[council:5 england:5 region:5 stat_neighbour:50]" {
		t.Errorf("series by scope %v", scopes)
	}

	_, body := in.scrape(t)
	promtoolCheckMetrics(t, body)
}

// dfeConfigFor writes the DfE example for another council, its data folder
// given absolutely.
func dfeConfigFor(t *testing.T, council string) string {
	t.Helper()
	b, err := os.ReadFile(dfeConfig)
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dfeData)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "directory: data ", "directory: "+abs+" ", 1)
	s = strings.Replace(s, "council: E09000008 ", "council: "+council+" ", 1)
	if s == string(b) || !strings.Contains(s, abs) || !strings.Contains(s, "council: "+council) {
		t.Fatal("the example's directory or council line changed")
	}
	return writeConfig(t, s)
}

// Westminster's and Kensington and Chelsea's 2025 figures, published as x,
// are stored as missing (NULL), not 0: /metrics shows no value for them and
// their status is unknown, while their 2024 values are kept.
func TestSuppressedDfEFiguresAreStoredAsMissingNotZero(t *testing.T) {
	storeDSN := pgtest.NewDatabase(t)
	t.Setenv(demo.StoreDSNEnv, storeDSN)
	in := startDaemon(t, dfeConfigFor(t, "E09000033")) // Westminster
	fams := in.waitFor(t, "the DfE collector to succeed", 60*time.Second, collectorSucceeded("dfe_workforce"))

	db := sqlx.MustOpen("postgres", storeDSN)
	defer db.Close()
	for _, code := range []string{"E09000033", "E09000020"} { // Westminster, Kensington and Chelsea
		var nulls, zeros, y2024 int
		q := `SELECT count(*) FILTER (WHERE o.value IS NULL AND o.period >= '2025-09-01'),
		             count(*) FILTER (WHERE o.value = 0 AND o.period >= '2025-09-01'),
		             count(*) FILTER (WHERE o.value IS NOT NULL AND o.period < '2025-01-01' AND o.period >= '2024-09-01')
		        FROM observations o JOIN series s ON s.id = o.series_id
		       WHERE s.labels->>'la_code' = $1`
		if err := db.QueryRowContext(t.Context(), q, code).Scan(&nulls, &zeros, &y2024); err != nil {
			t.Fatal(err)
		}
		if nulls != 5 || zeros != 0 {
			t.Errorf("%s 2025: %d missing and %d zero values stored, want 5 missing and none zero", code, nulls, zeros)
		}
		if y2024 < 3 {
			t.Errorf("%s 2024: only %d values", code, y2024)
		}
		if _, _, ok := sample(fams, "carewatch_children_sw_dfe_vacancy_ratio", code); ok {
			t.Errorf("%s: a 2025 vacancy value is exported although DfE published x", code)
		}
		status := math.NaN()
		for _, m := range fams["carewatch_kpi_status"].GetMetric() {
			if ls := labelsOf(m); ls["kpi"] == "children_sw_dfe_vacancy_ratio" && ls["la_code"] == code {
				status = sampleValue(m)
			}
		}
		if status != -1 {
			t.Errorf("%s: status %v, want -1 (unknown: the latest value is missing)", code, status)
		}
	}
}

// sourcesConfig has a file collector and an HTTP collector, each with no
// retries, run at start.
const sourcesConfig = `
global: {default_retries: 0}
kpis:
  - {name: children_sw_vacancy_ratio, help: Vacancy rate by team., direction: lower_is_better, labels: [team], thresholds: {amber: 0.12, red: 0.2}}
  - {name: ilacs_grade, help: Latest inspection grade (4 outstanding to 1 inadequate)., direction: higher_is_better, labels: [la_code]}
sources:
  - {name: hr, type: file, directory: DIR}
  - {name: api, type: http, base_url: URL, http_config: {authorization: {credentials_file: TOKEN}}}
collectors:
  - name: hr_file
    source: hr
    schedule: "@every 6h"
    run_on_start: true
    file: {path: establishment.csv}
    period_column: as_at
    metrics:
      - {kpi: children_sw_vacancy_ratio, value_expression: vacant / (vacant + in_post), labels: {team: team}}
  - name: inspections
    source: api
    schedule: "@every 6h"
    run_on_start: true
    http: {url: /grades, rows: "$.data[*]"}
    period_column: published
    metrics:
      - {kpi: ilacs_grade, value_column: grade, value_map: {Outstanding: 4, Good: 3, Requires improvement: 2, Inadequate: 1}, labels: {la_code: la_code}}
`

// A bad file and a bad answer each fail only their own collector's run,
// with the file or URL, the row and the cause in the log and in the run's
// record, and the last good values stay stored and served.
func TestBadFilesAndAnswersKeepTheLastGoodValues(t *testing.T) {
	storeDSN := pgtest.NewDatabase(t)
	t.Setenv(demo.StoreDSNEnv, storeDSN)
	dir := t.TempDir()
	good := "team,vacant,in_post,as_at\r\nnorth,2,8,31/03/2025\r\nsouth,1,9,31/03/2025\r\n"
	csvFile := filepath.Join(dir, "establishment.csv")
	if err := os.WriteFile(csvFile, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	answer := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"data": [{"la_code": "E09000008", "grade": "Good", "published": "2025-03-31"}]}`)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		a := answer
		mu.Unlock()
		a(w, r)
	}))
	defer srv.Close()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t0ken"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := writeConfig(t, strings.NewReplacer("DIR", dir, "URL", srv.URL, "TOKEN", token).Replace(sourcesConfig))
	in := startDaemon(t, cfgFile)
	before := in.waitFor(t, "both collectors to succeed", 60*time.Second, func(f map[string]*dto.MetricFamily) bool {
		return collectorSucceeded("hr_file")(f) && collectorSucceeded("inspections")(f)
	})
	values := func(f map[string]*dto.MetricFamily) string {
		var parts []string
		for _, metric := range []string{"carewatch_children_sw_vacancy_ratio", "carewatch_ilacs_grade", "carewatch_kpi_period_timestamp_seconds"} {
			for _, m := range f[metric].GetMetric() {
				parts = append(parts, fmt.Sprintf("%s %v=%v", metric, labelsOf(m), sampleValue(m)))
			}
		}
		return strings.Join(parts, "\n")
	}
	want := values(before)
	if !strings.Contains(want, "carewatch_children_sw_vacancy_ratio map[team:north]=0.2") || !strings.Contains(want, "carewatch_ilacs_grade map[la_code:E09000008]=3") {
		t.Fatalf("the good values are not served:\n%s", want)
	}
	db := sqlx.MustOpen("postgres", storeDSN)
	defer db.Close()
	stored := count(t, db, "SELECT count(*) FROM observations")

	for _, tc := range []struct {
		name, collector string
		breakIt         func()
		want            string
	}{
		{"a file cut short", "hr_file", func() {
			if err := os.WriteFile(csvFile, []byte(good[:len(good)-14]), 0o644); err != nil {
				t.Fatal(err)
			}
		}, `file "establishment.csv": row 3 has 3 fields, but the header (row 1) has 4: is the file cut short?`},
		{"a renamed column", "hr_file", func() {
			if err := os.WriteFile(csvFile, []byte(strings.Replace(good, "in_post", "inpost", 1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}, `file "establishment.csv" has no column "in_post" (named by metrics[0].value_expression)`},
		{"a file that is gone", "hr_file", func() {
			if err := os.Remove(csvFile); err != nil {
				t.Fatal(err)
			}
		}, `file "establishment.csv": there is no such file in `},
		{"HTTP 500", "inspections", func() {
			mu.Lock()
			defer mu.Unlock()
			answer = func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "upstream down", http.StatusInternalServerError)
			}
		}, `GET ` + srv.URL + `/grades: HTTP 500 Internal Server Error: "upstream down"`},
		{"HTML instead of JSON", "inspections", func() {
			mu.Lock()
			defer mu.Unlock()
			answer = func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				io.WriteString(w, "<html><body>Sign in</body></html>")
			}
		}, `GET ` + srv.URL + `/grades answered text/html, not JSON (a login, error or maintenance page?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.breakIt()
			err := in.d.runNow(t.Context(), tc.collector)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run error = %v, want it to say %s", err, tc.want)
			}
			after, _ := in.scrape(t)
			if got := collectorValue(after, "carewatch_collector_last_run_success", tc.collector); got != 0 {
				t.Errorf("last run success %v, want 0", got)
			}
			if got := values(after); got != want {
				t.Errorf("served values changed after the failed run:\n%s\nwant:\n%s", got, want)
			}
			if n := count(t, db, "SELECT count(*) FROM observations"); n != stored {
				t.Errorf("%d observations stored after the failed run, %d before", n, stored)
			}
			var recorded string
			if err := db.GetContext(t.Context(), &recorded, `SELECT error FROM runs WHERE collector = $1 AND status = 'failed' ORDER BY id DESC LIMIT 1`, tc.collector); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(recorded, tc.want) {
				t.Errorf("the run's record says %q, want %s", recorded, tc.want)
			}
			if !strings.Contains(in.logs.String(), "collector="+tc.collector) {
				t.Error("the log does not name the collector")
			}
		})
	}
}
