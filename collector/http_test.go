package collector_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// inspectionsJSON is a synthetic answer of an inspections API: one row per
// council, its grade as a word, its vacancy rate as a percentage.
const inspectionsJSON = `{
  "data": [
    {"location": {"code": "E09000008", "name": "Croydon"}, "judgement": "Good", "vacancy": {"rate": 19.2}, "published": "2025-03-31"},
    {"location": {"code": "E09000023", "name": "Lewisham"}, "judgement": "Requires improvement", "vacancy": {"rate": null}, "published": "2025-03-31"},
    {"location": {"code": "E09000011", "name": "Greenwich"}, "judgement": "outstanding ", "vacancy": {"rate": "x"}, "published": "31/03/2025"}
  ],
  "meta": {"count": 3}
}`

// api is a test API behind OAuth2 client credentials. Its answer to the
// data endpoint can be changed between runs.
type api struct {
	*httptest.Server
	mu      sync.Mutex
	answer  func(w http.ResponseWriter, r *http.Request)
	tokens  int
	lastReq struct {
		method, body, auth, query string
	}
}

const (
	apiClientID     = "carewatch"
	apiClientSecret = "s3cret-from-a-file"
	apiToken        = "token-abc"
)

func newAPI(t *testing.T) *api {
	t.Helper()
	a := &api{}
	a.answer = func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, inspectionsJSON)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if id != apiClientID || secret != apiClientSecret || r.PostForm.Get("grant_type") != "client_credentials" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		a.mu.Lock()
		a.tokens++
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": apiToken, "token_type": "Bearer", "expires_in": 3600})
	})
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.lastReq.method, a.lastReq.body, a.lastReq.auth, a.lastReq.query = r.Method, string(body), r.Header.Get("Authorization"), r.URL.RawQuery
		answer := a.answer
		a.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+apiToken {
			http.Error(w, "unauthorised", http.StatusUnauthorized)
			return
		}
		answer(w, r)
	})
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

func (a *api) setAnswer(f func(w http.ResponseWriter, r *http.Request)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.answer = f
}

const httpConfig = `
kpis:
  - {name: ilacs_grade, help: h, direction: higher_is_better, labels: [la_code, la_name]}
  - {name: vacancy_ratio, help: h, direction: lower_is_better, labels: [la_code, la_name]}
sources:
  - name: api
    type: http
    base_url: URL/v1/
    max_body_size: LIMIT
    http_config:
      oauth2:
        client_id: carewatch
        client_secret_file: SECRET
        token_url: URL/oauth/token
        scopes: [read]
collectors:
  - name: inspections
    source: api
    schedule: "@daily"
    http:
      url: inspections?region=london
      method: POST
      body: '{"criteria": {"geographicLevels": ["LA"]}}'
      rows: ROWS
      fields: {la_code: location.code, la_name: location.name, grade: judgement, vacancy: vacancy.rate, published: published}
    period_column: published
    metrics:
      - kpi: ilacs_grade
        value_column: grade
        value_map: {Outstanding: 4, Good: 3, Requires improvement: 2, Inadequate: 1}
        labels: {la_code: la_code, la_name: la_name}
      - kpi: vacancy_ratio
        value_column: vacancy
        percent: true
        labels: {la_code: la_code, la_name: la_name}
`

