package collector_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// fileConfig is a configuration with one file source at DIR and one
// collector, whose file block, extra keys and metrics the tests fill in.
const fileConfig = `
kpis:
  - {name: vacancy_ratio, help: h, direction: lower_is_better, labels: [team]}
  - {name: caseload_average, help: h, direction: lower_is_better, labels: [team]}
sources:
  - {name: hr, type: file, directory: DIR, max_file_size: LIMIT}
collectors:
  - name: hr
    source: hr
    schedule: "@daily"
    file: FILE
EXTRA
    metrics:
METRICS
`

type fileCase struct {
	file    string // the collector's file block
	extra   string // more collector keys, indented by four spaces
	metrics string // metric mappings, indented by six spaces
	limit   string
}

// newFileSource writes the configuration for c, loads it as the daemon
// does and returns the collector's source over dir.
func newFileSource(t *testing.T, dir string, c fileCase) (kpi.Source, *config.Config) {
	t.Helper()
	if c.metrics == "" {
		c.metrics = "      - {kpi: vacancy_ratio, value_column: vacant, labels: {team: team}}"
	}
	if c.limit == "" {
		c.limit = "1MiB"
	}
	text := strings.NewReplacer("DIR", dir, "LIMIT", c.limit, "FILE", c.file, "EXTRA", c.extra, "METRICS", c.metrics).Replace(fileConfig)
	cfg, err := config.Parse([]byte(text), filepath.Join(t.TempDir(), "carewatch.yml"))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	src, err := newSourceFor(cfg, &cfg.Collectors[0])
	if err != nil {
		t.Fatal(err)
	}
	return src, cfg
}

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func collectFile(t *testing.T, src kpi.Source, cfg *config.Config) ([]kpi.Observation, error) {
	t.Helper()
	return src.Collect(t.Context(), kpi.RunInfo{Collector: "hr", At: time.Date(2025, 10, 1, 9, 0, 0, 0, time.UTC), Location: cfg.Location})
}

// values returns each observation's value by KPI and team.
func values(obs []kpi.Observation) map[string]kpi.Value {
	out := map[string]kpi.Value{}
	for _, o := range obs {
		out[o.KPI.Name+"/"+o.Labels[0]] = o.Value
	}
	return out
}

// What real exports hold: a byte-order mark, title rows above the header,
// quoted fields with commas and quotes, padding, thousands separators,
// percentages with and without %, UK and ISO dates, every suppression
// symbol, blank rows at the end.
func TestCSVExportQuirksAreRead(t *testing.T) {
	dir := t.TempDir()
	csv := "\ufeffWorkforce return,,,,\r\n" +
		"Produced 01/10/2025,,,,\r\n" +
		"team , vacant ,cases, holders ,as_at\r\n" +
		`"North, Assessment", 12.5% ,"1,234",50,31/03/2025` + "\r\n" +
		`"The ""Hub""",14.2,"2,345.5",100.5,2025-03-31` + "\r\n" +
		"  padded  ,  7  ,  70  ,  10  , 31/03/2025 \r\n" +
		"x team,x,x,5,31/03/2025\r\n" +
		"c team,c,c,5,31/03/2025\r\n" +
		"z team,z,z,5,31/03/2025\r\n" +
		"u team,u,u,5,31/03/2025\r\n" +
		"low team,low,low,5,31/03/2025\r\n" +
		"colon team,:,:,5,31/03/2025\r\n" +
		"dots team,..,..,5,31/03/2025\r\n" +
		"bracket team,[c],[x],5,31/03/2025\r\n" +
		"empty team,,,5,31/03/2025\r\n" +
		"zero team,0,0,0,31/03/2025\r\n" +
		",,,,\r\n" +
		",,,,\r\n" +
		"\r\n"
	writeFile(t, dir, "return.csv", []byte(csv))
	src, cfg := newFileSource(t, dir, fileCase{
		file:  "{path: return.csv, header_row: 3}",
		extra: "    period_column: as_at",
		metrics: "      - {kpi: vacancy_ratio, value_column: vacant, percent: true, labels: {team: team}}\n" +
			"      - {kpi: caseload_average, value_expression: cases / holders, labels: {team: team}}",
	})
	obs, err := collectFile(t, src, cfg)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	got := values(obs)
	want := map[string]kpi.Value{
		"vacancy_ratio/North, Assessment":    kpi.Known(0.125),
		"caseload_average/North, Assessment": kpi.Known(1234.0 / 50),
		`vacancy_ratio/The "Hub"`:            kpi.Known(0.142),
		`caseload_average/The "Hub"`:         kpi.Known(2345.5 / 100.5),
		"vacancy_ratio/padded":               kpi.Known(0.07),
		"caseload_average/padded":            kpi.Known(7),
		"caseload_average/zero team":         kpi.Missing, // 0 / 0
		"vacancy_ratio/zero team":            kpi.Known(0),
	}
	for _, sym := range []string{"x", "c", "z", "u", "low", "colon", "dots", "bracket", "empty"} {
		want["vacancy_ratio/"+sym+" team"] = kpi.Missing
		want["caseload_average/"+sym+" team"] = kpi.Missing
	}
	if len(got) != len(want) {
		t.Errorf("%d observations, want %d: %v", len(got), len(want), got)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s = %v (present %t), want %v", k, g, ok, w)
		}
	}
	day := time.Date(2025, 3, 31, 0, 0, 0, 0, cfg.Location)
	for _, o := range obs {
		if !o.Period.Equal(day) {
			t.Errorf("%s %s: period %s, want 31 March 2025 (UK and ISO dates alike)", o.KPI.Name, o.Labels, o.Period)
		}
	}
}

