package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/config"
)

const fileAndHTTP = `
kpis:
  - {name: vacancy_ratio, help: h, direction: lower_is_better, labels: [team]}
sources:
  - {name: hr, type: file, directory: exports}
  - name: api
    type: http
    base_url: https://api.example.org/v1/
    http_config:
      oauth2: {client_id: carewatch, client_secret_file: secrets/api, token_url: https://auth.example.org/token}
      tls_config: {ca_file: ca.pem}
collectors:
  - name: hr
    source: hr
    schedule: "@daily"
    file: {glob: "establishment_*.XLSX", sheet: Establishment, header_row: 4}
    filters: [{column: Team, not_in: [Total]}]
    metrics:
      - {kpi: vacancy_ratio, value_expression: '"Vacant FTE" / ("Vacant FTE" + "In post FTE")', labels: {team: Team}}
  - name: api
    source: api
    schedule: "@daily"
    http: {url: 'data?x=1', rows: "$.data[*]", fields: {team: team.name, v: values.vacancy}}
    period_column: month
    period_format: MMM YYYY
    period_day: end
    metrics:
      - {kpi: vacancy_ratio, value_column: v, percent: true, labels: {team: team}}
`

func TestFileAndHTTPSourcesLoadWithDefaults(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "carewatch.yml")
	if err := os.WriteFile(file, []byte(fileAndHTTP), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	hr, api := cfg.SourceByName("hr"), cfg.SourceByName("api")
	if hr.Directory != filepath.Join(dir, "exports") {
		t.Errorf("directory %q, want it relative to the config file", hr.Directory)
	}
	if hr.EffectiveMaxFileSize() != int64(config.DefaultMaxFileSize) || api.EffectiveMaxBodySize() != int64(config.DefaultMaxBodySize) {
		t.Errorf("size limits %d %d", hr.EffectiveMaxFileSize(), api.EffectiveMaxBodySize())
	}
	f := cfg.Collectors[0].File
	if f.Format != config.FormatXLSX || f.Select != config.SelectNewest || f.HeaderRow != 4 {
		t.Errorf("file defaults %+v", f)
	}
	h := cfg.Collectors[1].HTTP
	if h.Method != "GET" || h.Format != config.FormatJSON {
		t.Errorf("http defaults %+v", h)
	}
	hc := api.HTTPConfig.HTTPClientConfig
	if !hc.FollowRedirects || !hc.EnableHTTP2 {
		t.Error("the Prometheus HTTP client defaults were not applied")
	}
	if hc.OAuth2.ClientSecretFile != filepath.Join(dir, "secrets/api") || hc.TLSConfig.CAFile != filepath.Join(dir, "ca.pem") {
		t.Errorf("http_config files are not relative to the config file: %q %q", hc.OAuth2.ClientSecretFile, hc.TLSConfig.CAFile)
	}
	u, err := api.ResolveURL(h.URL)
	if err != nil || u.String() != "https://api.example.org/v1/data?x=1" {
		t.Errorf("ResolveURL = %v, %v", u, err)
	}
}