func newHTTPSource(t *testing.T, a *api, limit, rows string) (kpi.Source, *config.Config) {
	t.Helper()
	dir := t.TempDir()
	secret := filepath.Join(dir, "client_secret")
	if err := os.WriteFile(secret, []byte(apiClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if limit == "" {
		limit = "1MiB"
	}
	if rows == "" {
		rows = "$.data[*]"
	}
	text := strings.NewReplacer("URL", a.URL, "SECRET", secret, "LIMIT", limit, "ROWS", rows).Replace(httpConfig)
	cfg, err := config.Parse([]byte(text), filepath.Join(dir, "carewatch.yml"))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	src, err := newSourceFor(cfg, &cfg.Collectors[0])
	if err != nil {
		t.Fatal(err)
	}
	return src, cfg
}

func collectHTTP(ctx context.Context, src kpi.Source, cfg *config.Config) ([]kpi.Observation, error) {
	return src.Collect(ctx, kpi.RunInfo{Collector: "inspections", At: time.Now(), Location: cfg.Location})
}

// A JSON API behind OAuth2 client credentials, its secret in a file, gives
// the expected series: grades from words, rates from percentages, null and
// x missing, the period from each row.
func TestJSONAPIBehindOAuth2GivesTheExpectedSeries(t *testing.T) {
	a := newAPI(t)
	src, cfg := newHTTPSource(t, a, "", "")
	obs, err := collectHTTP(t.Context(), src, cfg)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	got := map[string]kpi.Value{}
	day := time.Date(2025, 3, 31, 0, 0, 0, 0, cfg.Location)
	for _, o := range obs {
		got[o.KPI.Name+kpi.LabelString(o.KPI, o.Labels)] = o.Value
		if !o.Period.Equal(day) {
			t.Errorf("%s: period %s, want 31 March 2025", o.KPI.Name, o.Period)
		}
	}
	want := map[string]kpi.Value{
		`ilacs_grade{la_code="E09000008",la_name="Croydon"}`:     kpi.Known(3),
		`ilacs_grade{la_code="E09000023",la_name="Lewisham"}`:    kpi.Known(2),
		`ilacs_grade{la_code="E09000011",la_name="Greenwich"}`:   kpi.Known(4),
		`vacancy_ratio{la_code="E09000008",la_name="Croydon"}`:   kpi.Known(0.192),
		`vacancy_ratio{la_code="E09000023",la_name="Lewisham"}`:  kpi.Missing,
		`vacancy_ratio{la_code="E09000011",la_name="Greenwich"}`: kpi.Missing,
	}
	if len(got) != len(want) {
		t.Errorf("got %v", got)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s = %v (present %t), want %v", k, g, ok, w)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tokens != 1 || a.lastReq.auth != "Bearer "+apiToken {
		t.Errorf("tokens fetched %d, authorization %q", a.tokens, a.lastReq.auth)
	}
	if a.lastReq.method != http.MethodPost || a.lastReq.body != `{"criteria": {"geographicLevels": ["LA"]}}` || a.lastReq.query != "region=london" {
		t.Errorf("request %+v", a.lastReq)
	}
	if _, q := src.(*collector.HTTPSource).Describe(); !strings.HasPrefix(q, "POST "+a.URL+"/v1/inspections?region=london\n{") {
		t.Errorf("Describe() = %q", q)
	}
	if strings.Contains(a.URL, apiClientSecret) {
		t.Fatal("test setup")
	}
}

// Each bad answer fails the run, naming the URL, the path or row, and the
// cause; what retrying cannot mend is Permanent.
func TestBadAnswersFailTheirRunNamingURLPathAndCause(t *testing.T) {
	jsonAnswer := func(status int, body string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, body)
		}
	}
	for _, tc := range []struct {
		name      string
		answer    func(http.ResponseWriter, *http.Request)
		limit     string
		rows      string
		timeout   time.Duration
		want      string // after `collector "inspections": source "api": POST URL`
		permanent bool
	}{
		{name: "HTML where JSON was expected", answer: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, "<!DOCTYPE html><html><body>Please sign in</body></html>")
		}, want: ` answered text/html; charset=utf-8, not JSON (a login, error or maintenance page?); it begins "<!DOCTYPE html><html><body>Please sign in</body></html>"`, permanent: true},
		{name: "HTML sent as JSON", answer: jsonAnswer(200, "  <html>maintenance</html>"),
			want: ` answered application/json, not JSON (a login, error or maintenance page?)`, permanent: true},
		{name: "HTTP 500 may be retried", answer: jsonAnswer(500, `{"error": "database unavailable"}`),
			want: `: HTTP 500 Internal Server Error: "{\"error\": \"database unavailable\"}"`},
		{name: "HTTP 429 may be retried", answer: jsonAnswer(429, ``), want: `: HTTP 429 Too Many Requests`},
		{name: "HTTP 404 is not retried", answer: jsonAnswer(404, `not found`), want: `: HTTP 404 Not Found: "not found"`, permanent: true},
		{name: "a timeout", answer: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, timeout: 200 * time.Millisecond, want: `: context deadline exceeded`},
		{name: "a body past the limit", answer: func(w http.ResponseWriter, _ *http.Request) {
			body := `{"data": [` + strings.Repeat(`{"x": 1},`, 2000) + `{}]}`
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			io.WriteString(w, body)
		}, limit: "4KiB",
			want: `: the answer is 17.6KiB, more than the source's max_body_size (4KiB)`, permanent: true},
		{name: "a body past the limit without a length", answer: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			for range 100 {
				io.WriteString(w, strings.Repeat(" ", 100))
				w.(http.Flusher).Flush()
			}
		}, limit: "4KiB", want: `: the answer is larger than the source's max_body_size (4KiB)`, permanent: true},
		{name: "JSON cut short", answer: jsonAnswer(200, inspectionsJSON[:200]),
			want: ` answered application/json that is not JSON: the answer ends in the middle of the document (cut short?)`, permanent: true},
		{name: "not JSON", answer: jsonAnswer(200, `{"data": [1, 2,, 3]}`),
			want: ` answered application/json that is not JSON: invalid character ',' looking for beginning of value at byte 16`, permanent: true},
		{name: "CSV where JSON was expected", answer: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/csv")
			io.WriteString(w, "la_code,grade\nE09000008,Good\n")
		}, want: ` answered text/csv that is not JSON: invalid character 'l' looking for beginning of value at byte 1`, permanent: true},
		{name: "the rows are not where the path says", answer: jsonAnswer(200, `{"results": [], "meta": {}}`),
			want: `: the rows path $.data[*] finds nothing in the answer; the answer's top-level members: "meta", "results"`, permanent: true},
		{name: "a renamed field", answer: jsonAnswer(200, strings.ReplaceAll(inspectionsJSON, `"code"`, `"ons_code"`)),
			want: `: field "la_code" (path location.code) is in none of the 3 rows found by $.data[*]: has the API renamed it?`, permanent: true},
		{name: "an object where a value was expected", answer: jsonAnswer(200, strings.Replace(inspectionsJSON, `"judgement": "Good"`, `"judgement": {"overall": "Good"}`, 1)),
			want: `: $.data[0].judgement (field "grade") is an object, not a value`, permanent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAPI(t)
			a.setAnswer(tc.answer)
			src, cfg := newHTTPSource(t, a, tc.limit, tc.rows)
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			obs, err := collectHTTP(ctx, src, cfg)
			if err == nil {
				t.Fatalf("no error; %d observations", len(obs))
			}
			prefix := `collector "inspections": source "api": POST ` + a.URL + `/v1/inspections?region=london`
			if got := err.Error(); !strings.HasPrefix(got, prefix) || !strings.Contains(got, tc.want) {
				t.Errorf("error:\n%s\nwant:\n%s…%s", got, prefix, tc.want)
			}
			if obs != nil {
				t.Errorf("%d observations from a failed run", len(obs))
			}
			if collector.IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %t, want %t", collector.IsPermanent(err), tc.permanent)
			}
		})
	}
}

