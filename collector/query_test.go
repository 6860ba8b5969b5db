package collector_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// query indents SQL as the collector's query key in fileCase.extra.
func query(sql string) string {
	return "    query: |\n      " + strings.ReplaceAll(strings.TrimSpace(sql), "\n", "\n      ")
}

// Person-level rows become counts and rates per team: suppressed and empty
// cells are NULL (left out of COUNT and SUM, never 0), a real 0 counts,
// numbers with thousands separators are numbers, and a division by zero is
// missing.
func TestQueryCountsAndDividesPersonLevelRows(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "people.csv", []byte("team,on_time,hours\r\n"+
		"north,1,\"1,200\"\r\n"+
		"north,0,300\r\n"+
		"north,x,100\r\n"+
		"north,,100\r\n"+
		"south,c,50\r\n"+
		"south,[x],50\r\n"))
	src, cfg := newFileSource(t, dir, fileCase{
		file: "{path: people.csv}",
		extra: query(`
SELECT team, SUM(on_time) / COUNT(on_time) AS vacant, SUM(hours) AS hours -- a comment; with a ;
FROM people GROUP BY team; -- the end`),
		metrics: "      - {kpi: vacancy_ratio, value_column: vacant, labels: {team: team}}\n" +
			"      - {kpi: caseload_average, value_column: hours, labels: {team: team}}",
	})
	obs, err := collectFile(t, src, cfg)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	got := values(obs)
	want := map[string]kpi.Value{
		"vacancy_ratio/north":    kpi.Known(0.5), // 1 of the 2 known; x and empty left out
		"caseload_average/north": kpi.Known(1700),
		"vacancy_ratio/south":    kpi.Missing, // nothing known: 0 / 0
		"caseload_average/south": kpi.Known(100),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

// Dates written either way compare and subtract as dates; codes with a
// leading zero stay text; the period comes from the query's result.
func TestQueryDatesCompareAndSubtract(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "referrals.csv", []byte("team,code,received,decided\n"+
		"north,007,01/03/2025,2025-03-11\n"+
		"north,007,28/02/2025,05/03/2025\n"+
		"south,010,31/03/2025,01/04/2025\n"))
	src, cfg := newFileSource(t, dir, fileCase{
		file: "{path: referrals.csv}",
		extra: query(`
SELECT team || '-' || code AS team, MAX(decided) AS period,
       AVG(julianday(decided) - julianday(received)) AS vacant
FROM referrals WHERE received >= '2025-02-01' GROUP BY team, code`) + "\n    period_column: period",
		metrics: "      - {kpi: caseload_average, value_column: vacant, labels: {team: team}}",
	})
	obs, err := collectFile(t, src, cfg)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	got := values(obs)
	want := map[string]kpi.Value{"caseload_average/north-007": kpi.Known(7.5), "caseload_average/south-010": kpi.Known(1)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, o := range obs {
		wantDay := map[string]time.Time{"north-007": time.Date(2025, 3, 11, 0, 0, 0, 0, cfg.Location), "south-010": time.Date(2025, 4, 1, 0, 0, 0, 0, cfg.Location)}[o.Labels[0]]
		if !o.Period.Equal(wantDay) {
			t.Errorf("%s: period %s, want %s", o.Labels[0], o.Period, wantDay)
		}
	}
}

// Each file of a glob is a table named after the file, and so is each
// named sheet of a workbook: a query joins them.
func TestQueryJoinsTheFilesOfAGlobAndTheSheetsOfAWorkbook(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "return/Episodes 2025.csv", []byte("child,team_code\n1,N\n2,N\n3,S\n"))
	writeFile(t, dir, "return/teams.csv", []byte("team_code,team\nN,north\nS,south\n"))
	src, cfg := newFileSource(t, dir, fileCase{
		file: "{glob: \"return/*.csv\", select: all}",
		extra: query(`
SELECT t.team, COUNT(*) AS vacant FROM episodes_2025 e JOIN teams t USING (team_code) GROUP BY t.team`),
	})
	obs, err := collectFile(t, src, cfg)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if got := fmt.Sprint(values(obs)); got != fmt.Sprint(map[string]kpi.Value{"vacancy_ratio/north": kpi.Known(2), "vacancy_ratio/south": kpi.Known(1)}) {
		t.Errorf("glob: got %s", got)
	}

	wb := excelize.NewFile()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(wb.SetSheetName("Sheet1", "List 1"))
	_, err = wb.NewSheet("Team lookup")
	must(err)
	must(wb.SetSheetRow("List 1", "A1", &[]any{"child", "team_code", "started"}))
	must(wb.SetSheetRow("List 1", "A2", &[]any{1, "N", 45000}))
	must(wb.SetSheetRow("List 1", "A3", &[]any{2, "S", 45001}))
	must(wb.SetSheetRow("List 1", "A4", &[]any{3, "S", 45002}))
	style, err := wb.NewStyle(&excelize.Style{NumFmt: 14})
	must(err)
	must(wb.SetCellStyle("List 1", "C2", "C4", style))
	must(wb.SetSheetRow("Team lookup", "A1", &[]any{"team_code", "team"}))
	must(wb.SetSheetRow("Team lookup", "A2", &[]any{"N", "north"}))
	must(wb.SetSheetRow("Team lookup", "A3", &[]any{"S", "south"}))
	buf, err := wb.WriteToBuffer()
	must(err)
	writeFile(t, dir, "annex.xlsx", buf.Bytes())
	src, cfg = newFileSource(t, dir, fileCase{
		file: "{path: annex.xlsx, sheets: [List 1, Team lookup]}",
		extra: query(`
SELECT team, COUNT(*) AS vacant FROM list_1 JOIN team_lookup USING (team_code)
WHERE started > '2023-03-15' GROUP BY team`),
	})
	obs, err = collectFile(t, src, cfg)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	// Serial 45000 is 15 March 2023: only the later dates pass.
	if got := fmt.Sprint(values(obs)); got != fmt.Sprint(map[string]kpi.Value{"vacancy_ratio/south": kpi.Known(2)}) {
		t.Errorf("workbook: got %s", got)
	}
}