// Each bad source or collector is refused with a message naming its path.
func TestBadFileAndHTTPConfigsAreRefusedNamingThePath(t *testing.T) {
	const kpis = "kpis:\n  - {name: vacancy_ratio, help: h, direction: lower_is_better, labels: [team]}\n  - {name: caseload_average, help: h, direction: lower_is_better, labels: [team]}\n"
	const fileSrc = "sources:\n  - {name: hr, type: file, directory: /srv/hr}\n"
	const httpSrc = "sources:\n  - {name: api, type: http, base_url: 'https://api.example.org/v1/'}\n"
	collector := func(source, body string) string {
		return "collectors:\n  - name: c\n    source: " + source + "\n    schedule: '@daily'\n" + body
	}
	const metric = "    metrics: [{kpi: vacancy_ratio, value_column: v, labels: {team: t}}]\n"
	for _, tc := range []struct {
		name, text, want string
	}{
		{"a file source without a directory",
			kpis + "sources: [{name: hr, type: file}]\n" + collector("hr", "    file: {path: a.csv}\n"+metric),
			`sources[0].directory: is required: the folder the source reads, and the only one it may read`},
		{"a file source with a DSN",
			kpis + "sources: [{name: hr, type: file, directory: d, dsn_env: X}]\n" + collector("hr", "    file: {path: a.csv}\n"+metric),
			`sources[0].dsn_env: is not a setting of a file source`},
		{"a postgres source without a DSN",
			kpis + "sources: [{name: db, type: postgres}]\n" + collector("db", "    query: SELECT 1\n"+metric),
			`sources[0]: a postgres source needs dsn_env or dsn_file (connection strings never sit in the config text)`},
		{"a postgres source with a directory",
			kpis + "sources: [{name: db, type: postgres, dsn_env: X, directory: d}]\n" + collector("db", "    query: SELECT 1\n"+metric),
			`sources[0].directory: is not a setting of a postgres source`},
		{"a file collector with a blank query",
			kpis + fileSrc + collector("hr", "    query: \"  \"\n    file: {path: a.csv}\n"+metric),
			`collectors[0].query: is blank: give the SQL to run over the rows read, or leave query out`},
		{"a table name without a query",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv, table: hr}\n"+metric),
			`collectors[0].file.table: names the table a query reads, and the collector has no query`},
		{"a table name that is not a plain name",
			kpis + fileSrc + collector("hr", "    query: SELECT 1\n    file: {path: a.csv, table: Staff List}\n"+metric),
			`collectors[0].file.table: "Staff List" must be lower-case letters, digits and underscores, not starting with a digit`},
		{"sheets of a CSV file",
			kpis + fileSrc + collector("hr", "    query: SELECT 1\n    file: {path: a.csv, sheets: [a]}\n"+metric),
			`collectors[0].file.sheets: are for an xlsx workbook`},
		{"two sheets that would be one table",
			kpis + fileSrc + collector("hr", "    query: SELECT 1\n    file: {path: a.xlsx, sheets: [List 1, list-1]}\n"+metric),
			`collectors[0].file.sheets[1]: "List 1" and "list-1" would both be table list_1`},
		{"a file collector without a file",
			kpis + fileSrc + collector("hr", metric),
			`collectors[0].file: is required for a file source: a path, or a glob with select newest or all`},
		{"a path out of the directory",
			kpis + fileSrc + collector("hr", "    file: {path: ../etc/passwd.csv}\n"+metric),
			`collectors[0].file.path: "../etc/passwd.csv" must be a path inside the source's directory`},
		{"an absolute path",
			kpis + fileSrc + collector("hr", "    file: {path: /etc/x.csv}\n"+metric),
			`collectors[0].file.path: "/etc/x.csv" must be a path inside the source's directory`},
		{"a glob out of the directory",
			kpis + fileSrc + collector("hr", "    file: {glob: '../*.csv'}\n"+metric),
			`collectors[0].file.glob: "../*.csv" must match paths inside the source's directory`},
		{"a path and a glob",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv, glob: '*.csv'}\n"+metric),
			`collectors[0].file.glob: give path or glob, not both`},
		{"an unknown select",
			kpis + fileSrc + collector("hr", "    file: {glob: '*.csv', select: oldest}\n"+metric),
			`collectors[0].file.select: "oldest" is not one of newest, all`},
		{"a name pattern without a named group",
			kpis + fileSrc + collector("hr", "    file: {glob: '*.csv', name_pattern: 'x_(\\d+)'}\n"+metric),
			`collectors[0].file.name_pattern: has no named group`},
		{"an old .xls workbook",
			kpis + fileSrc + collector("hr", "    file: {path: a.xls}\n"+metric),
			`collectors[0].file.format: is required: csv or xlsx (the file name does not say which)`},
		{"a sheet for a CSV file",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv, sheet: One}\n"+metric),
			`collectors[0].file.sheet: is for an xlsx workbook`},
		{"an unknown encoding",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv, encoding: ebcdic}\n"+metric),
			`collectors[0].file.encoding: "ebcdic" is not one of utf-8, windows-1252, iso-8859-1`},
		{"a delimiter of two characters",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv, delimiter: ';;'}\n"+metric),
			`collectors[0].file.delimiter: ";;" must be one character other than a quote or a line break`},
		{"a filter with two tests",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv}\n    filters: [{column: x, equals: a, in: [b]}]\n"+metric),
			`collectors[0].filters[0]: give exactly one of equals, not_equals, in, not_in`},
		{"filters on a SQL source",
			kpis + "sources: [{name: db, type: postgres, dsn_env: X}]\n" + collector("db", "    query: SELECT 1\n    filters: [{column: x, equals: a}]\n"+metric),
			`collectors[0].filters: are for file and http sources: a SQL query filters with WHERE`},
		{"a benchmark without a council",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv}\n    benchmark: {neighbours_file: sn.csv}\n"+metric),
			`collectors[0].benchmark.council: is required: the council's ONS code (E09000008) or DfE code (306)`},
		{"a benchmark on an http source",
			kpis + httpSrc + collector("api", "    http: {url: x, rows: $.d}\n    benchmark: {council: '306', neighbours_file: sn.csv}\n"+metric),
			`collectors[0].benchmark: is for file sources, and source "api" is a http source`},
		{"an http source without a base URL",
			kpis + "sources: [{name: api, type: http}]\n" + collector("api", "    http: {url: x, rows: $.d}\n"+metric),
			`sources[0].base_url: is required`},
		{"a base URL with credentials",
			kpis + "sources: [{name: api, type: http, base_url: 'https://u:p@api.example.org/'}]\n" + collector("api", "    http: {url: x, rows: $.d}\n"+metric),
			`sources[0].base_url: must not hold credentials (secrets never sit in the config text)`},
		{"an API key in a base URL's query",
			kpis + "sources: [{name: api, type: http, base_url: 'https://api.example.org/v1/?api_key=abc123'}]\n" + collector("api", "    http: {url: x, rows: $.d}\n"+metric),
			`sources[0].base_url: the query parameter "api_key" carries a secret`},
		{"a token in a collector URL's query",
			kpis + httpSrc + collector("api", "    http: {url: 'cases?la=E09000001&access-token=abc123', rows: $.d}\n"+metric),
			`collectors[0].http.url: the query parameter "access-token" carries a secret`},
		{"a signature in a collector URL's query",
			kpis + httpSrc + collector("api", "    http: {url: 'cases?Signature=abc123', rows: $.d}\n"+metric),
			`collectors[0].http.url: the query parameter "Signature" carries a secret`},
		{"a URL that leaves the source's host",
			kpis + httpSrc + collector("api", "    http: {url: 'https://elsewhere.example.com/x', rows: $.d}\n"+metric),
			`collectors[0].http.url: "https://elsewhere.example.com/x" leaves source "api"'s base_url https://api.example.org/v1/: its credentials are for https://api.example.org only`},
		{"a client secret in the text",
			kpis + "sources:\n  - name: api\n    type: http\n    base_url: https://api.example.org/\n    http_config:\n      oauth2: {client_id: c, client_secret: hunter2, token_url: https://a.example.org/t}\n" + collector("api", "    http: {url: x, rows: $.d}\n"+metric),
			`sources[0].http_config.oauth2.client_secret: secrets never sit in the config text: use oauth2.client_secret_file`},
		{"a password in the text",
			kpis + "sources:\n  - name: api\n    type: http\n    base_url: https://api.example.org/\n    http_config:\n      basic_auth: {username: u, password: hunter2}\n" + collector("api", "    http: {url: x, rows: $.d}\n"+metric),
			`sources[0].http_config.basic_auth.password: secrets never sit in the config text: use basic_auth.password_file`},
		{"an unknown key inside http_config is refused by the strict decoder",
			kpis + "sources:\n  - name: api\n    type: http\n    base_url: https://api.example.org/\n    http_config:\n      oauth2: {client_id: c, client_secret_file: f, token_url: https://a.example.org/t, scope: [x]}\n" + collector("api", "    http: {url: x, rows: $.d}\n"+metric),
			`sources[0].http_config.oauth2: unknown key "scope" (is it misspelt or in the wrong place?)`},
		{"two kinds of authorisation",
			kpis + "sources:\n  - name: api\n    type: http\n    base_url: https://api.example.org/\n    http_config:\n      bearer_token_file: t\n      basic_auth: {username: u, password_file: p}\n" + collector("api", "    http: {url: x, rows: $.d}\n"+metric),
			`sources[0].http_config: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured`},
		{"an Authorization header",
			kpis + httpSrc + collector("api", "    http: {url: x, rows: $.d, headers: {authorization: Bearer abc}}\n"+metric),
			`collectors[0].http.headers.authorization: carries credentials, which belong in the source's http_config`},
		{"a DELETE",
			kpis + httpSrc + collector("api", "    http: {url: x, rows: $.d, method: delete}\n"+metric),
			`collectors[0].http.method: "DELETE" is not one of GET, POST (sources are read, never changed)`},
		{"a body with a GET",
			kpis + httpSrc + collector("api", "    http: {url: x, rows: $.d, body: '{}'}\n"+metric),
			`collectors[0].http.body: is sent with a POST only`},
		{"a JSON answer without rows",
			kpis + httpSrc + collector("api", "    http: {url: x}\n"+metric),
			`collectors[0].http.rows: is required for a JSON answer: the path to its rows, e.g. $.data[*]`},
		{"a rows path that is not one",
			kpis + httpSrc + collector("api", "    http: {url: x, rows: 'data[*]'}\n"+metric),
			`collectors[0].http.rows: path "data[*]" must start with $ (the document's root)`},
		{"a field path with a wildcard",
			kpis + httpSrc + collector("api", "    http: {url: x, rows: '$.d[*]', fields: {v: 'values[*]'}}\n"+metric),
			`collectors[0].http.fields.v: a field's path leads to one value: no [*] or .* (those are for the rows path)`},
		{"a filter path that is recursive",
			kpis + httpSrc + collector("api", "    http: {url: x, rows: '$..d'}\n"+metric),
			`collectors[0].http.rows: path "$..d": recursive descent (..) is not supported`},
		{"an expression that does not parse",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv}\n    metrics: [{kpi: vacancy_ratio, value_expression: 'a / (b + c', labels: {team: t}}]\n"),
			`collectors[0].metrics[0].value_expression: the bracket at character 5 is not closed (found end of the expression)`},
		{"a value column and an expression",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv}\n    metrics: [{kpi: vacancy_ratio, value_column: v, value_expression: a / b, labels: {team: t}}]\n"),
			`collectors[0].metrics[0].value_expression: give value_column or value_expression, not both`},
		{"percent for a KPI that is not a ratio",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv}\n    metrics: [{kpi: caseload_average, value_column: v, percent: true, labels: {team: t}}]\n"),
			`collectors[0].metrics[0].percent: turns 14.2 into 0.142, but KPI caseload_average is not a ratio (its name does not end in _ratio)`},
		{"percent with an expression",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv}\n    metrics: [{kpi: vacancy_ratio, value_expression: a / b, percent: true, labels: {team: t}}]\n"),
			`collectors[0].metrics[0].percent: is for value_column: in an expression, divide by 100`},
		{"a value map with the same word twice",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv}\n    metrics: [{kpi: caseload_average, value_column: v, value_map: {Good: 3, ' good': 2}, labels: {team: t}}]\n"),
			`collectors[0].metrics[0].value_map: " good" and "Good" are the same word`},
		{"a period format with an unknown token",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv}\n    period_column: p\n    period_format: Q YYYY\n"+metric),
			`collectors[0].period_format: period_format "Q YYYY": 'Q' is not a token (YYYY, YY, MMMM, MMM, MM, DD) or a separator (space / - . , : _)`},
		{"a period day that does not exist",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv}\n    period_column: p\n    period_format: YYYY\n    period_day: 02-30\n"+metric),
			`collectors[0].period_day: period_day "02-30": February has no day 30`},
		{"a period day without a format",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv}\n    period_day: 09-30\n"+metric),
			`collectors[0].period_day: needs period_format: the day is for a period written without one`},
		{"a period format without a period column",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv}\n    period_format: YYYY-MM\n"+metric),
			`collectors[0].period_format: needs period_column: without it the period is the run's date`},
		{"a year without the day it describes",
			kpis + fileSrc + collector("hr", "    file: {path: a.csv}\n    period_column: year\n    period_format: YYYY\n"+metric),
			`collectors[0].period_day: is required with period_format "YYYY": the day the year describes, as MM-DD (09-30 for DfE's workforce census, 03-31 for a financial year's end, 01-01 for 1 January)`},
		{"a size that is not one",
			kpis + "sources: [{name: hr, type: file, directory: d, max_file_size: lots}]\n" + collector("hr", "    file: {path: a.csv}\n"+metric),
			`sources[0].max_file_size: "lots" is not a valid size (e.g. 512KiB, 10MB, 1GiB)`},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			_, err := config.Parse([]byte(tc.text), "c.yml")
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("messages:\n%v\nwant one containing:\n%s", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "c.yml:") {
				t.Errorf("the message does not start with the file and line: %v", err)
			}
		})
	}
}