// A row that does not map names the URL, the row's path and the column.
func TestAnUnknownWordInTheValueMapNamesTheRow(t *testing.T) {
	a := newAPI(t)
	a.setAnswer(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, strings.Replace(inspectionsJSON, `"Requires improvement"`, `"Adequate"`, 1))
	})
	src, cfg := newHTTPSource(t, a, "", "")
	_, err := collectHTTP(t.Context(), src, cfg)
	want := `collector "inspections": POST ` + a.URL + `/v1/inspections?region=london, $.data[1], column "grade": value "Adequate" is not one of the value_map's words ("Good", "Inadequate", "Outstanding", "Requires improvement")`
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant:\n%s", err, want)
	}
	if !collector.IsPermanent(err) {
		t.Error("not permanent")
	}
}

// A failed request between two good ones returns nothing, and changes
// nothing for the next run.
func TestAFailedRequestBetweenGoodOnesChangesNothing(t *testing.T) {
	a := newAPI(t)
	src, cfg := newHTTPSource(t, a, "", "")
	first, err := collectHTTP(t.Context(), src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	good := a.answer
	a.setAnswer(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	if obs, err := collectHTTP(t.Context(), src, cfg); err == nil || obs != nil {
		t.Fatalf("500: %d observations, err %v", len(obs), err)
	}
	a.setAnswer(good)
	again, err := collectHTTP(t.Context(), src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(first) {
		t.Fatalf("%d observations after the failure, %d before", len(again), len(first))
	}
	for i := range first {
		if again[i].Value != first[i].Value || kpi.LabelString(again[i].KPI, again[i].Labels) != kpi.LabelString(first[i].KPI, first[i].Labels) {
			t.Errorf("observation %d: %v after, %v before", i, again[i], first[i])
		}
	}
}

// bearerCSVSource is the source of a collector reading the CSV export
// baseURL/export.csv (vacancy as percentages, by team) with the bearer
// token t0ken, read from a file.
func bearerCSVSource(t *testing.T, baseURL string) (kpi.Source, *config.Config) {
	t.Helper()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("URL", baseURL, "TOKEN", token).Replace(`
kpis: [{name: vacancy_ratio, help: h, direction: lower_is_better, labels: [team]}]
sources:
  - {name: hr_api, type: http, base_url: URL, http_config: {authorization: {credentials_file: TOKEN}}}
collectors:
  - name: hr
    source: hr_api
    schedule: "@daily"
    http: {url: /export.csv, format: csv}
    metrics: [{kpi: vacancy_ratio, value_column: vacancy, percent: true, labels: {team: team}}]
`)
	cfg, err := config.Parse([]byte(text), filepath.Join(dir, "c.yml"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := newSourceFor(cfg, &cfg.Collectors[0])
	if err != nil {
		t.Fatal(err)
	}
	return src, cfg
}

// A CSV API, a bearer token from a file, and rows found without a
// wildcard.
func TestCSVAnswerWithABearerTokenFromAFile(t *testing.T) {
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		io.WriteString(w, "\ufeffteam,vacancy\r\nnorth,12.5%\r\nsouth,\r\n")
	}))
	defer srv.Close()
	src, cfg := bearerCSVSource(t, srv.URL)
	obs, err := src.Collect(t.Context(), kpi.RunInfo{Collector: "hr", At: time.Now(), Location: cfg.Location})
	if err != nil {
		t.Fatal(err)
	}
	if gotAuth != "Bearer t0ken" {
		t.Errorf("Authorization %q", gotAuth)
	}
	if len(obs) != 2 || obs[0].Value != kpi.Known(0.125) || obs[1].Value != kpi.Missing {
		t.Errorf("observations %v", obs)
	}
}

// A redirect to another port of the same host is refused: the source's
// bearer token never reaches it.
func TestCredentialsNeverFollowARedirectToAnotherPort(t *testing.T) {
	var leaked string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = r.Header.Get("Authorization")
		io.WriteString(w, "team,vacancy\r\nnorth,1%\r\n")
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/export.csv", http.StatusFound)
	}))
	defer srv.Close()
	src, cfg := bearerCSVSource(t, srv.URL)
	_, err := src.Collect(t.Context(), kpi.RunInfo{Collector: "hr", At: time.Now(), Location: cfg.Location})
	if err == nil || !strings.Contains(err.Error(), "redirect") || !strings.Contains(err.Error(), "was refused") {
		t.Errorf("Collect = %v, want the redirect refused", err)
	}
	if leaked != "" {
		t.Errorf("the bearer token reached another port: %q", leaked)
	}
}