// file.table puts every file of a glob into one table.
func TestQueryTableGathersTheFilesOfAGlob(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "hr-2025-01.csv", []byte("team,vacant\nnorth,1\n"))
	writeFile(t, dir, "hr-2025-02.csv", []byte("team,vacant\nnorth,3\n"))
	src, cfg := newFileSource(t, dir, fileCase{
		file:  "{glob: \"hr-*.csv\", select: all, table: hr, name_pattern: 'hr-(?P<month>\\d{4}-\\d{2})'}",
		extra: query(`SELECT team, SUM(vacant) AS vacant, COUNT(DISTINCT month) AS months FROM hr GROUP BY team`),
		metrics: "      - {kpi: vacancy_ratio, value_column: vacant, labels: {team: team}}\n" +
			"      - {kpi: caseload_average, value_column: months, labels: {team: team}}",
	})
	obs, err := collectFile(t, src, cfg)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if got := fmt.Sprint(values(obs)); got != fmt.Sprint(map[string]kpi.Value{"caseload_average/north": kpi.Known(2), "vacancy_ratio/north": kpi.Known(4)}) {
		t.Errorf("got %s", got)
	}

	writeFile(t, dir, "hr-2025-03.csv", []byte("team,vacancies\nnorth,3\n"))
	_, err = collectFile(t, src, cfg)
	if err == nil || !collector.IsPermanent(err) || !strings.Contains(err.Error(), `file "hr-2025-03.csv" goes into table hr after file "hr-2025-01.csv", but its columns differ`) {
		t.Errorf("a file with other columns: %v", err)
	}
}