func TestParseExpression(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"vacancy_fte / (vacancy_fte + inpost_fte)", "(vacancy_fte / (vacancy_fte + inpost_fte))"},
		{"a + b * c - d / 2", "((a + (b * c)) - (d / 2))"},
		{"-a * -(b)", "((-a) * (-b))"},
		{"+a", "a"},
		{`"Vacant FTE" / ("Vacant FTE" + "In post FTE")`, `("Vacant FTE" / ("Vacant FTE" + "In post FTE"))`},
		{"100 * a / b", "((100 * a) / b)"},
		{"1.5e2 * .5", "(150 * 0.5)"},
		{"  a  ", "a"},
		// DfE's column names may start with a digit.
		{"2_years_or_more / total", `("2_years_or_more" / total)`},
		{"2e3 * 12months", `(2000 * "12months")`},
	} {
		e, err := config.ParseExpression(tc.in)
		if err != nil || e.String() != tc.want {
			t.Errorf("ParseExpression(%q) = %v, %v; want %s", tc.in, e, err, tc.want)
		}
	}
	if cols := mustExpr(t, `a / (a + "b c") * a`).Columns(); strings.Join(cols, "|") != "a|b c" {
		t.Errorf("Columns() = %q", cols)
	}
	for in, want := range map[string]string{
		"":       "the expression is empty",
		"a +":    "expected a number, a column or a bracket, found end of the expression",
		"a b":    `unexpected column "b" at character 3`,
		"(a":     "the bracket at character 1 is not closed (found end of the expression)",
		"a)":     `unexpected ")" at character 2`,
		"a % b":  `unexpected character '%' at character 3 (an expression has numbers, column names, + - * / and brackets)`,
		`"a`:     `the quoted column name at character 1 has no closing "`,
		`""`:     "the quoted column name at character 1 is empty",
		"1..2":   `"1..2" at character 1 is not a number`,
		"1e999":  `"1e999" at character 1 is not a number`,
		"sum(a)": `unexpected "(" at character 4`,
		strings.Repeat("(", 80) + "a" + strings.Repeat(")", 80): "the expression nests more than 64 deep",
		strings.Repeat("a+", 600) + "a":                         "the expression is 1201 characters long, more than 1000",
	} {
		if _, err := config.ParseExpression(in); err == nil || err.Error() != want {
			t.Errorf("ParseExpression(%.30q) error = %v, want %s", in, err, want)
		}
	}
}