func TestCSVWithSemicolonsAndWindows1252(t *testing.T) {
	dir := t.TempDir()
	// "Équipe d’accueil" in Windows-1252: É is 0xC9, ’ is 0x92.
	writeFile(t, dir, "r.csv", []byte("team;vacant\r\n\xc9quipe d\x92accueil;0,5\r\nnorth;\"0.25\"\r\n"))
	src, cfg := newFileSource(t, dir, fileCase{file: `{path: r.csv, delimiter: ";", encoding: windows-1252}`})
	_, err := collectFile(t, src, cfg)
	// 0,5 is a decimal comma, which a UK export never has: refused, not read as 5.
	if err == nil || !strings.Contains(err.Error(), `file "r.csv", row 2, column "vacant": value "0,5" is not a number`) {
		t.Fatalf("err = %v", err)
	}
	writeFile(t, dir, "r.csv", []byte("team;vacant\r\n\xc9quipe d\x92accueil;0.5\r\nnorth;\"0.25\"\r\n"))
	obs, err := collectFile(t, src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := values(obs)
	if got["vacancy_ratio/Équipe d’accueil"] != kpi.Known(0.5) || got["vacancy_ratio/north"] != kpi.Known(0.25) {
		t.Errorf("got %v", got)
	}
}

// A Windows-1252 file read as UTF-8 fails naming the row and the fix,
// rather than storing garbled team names.
func TestWindows1252ReadAsUTF8SaysWhichEncodingToSet(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "r.csv", []byte("team,vacant\r\nnorth,0.1\r\nChildren\x92s,0.2\r\n"))
	src, cfg := newFileSource(t, dir, fileCase{file: "{path: r.csv}"})
	_, err := collectFile(t, src, cfg)
	want := `collector "hr": source "hr": file "r.csv": row 3 is not valid UTF-8 text: if the file was saved by Excel as plain CSV, set encoding: windows-1252`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if !collector.IsPermanent(err) {
		t.Error("a file in the wrong encoding is retried: it will not change by itself")
	}
}

func TestGlobPicksTheNewestFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "export_a.csv", []byte("team,vacant\r\nnorth,0.3\r\n"))
	writeFile(t, dir, "export_b.csv", []byte("team,vacant\r\nnorth,0.1\r\n"))
	writeFile(t, dir, "other.csv", []byte("team,vacant\r\nnorth,0.9\r\n"))
	old, recent := time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	// The name sorts last, but the other file is newer: newest means the
	// latest modification, which is what arrived last.
	if err := os.Chtimes(filepath.Join(dir, "export_b.csv"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "export_a.csv"), recent, recent); err != nil {
		t.Fatal(err)
	}
	src, cfg := newFileSource(t, dir, fileCase{file: "{glob: export_*.csv}"})
	obs, err := collectFile(t, src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := values(obs)["vacancy_ratio/north"]; got != kpi.Known(0.3) {
		t.Errorf("value %v, want 0.3 from the newest file", got)
	}
	if _, q := src.(*collector.FileSource).Describe(); !strings.Contains(q, "export_*.csv (newest match)") {
		t.Errorf("Describe() = %q", q)
	}
}

func TestFilesOutsideTheDirectoryAreNeverRead(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, outside, "secret.csv", []byte("team,vacant\r\nnorth,0.99\r\n"))
	dir := t.TempDir()
	writeFile(t, dir, "ok.csv", []byte("team,vacant\r\nnorth,0.1\r\n"))
	if err := os.Symlink(filepath.Join(outside, "secret.csv"), filepath.Join(dir, "link.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "linked_dir")); err != nil {
		t.Fatal(err)
	}

	t.Run("a symbolic link out of the folder is refused", func(t *testing.T) {
		src, cfg := newFileSource(t, dir, fileCase{file: "{path: link.csv}"})
		_, err := collectFile(t, src, cfg)
		if err == nil || !strings.Contains(err.Error(), `file "link.csv": refused: the path leads outside the source's directory`) {
			t.Fatalf("err = %v", err)
		}
		if !collector.IsPermanent(err) {
			t.Error("not permanent")
		}
	})
	t.Run("a linked folder out of the folder is refused", func(t *testing.T) {
		src, cfg := newFileSource(t, dir, fileCase{file: "{path: linked_dir/secret.csv}"})
		if _, err := collectFile(t, src, cfg); err == nil || !strings.Contains(err.Error(), "refused: the path leads outside") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a glob does not match through a link out of the folder", func(t *testing.T) {
		src, cfg := newFileSource(t, dir, fileCase{file: "{glob: '*.csv', select: all}"})
		obs, err := collectFile(t, src, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range obs {
			if o.Value.V == 0.99 {
				t.Fatal("the file outside the folder was read through a link")
			}
		}
	})
	t.Run("a path with .. is refused even if the config check is bypassed", func(t *testing.T) {
		_, cfg := newFileSource(t, dir, fileCase{file: "{path: ok.csv}"})
		cc := cfg.Collectors[0]
		cc.File = &config.FileInput{Path: "../" + filepath.Base(outside) + "/secret.csv", TableOptions: config.TableOptions{Format: "csv", HeaderRow: 1}}
		m, err := collector.NewMapper(&cc, cfg.Catalogue, 10)
		if err != nil {
			t.Fatal(err)
		}
		fs, err := collector.NewFileSource(&cc, cfg.SourceByName("hr"), m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := collectFile(t, fs, cfg); err == nil || !strings.Contains(err.Error(), "refused: the path leads outside") {
			t.Fatalf("err = %v", err)
		}
	})
}

// Every bad file fails its run with a message naming the file, the row and
// the cause; what cannot mend by itself is not retried.
func TestBadFilesFailTheirRunNamingFileRowAndCause(t *testing.T) {
	xlsx, err := os.ReadFile(filepath.Join(hrData, "establishment_2025-03-31.xlsx"))
	if err != nil {
		t.Fatal(err)
	}
	big := []byte("team,vacant\r\n" + strings.Repeat("north,0.1\r\n", 20000))
	for _, tc := range []struct {
		name      string
		file      string
		data      []byte
		c         fileCase
		want      string
		permanent bool
	}{
		{"a missing column names the column and those present", "w.csv", []byte("team,vacancies\r\nnorth,0.1\r\n"), fileCase{},
			`collector "hr": file "w.csv" has no column "vacant" (named by metrics[0].value_column); columns present: "team", "vacancies"`, true},
		{"a renamed header used by an expression names the expression", "w.csv", []byte("team,vacant_fte,inpost\r\nnorth,1,9\r\n"),
			fileCase{metrics: "      - {kpi: vacancy_ratio, value_expression: vacant / (vacant + inpost), labels: {team: team}}"},
			`collector "hr": file "w.csv" has no column "vacant" (named by metrics[0].value_expression)`, true},
		{"a wrong type names the row and column", "w.csv", []byte("team,vacant\r\nnorth,0.1\r\nsouth,twelve\r\n"), fileCase{},
			`collector "hr": file "w.csv", row 3, column "vacant": value "twelve" is not a number`, true},
		{"an empty file", "w.csv", []byte{}, fileCase{},
			`collector "hr": source "hr": file "w.csv": the file is empty`, true},
		{"a header without rows", "w.csv", []byte("team,vacant\r\n"), fileCase{},
			`collector "hr": source "hr": file "w.csv" has no rows below its header (row 1): is it cut short?`, true},
		{"a file cut in the middle of a row", "w.csv", []byte("team,vacant,cases\r\nnorth,0.1,3\r\nsouth,0."), fileCase{},
			`collector "hr": source "hr": file "w.csv": row 3 has 2 fields, but the header (row 1) has 3: is the file cut short?`, true},
		{"a file cut inside a quoted field", "w.csv", []byte("team,vacant\r\nnorth,0.1\r\n\"south,0.2\r\n"), fileCase{},
			`collector "hr": source "hr": file "w.csv": row 3: extraneous or missing " in quoted-field (a quote left open usually means the file was cut short)`, true},
		{"a file far larger than the limit", "w.csv", big, fileCase{limit: "64KiB"},
			`collector "hr": source "hr": file "w.csv": is 214.9KiB, more than the source's max_file_size (64KiB)`, true},
		{"a text file named .xlsx", "w.xlsx", []byte("team,vacant\r\nnorth,0.1\r\n"), fileCase{file: "{path: w.xlsx}"},
			`collector "hr": source "hr": file "w.xlsx": not a readable XLSX workbook (is it damaged, cut short, or an old .xls?)`, true},
		{"a workbook cut short", "w.xlsx", xlsx[:len(xlsx)/2], fileCase{file: "{path: w.xlsx}"},
			`run rejected: collector "hr": check truncation: file "w.xlsx": the workbook`, true},
		{"a workbook without the sheet", "w.xlsx", xlsx, fileCase{file: "{path: w.xlsx, sheet: Staff}"},
			`collector "hr": source "hr": file "w.xlsx": the workbook has no sheet "Staff"; its sheets: "Notes", "Establishment"`, true},
		{"a workbook that unpacks past the limit", "w.xlsx", xlsx, fileCase{file: "{path: w.xlsx, sheet: Establishment}", limit: "8KiB"},
			`collector "hr": source "hr": file "w.xlsx": the workbook unpacks to more than the source's max_file_size (8KiB)`, true},
		{"a period that is not a date", "w.csv", []byte("team,vacant,as_at\r\nnorth,0.1,Q3 2025\r\n"), fileCase{extra: "    period_column: as_at"},
			`collector "hr": file "w.csv", row 2, column "as_at": period "Q3 2025" is not a date (2006-01-02, 02/01/2006) or an RFC 3339 time`, true},
		{"a period not in the period_format", "w.csv", []byte("team,vacant,year\r\nnorth,0.1,2025\r\nsouth,0.2,2025-26\r\n"),
			fileCase{extra: "    period_column: year\n    period_format: YYYY\n    period_day: 09-30"},
			`collector "hr": file "w.csv", row 3, column "year": period "2025-26" is not in the form YYYY`, true},
		{"a label that is empty", "w.csv", []byte("team,vacant\r\n,0.1\r\n"), fileCase{},
			`collector "hr": file "w.csv", row 2, column "team": label "team" of KPI "vacancy_ratio": the label value is empty`, true},
		{"a file whose name does not match the name pattern", "w.csv", []byte("team,vacant\r\nnorth,0.1\r\n"),
			fileCase{file: `{glob: "*.csv", name_pattern: 'return_(?P<month>\d{4}-\d{2})'}`},
			`collector "hr": source "hr": file "w.csv": the name does not match file.name_pattern`, true},
		{"a file that is not there yet may be retried", "elsewhere.csv", []byte("team,vacant\r\nnorth,0.1\r\n"), fileCase{},
			`collector "hr": source "hr": file "w.csv": there is no such file in `, false},
		{"a glob that matches nothing may be retried", "w.csv", []byte("team,vacant\r\nnorth,0.1\r\n"), fileCase{file: "{glob: 'return_*.csv'}"},
			`collector "hr": source "hr": no file in `, false},
		{"a filter on a column the file lacks", "w.csv", []byte("team,vacant\r\nnorth,0.1\r\n"),
			fileCase{extra: "    filters: [{column: level, equals: team}]"},
			`collector "hr": source "hr": file "w.csv" has no column "level" (named by filters[0].column); columns present: "team", "vacant"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, tc.file, tc.data)
			if tc.c.file == "" {
				tc.c.file = "{path: w.csv}"
			}
			src, cfg := newFileSource(t, dir, tc.c)
			obs, err := collectFile(t, src, cfg)
			if err == nil {
				t.Fatalf("no error; %d observations", len(obs))
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to start with:\n%s", err, tc.want)
			}
			if obs != nil {
				t.Errorf("a failed run returned %d observations", len(obs))
			}
			if collector.IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %t, want %t", collector.IsPermanent(err), tc.permanent)
			}
		})
	}
}

// A bad file fails its run and returns nothing, and the next good file is
// read as if nothing had happened: a failed run leaves no trace for the
// store to write, so the last good values stand.
func TestABadFileBetweenGoodOnesChangesNothing(t *testing.T) {
	dir := t.TempDir()
	good := []byte("team,vacant\r\nnorth,0.1\r\nsouth,0.2\r\n")
	writeFile(t, dir, "w.csv", good)
	src, cfg := newFileSource(t, dir, fileCase{file: "{path: w.csv}"})
	first, err := collectFile(t, src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "w.csv", []byte("team,vacant\r\nnorth,0.1\r\nsouth,oops\r\n"))
	if obs, err := collectFile(t, src, cfg); err == nil || obs != nil {
		t.Fatalf("bad file: %d observations, err %v", len(obs), err)
	}
	writeFile(t, dir, "w.csv", good)
	again, err := collectFile(t, src, cfg)
	if err != nil {
		t.Fatalf("the good file after a bad one: %v", err)
	}
	if len(again) != len(first) || again[0].Value != first[0].Value || again[1].Value != first[1].Value {
		t.Errorf("after a failed run: %v, before: %v", again, first)
	}
}

func TestFileReadsStopWhenTheRunIsCancelled(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "w.csv", []byte("team,vacant\r\nnorth,0.1\r\n"))
	src, cfg := newFileSource(t, dir, fileCase{file: "{path: w.csv}"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := src.Collect(ctx, kpi.RunInfo{Collector: "hr", At: time.Now(), Location: cfg.Location})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want it to wrap context.Canceled", err)
	}
}

func TestRowFilters(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "w.csv", []byte("level,team,vacant\r\nTeam,north,0.1\r\nteam ,south,0.2\r\nService,all,0.15\r\nTeam,east,0.3\r\n"))
	for _, tc := range []struct {
		filters string
		want    []string
	}{
		{"[{column: level, equals: team}]", []string{"east", "north", "south"}},
		{"[{column: level, not_equals: Team}]", []string{"all"}},
		{"[{column: team, in: [north, east]}]", []string{"east", "north"}},
		{"[{column: team, not_in: [north, east]}, {column: level, equals: team}]", []string{"south"}},
	} {
		t.Run(tc.filters+" keeps "+strings.Join(tc.want, ","), func(t *testing.T) {
			src, cfg := newFileSource(t, dir, fileCase{file: "{path: w.csv}", extra: "    filters: " + tc.filters})
			obs, err := collectFile(t, src, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var teams []string
			for _, o := range obs {
				teams = append(teams, o.Labels[0])
			}
			sort.Strings(teams)
			if strings.Join(teams, ",") != strings.Join(tc.want, ",") {
				t.Errorf("kept %v, want %v", teams, tc.want)
			}
		})
	}
}