// A query that names a column or table the file lacks fails its run, naming
// the collector, the engine's message and the tables' columns; so does SQL
// that does not parse, and SQL that would write.
func TestQueryErrorsNameCollectorTableAndColumn(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "people.csv", []byte("team,on_time\nnorth,1\n"))
	for _, c := range []struct{ name, sql, want string }{
		{"missing column", `SELECT team, SUM(late) AS vacant FROM people GROUP BY team`,
			`collector "hr": source "hr": query: no such column: late; table people (from file "people.csv") has columns "team", "on_time"`},
		{"double-quoted missing column", `SELECT team, "late" AS vacant FROM people`,
			`query: no such column: "late"`},
		{"missing table", `SELECT team, on_time AS vacant FROM staff`,
			`query: no such table: staff; table people (from file "people.csv") has columns "team", "on_time"`},
		{"syntax", `SELEC team FROM people`, `query: near "SELEC": syntax error`},
		{"write", `DELETE FROM people RETURNING team, on_time AS vacant`, `query: `},
		{"attach", `ATTACH DATABASE 'other.db' AS other`, `query: `},
		{"pragma", `PRAGMA query_only = 0`, `query: `},
		{"two statements", `SELECT team, on_time AS vacant FROM people; SELECT 1 AS team, 2 AS vacant`,
			`query: give one statement: there is more after the ; at byte 42 ("SELECT 1 AS team, 2 AS vacant")`},
		{"column the mapping needs", `SELECT team FROM people`, `collector "hr": the query's result has no column "vacant"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, cfg := newFileSource(t, dir, fileCase{file: "{path: people.csv}", extra: query(c.sql)})
			obs, err := collectFile(t, src, cfg)
			if err == nil {
				t.Fatalf("no error; observations %v", obs)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `collector "hr"`) {
				t.Errorf("error %q\nwant it to contain %q", err, c.want)
			}
			if !collector.IsPermanent(err) {
				t.Errorf("error %q is not permanent: retrying cannot mend it", err)
			}
		})
	}
}

// A query still running at the run's deadline is interrupted.
func TestQueryIsInterruptedAtTheRunsDeadline(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "people.csv", []byte("team,on_time\nnorth,1\n"))
	src, cfg := newFileSource(t, dir, fileCase{file: "{path: people.csv}", extra: query(`
WITH RECURSIVE forever(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM forever)
SELECT 'north' AS team, COUNT(*) AS vacant FROM forever`)})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := src.Collect(ctx, kpi.RunInfo{Collector: "hr", At: time.Now(), Location: cfg.Location})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the deadline", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the query ran %s past a 300ms deadline", took)
	}
	if !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("error %q does not say the query was interrupted", err)
	}
}

// An HTTP answer is the table response.
func TestQueryOverAnHTTPAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":[{"team":"north","open":3},{"team":"north","open":null},{"team":"south","open":"x"},{"team":"south","open":0}]}`))
	}))
	defer srv.Close()
	text := `
kpis:
  - {name: caseload_average, help: h, direction: lower_is_better, labels: [team]}
sources:
  - {name: api, type: http, base_url: "` + srv.URL + `"}
collectors:
  - name: api
    source: api
    schedule: "@daily"
    http: {url: /cases, rows: "$.data[*]"}
    query: SELECT team, SUM(open) AS open, COUNT(open) AS known FROM response GROUP BY team
    metrics:
      - {kpi: caseload_average, value_column: open, labels: {team: team}}
`
	cfg, err := config.Parse([]byte(text), filepath.Join(t.TempDir(), "c.yml"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := newSourceFor(cfg, &cfg.Collectors[0])
	if err != nil {
		t.Fatal(err)
	}
	obs, err := src.Collect(t.Context(), kpi.RunInfo{Collector: "api", At: time.Now(), Location: cfg.Location})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(values(obs)); got != fmt.Sprint(map[string]kpi.Value{"caseload_average/north": kpi.Known(3), "caseload_average/south": kpi.Known(0)}) {
		t.Errorf("got %s", got)
	}
}

// What must be true: one collector over a long-format DfE file gives a ratio
// between two of its rows for England, every region and every council, in
// every year of the file, with suppressed figures missing and real zeros
// kept; the ratios agree with the ones DfE publishes in its wide file.
func TestLongFormatDfEFileGivesOneCrossRowRatioForEnglandRegionsAndCouncils(t *testing.T) {
	cfg, err := config.Load("../examples/dfe/long-format.yml")
	if err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	src, err := newSourceFor(cfg, &cfg.Collectors[0])
	if err != nil {
		t.Fatal(err)
	}
	obs, err := src.Collect(t.Context(), kpi.RunInfo{Collector: "dfe_agency_long", At: time.Now(), Location: cfg.Location})
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	type key struct {
		code string
		year int
	}
	got := map[key]kpi.Observation{}
	for _, o := range obs {
		k := key{o.Labels[0], o.Period.Year()}
		if _, dup := got[k]; dup {
			t.Errorf("two observations for %v", k)
		}
		got[k] = o
		if p := o.Period.In(cfg.Location); p.Month() != time.September || p.Day() != 30 {
			t.Errorf("%v: period %s, want 30 September", k, p)
		}
	}
	levels := map[string]int{}
	zeros, missing := 0, 0
	for _, r := range dfeRows(t) {
		year := 0
		if _, err := fmt.Sscan(r["time_period"], &year); err != nil || year < 2024 {
			continue
		}
		code, level := r["new_la_code"], "local authority"
		switch {
		case r["geographic_level"] == "National":
			code, level = r["country_code"], "national"
		case r["geographic_level"] == "Regional":
			code, level = r["region_code"], "regional"
		}
		o, ok := got[key{code, year}]
		if !ok {
			t.Errorf("%s %s %d: no observation", r["geographic_level"], code, year)
			continue
		}
		delete(got, key{code, year})
		levels[level]++
		if o.Labels[2] != level {
			t.Errorf("%s %d: geography %q, want %q", code, year, o.Labels[2], level)
		}
		var agency, inPost float64
		_, errA := fmt.Sscan(r["agency_fte"], &agency)
		_, errP := fmt.Sscan(r["inpost_fte"], &inPost)
		switch {
		case errA != nil || errP != nil: // x, c, z: suppressed
			missing++
			if o.Value.Valid {
				t.Errorf("%s %d: agency %q, in post %q, yet the ratio is %v, not missing", code, year, r["agency_fte"], r["inpost_fte"], o.Value)
			}
		case agency == 0:
			zeros++
			if o.Value != kpi.Known(0) {
				t.Errorf("%s %d: no agency workers, yet the ratio is %v, not 0", code, year, o.Value)
			}
		default:
			if want := agency / (agency + inPost); !o.Value.Valid || math.Abs(o.Value.V-want) > 1e-12 {
				t.Errorf("%s %d: ratio %v, want %v / (%v + %v) = %v", code, year, o.Value, agency, inPost, agency, want)
			}
			if code == "E92000001" && year == 2025 && math.Abs(o.Value.V-0.130) > 0.0005 {
				t.Errorf("England 2025: ratio %v, DfE publishes 13.0%%", o.Value)
			}
		}
	}
	for k := range got {
		t.Errorf("an observation for %v, which the file does not describe", k)
	}
	if levels["national"] != 2 || levels["regional"] < 18 || levels["local authority"] < 300 {
		t.Errorf("observations by level: %v", levels)
	}
	if zeros == 0 || missing == 0 {
		t.Errorf("the file should hold both real zeros (%d) and suppressed figures (%d)", zeros, missing)
	}
}

// A run records the file it read, the newest of a glob, not the glob, with
// its size, modification time and SHA-256.
func TestAFileRunRecordsTheFileItReadAndItsSHA256(t *testing.T) {
	dir := t.TempDir()
	older := []byte("team,vacant\nnorth,1\n")
	newer := []byte("team,vacant\nnorth,2\n")
	writeFile(t, dir, "hr-2025-01.csv", older)
	writeFile(t, dir, "hr-2025-02.csv", newer)
	mtime := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "hr-2025-01.csv"), mtime.Add(-time.Hour), mtime.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "hr-2025-02.csv"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	src, cfg := newFileSource(t, dir, fileCase{file: "{glob: \"hr-*.csv\"}"})
	prov := &kpi.Provenance{}
	if _, err := src.Collect(t.Context(), kpi.RunInfo{Collector: "hr", At: time.Now(), Location: cfg.Location, Provenance: prov}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(newer)
	want := []kpi.Read{{Kind: kpi.ReadFile, Name: "hr-2025-02.csv", Size: int64(len(newer)), ModTime: mtime, SHA256: hex.EncodeToString(sum[:])}}
	if got := prov.Reads(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reads %v\nwant %v", got, want)
	}
}

// Columns a query does not name are not converted, but a query that selects
// every column, or joins on columns it does not name, sees them all.
func TestQuerySeesEveryColumnItCanReach(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "return/cases.csv", []byte("case_ref,team_code,vacant\n1,N,2\n2,S,3\n"))
	writeFile(t, dir, "return/teams.csv", []byte("team_code,team\nN,north\nS,south\n"))
	for _, q := range []string{
		`SELECT * FROM cases NATURAL JOIN teams`,
		`SELECT t.*, c.vacant FROM cases AS c JOIN teams AS t USING (team_code)`,
		`SELECT team, vacant FROM (SELECT * FROM cases) JOIN teams USING (team_code)`,
	} {
		src, cfg := newFileSource(t, dir, fileCase{file: "{glob: \"return/*.csv\", select: all}", extra: query(q)})
		obs, err := collectFile(t, src, cfg)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got := fmt.Sprint(values(obs)); got != fmt.Sprint(map[string]kpi.Value{"vacancy_ratio/north": kpi.Known(2), "vacancy_ratio/south": kpi.Known(3)}) {
			t.Errorf("%s: got %s", q, got)
		}
	}
}