// Rows found by a path to one array, without [*], are that array's elements.
func TestRowsPathToAnArrayWithoutAWildcard(t *testing.T) {
	a := newAPI(t)
	src, cfg := newHTTPSource(t, a, "", "$.data")
	obs, err := collectHTTP(t.Context(), src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 6 {
		t.Errorf("%d observations, want 6", len(obs))
	}
}

// Basic auth takes its password from a file, and a TLS server is trusted
// through the source's tls_config.
func TestBasicAuthWithAPasswordFileOverTLS(t *testing.T) {
	var user, pass string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ = r.BasicAuth()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[{"team": "north", "vacancy": 0.25}]`)
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pemCert(srv), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte("pa55\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("URL", srv.URL).Replace(`
kpis: [{name: vacancy_ratio, help: h, direction: lower_is_better, labels: [team]}]
sources:
  - name: hr_api
    type: http
    base_url: URL
    http_config: {basic_auth: {username: carewatch, password_file: password}, tls_config: {ca_file: ca.pem}}
collectors:
  - name: hr
    source: hr_api
    schedule: "@daily"
    http: {url: /teams, rows: "$[*]"}
    metrics: [{kpi: vacancy_ratio, value_column: vacancy, labels: {team: team}}]
`)
	cfg, err := config.Parse([]byte(text), filepath.Join(dir, "c.yml"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := newSourceFor(cfg, &cfg.Collectors[0])
	if err != nil {
		t.Fatal(err)
	}
	obs, err := src.Collect(t.Context(), kpi.RunInfo{Collector: "hr", At: time.Now(), Location: cfg.Location})
	if err != nil {
		t.Fatal(err)
	}
	if user != "carewatch" || pass != "pa55" {
		t.Errorf("basic auth %q:%q", user, pass)
	}
	if len(obs) != 1 || obs[0].Value != kpi.Known(0.25) {
		t.Errorf("observations %v", obs)
	}
}

func pemCert(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}