func mustExpr(t *testing.T, s string) *config.Expr {
	t.Helper()
	e, err := config.ParseExpression(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestParseJSONPath(t *testing.T) {
	for _, tc := range []struct {
		in       string
		relative bool
		want     string
	}{
		{"$.data[*]", false, "key:data all"},
		{"$", false, ""},
		{"$['la name'][0].x", false, "key:la name index:0 key:x"},
		{`$["a.b"].*`, false, "key:a.b all"},
		{"location.code", true, "key:location key:code"},
		{"@.values[2]", true, "key:values index:2"},
		{"[0]", true, "index:0"},
	} {
		p, err := config.ParseJSONPath(tc.in, tc.relative)
		if err != nil {
			t.Errorf("ParseJSONPath(%q) = %v", tc.in, err)
			continue
		}
		var parts []string
		for _, s := range p.Steps {
			switch s.Kind {
			case config.StepKey:
				parts = append(parts, "key:"+s.Key)
			case config.StepIndex:
				parts = append(parts, "index:"+string(rune('0'+s.Index)))
			case config.StepAll:
				parts = append(parts, "all")
			}
		}
		if got := strings.Join(parts, " "); got != tc.want {
			t.Errorf("ParseJSONPath(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	for in, want := range map[string]string{
		"data":          `path "data" must start with $ (the document's root)`,
		"$data":         `path "$data": expected . or [ after $`,
		"$.a[?(@.x>1)]": `path "$.a[?(@.x>1)]": [?(@.x>1)] is not supported: use [n] (n from 0), [*] or ['name']`,
		"$.a[-1]":       `path "$.a[-1]": [-1] is not supported: use [n] (n from 0), [*] or ['name']`,
		"$.a[1:3]":      `path "$.a[1:3]": [1:3] is not supported: use [n] (n from 0), [*] or ['name']`,
		"$..a":          `path "$..a": recursive descent (..) is not supported`,
		"$.a[0":         `path "$.a[0": the [ at character 4 is not closed`,
		"$['a":          `path "$['a": the quoted name at character 2 is not closed`,
		"$.a b":         `path "$.a b": "a b" is not a member name (write ['a name'] for one with spaces)`,
		"":              "the path is empty",
	} {
		if _, err := config.ParseJSONPath(in, false); err == nil || err.Error() != want {
			t.Errorf("ParseJSONPath(%q) error = %v, want %s", in, err, want)
		}
	}
}

func TestParsePeriodReadsTheDayItDescribes(t *testing.T) {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		format, day, cell string
		want              time.Time
	}{
		{"YYYY", "09-30", "2025", time.Date(2025, 9, 30, 0, 0, 0, 0, loc)},
		{"YYYY", "01-01", "2025", time.Date(2025, 1, 1, 0, 0, 0, 0, loc)},
		{"YYYY-MM", "end", "2024-02", time.Date(2024, 2, 29, 0, 0, 0, 0, loc)},
		{"YYYY-MM", "31", "2025-04", time.Date(2025, 4, 30, 0, 0, 0, 0, loc)},
		{"MMM YYYY", "15", "Mar 2025", time.Date(2025, 3, 15, 0, 0, 0, 0, loc)},
		{"MMMM YYYY", "", " March 2025 ", time.Date(2025, 3, 1, 0, 0, 0, 0, loc)},
		{"DD/MM/YYYY", "", "31/03/2025", time.Date(2025, 3, 31, 0, 0, 0, 0, loc)},
		{"YYYYMM", "end", "202503", time.Date(2025, 3, 31, 0, 0, 0, 0, loc)},
	} {
		p, err := config.ParsePeriod(tc.format, tc.day)
		if err != nil {
			t.Errorf("ParsePeriod(%q, %q) = %v", tc.format, tc.day, err)
			continue
		}
		got, err := p.Read(tc.cell, loc)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%s %s: Read(%q) = %v, %v; want %v", tc.format, tc.day, tc.cell, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ format, day, want string }{
		{"MM/DD", "", `period_format "MM/DD" must write the year (YYYY or YY)`},
		{"YYYY-DD", "", `period_format "YYYY-DD" writes a day but no month`},
		{"YYYY-MM-DD", "end", `period_day "end" is not needed: period_format "YYYY-MM-DD" writes the day`},
		{"YYYY", "30", `period_day "30": a year's period_day is MM-DD, e.g. 09-30 for 30 September`},
		{"YYYY", "", `period_day is required with period_format "YYYY": the day the year describes, as MM-DD (09-30 for DfE's workforce census, 03-31 for a financial year's end, 01-01 for 1 January)`},
		{"YYYY-MM", "32", `period_day "32": a month's period_day is a day from 1 to 31 (the last day of a shorter month) or "end"`},
		{"YYYY 1", "", `period_format "YYYY 1": '1' is not a token (YYYY, YY, MMMM, MMM, MM, DD) or a separator (space / - . , : _)`},
	} {
		if _, err := config.ParsePeriod(tc.format, tc.day); err == nil || err.Error() != tc.want {
			t.Errorf("ParsePeriod(%q, %q) error = %v, want %s", tc.format, tc.day, err, tc.want)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]config.ByteSize{"512": 512, "512B": 512, "64KiB": 64 << 10, "10MB": 10e6, "1.5GiB": 3 << 29, " 2 MiB ": 2 << 20} {
		if got, err := config.ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1MiB", "1TB", "NaN"} {
		if _, err := config.ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
	if s := config.ByteSize(100000).String(); s != "97.7KiB" {
		t.Errorf("String() = %s", s)
	}
}

func FuzzParseExpression(f *testing.F) {
	for _, s := range []string{"a / (a + b)", `"x y" * 2`, "-(-a)", "1e3", "(((a)))", "a +", "1..2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := config.ParseExpression(s)
		if err != nil {
			return
		}
		again, err := config.ParseExpression(e.String())
		if err != nil || again.String() != e.String() {
			t.Fatalf("%q renders as %q, which reads back as %v (%v)", s, e.String(), again, err)
		}
	})
}

func FuzzParseJSONPath(f *testing.F) {
	for _, s := range []string{"$.data[*]", "$['a b'][0]", `$["x"].*`, "a.b", "@[3]", "$..x", "$['"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, relative bool) {
		p, err := config.ParseJSONPath(s, relative)
		if err != nil {
			return
		}
		for _, st := range p.Steps {
			if st.Kind == config.StepKey && st.Key == "" || st.Kind == config.StepIndex && st.Index < 0 {
				t.Fatalf("%q has a step %+v", s, st)
			}
		}
	})
}

func FuzzParsePeriod(f *testing.F) {
	f.Add("YYYY", "09-30", "2025")
	f.Add("MMM YYYY", "end", "Feb 2024")
	f.Add("DD/MM/YYYY", "", "31/03/2025")
	f.Fuzz(func(t *testing.T, format, day, cell string) {
		p, err := config.ParsePeriod(format, day)
		if err != nil {
			return
		}
		got, err := p.Read(cell, time.UTC)
		if err != nil {
			return
		}
		if h, m, s := got.Clock(); h != 0 || m != 0 || s != 0 {
			t.Fatalf("%q in %q reads as %v, not a midnight", cell, format, got)
		}
	})
}
