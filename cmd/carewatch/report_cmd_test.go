package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/store"
)

// The pack sits behind the same --web.config.file as /metrics.
func TestReportIsBehindTheWebConfig(t *testing.T) {
	newCouncil(t)
	web := filepath.Join(t.TempDir(), "web.yml")
	// The password is "committee-reader".
	if err := os.WriteFile(web, []byte("basic_auth_users:\n  scrutiny: $2a$10$QUn8v9azROOpuev.esjaOOcuvxVK.5QJnXwUuEAre62YpmPeqPZFG\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := startDaemonWeb(t, withoutRunOnStart(t), web)
	if code, _ := getPath(t, in.url+"/report", "", ""); code != http.StatusUnauthorized {
		t.Errorf("/report without credentials: %d, want 401", code)
	}
	if code, _ := getPath(t, in.url+"/report", "scrutiny", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("/report with a wrong password: %d, want 401", code)
	}
	code, body := getPath(t, in.url+"/report", "scrutiny", "committee-reader")
	if code != http.StatusOK || !strings.Contains(body, "<h1>Social care performance</h1>") {
		t.Errorf("/report with credentials: %d, want the pack:\n%.300s", code, body)
	}
	if code, body := getPath(t, in.url+"/report?period=November", "scrutiny", "committee-reader"); code != http.StatusBadRequest || !strings.Contains(body, "YYYY-MM") {
		t.Errorf("/report?period=November: %d %q, want 400 naming the form", code, body)
	}
}

func getPath(t *testing.T, url, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// carewatch comment refuses what the pack could not show, and keeps every
// version of what it stores.
func TestCommentCommand(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	t.Setenv(demo.StoreDSNEnv, dsn)
	configFile := writeConfig(t, demoConfigText(t))
	comment := func(stdin string, args ...string) (int, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := runWithInput(append([]string{"--config.file=" + configFile, "comment"}, args...), strings.NewReader(stdin), &out, &errOut)
		return code, out.String() + errOut.String()
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"children_caseload", "text"}, `no KPI "children_caseload" in the configuration`},
		{[]string{"children_sw_caseload_average", "text", "--series", "ward=north"}, `children_sw_caseload_average has no label "ward" (its labels: service, team)`},
		{[]string{"children_sw_caseload_average", "text", "--series", "north"}, `"north" is not a label=value pair`},
		{[]string{"children_sw_caseload_average", "text", "--period", "Nov 2026"}, `period "Nov 2026" is not a month written as YYYY-MM`},
		{[]string{"children_sw_caseload_average", "   "}, `the commentary is empty`},
		{[]string{"children_sw_caseload_average"}, `the commentary is empty`}, // and nothing on standard input
	} {
		if code, out := comment("", tc.args...); code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("comment %q: exit %d, %q; want a failure saying %q", tc.args, code, out, tc.want)
		}
	}
	if code, out := comment("", "children_sw_caseload_average", "First draft.", "--series", "team=Family Support East", "--period", "2026-11"); code != 0 {
		t.Fatalf("comment: exit %d: %s", code, out)
	}
	code, out := comment("Caseloads rose as two agency workers left.\n", "children_sw_caseload_average", "-", "--series", "team=Family Support East", "--period", "2026-11")
	if code != 0 || !strings.Contains(out, "commentary stored for children_sw_caseload_average (team=Family Support East), November 2026") {
		t.Fatalf("comment from standard input: exit %d: %s", code, out)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, dsn, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.Comments(ctx, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Text != "Caseloads rose as two agency workers left." || got[0].Labels["team"] != "Family Support East" {
		t.Errorf("comments in force for November: %+v, want the second", got)
	}
	var versions int
	if err := st.DB().QueryRowContext(ctx, `SELECT count(*) FROM comments`).Scan(&versions); err != nil || versions != 2 {
		t.Errorf("%d versions kept (%v), want both", versions, err)
	}
}

// carewatch report writes a past month's pack, and refuses a period it
// cannot read.
func TestReportCommandWritesAMonthsPack(t *testing.T) {
	t.Setenv(demo.StoreDSNEnv, pgtest.NewDatabase(t))
	configFile := writeConfig(t, demoConfigText(t))
	var out, errOut bytes.Buffer
	if code := run([]string{"--config.file=" + configFile, "report", "--period", "2026-13"}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "YYYY-MM") {
		t.Errorf("report --period 2026-13: exit %d, %q; want a failure naming the form", code, errOut.String())
	}
	file := filepath.Join(t.TempDir(), "pack.html")
	if code := run([]string{"--config.file=" + configFile, "report", "--period", "2026-11", "--out", file}, &out, &errOut); code != 0 {
		t.Fatalf("report: exit %d: %s", code, errOut.String())
	}
	page, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Performance to <strong>November 2026</strong>", "No values stored yet."} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the empty store's November pack does not say %q", want)
		}
	}
}
