package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/internal/debian"
)

// axeDir holds the package.json that pins axe-core; .ci/run installs it
// with npm ci.
const axeDir = "testdata/axe"

// axeSource returns axe-core's script; the test fails, saying how to
// install it, when it is missing.
func axeSource(t *testing.T) string {
	t.Helper()
	script := filepath.Join(axeDir, "node_modules", "axe-core", "axe.min.js")
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatalf("axe-core is not installed (%v): install it with (cd cmd/carewatch/%s && npm ci --no-audit --no-fund), as .ci/run does", err, axeDir)
	}
	return string(b)
}

// artefactDir is where the test leaves its screenshot and PDF for people to
// look at: $CAREWATCH_TEST_ARTIFACTS, else a folder in the system's temp dir.
func artefactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CAREWATCH_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "carewatch-report-test")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts Debian's chromium headless with a fresh profile.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := debian.Find("chromium", "chromium")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1024),
	)
	t.Cleanup(cancelAlloc)
	return alloc
}

// tab opens a tab: the browser's first from the allocator's context, a new
// one in the same browser from a tab's. listen, if set, hears its events.
func tab(t *testing.T, parent context.Context, listen func(any)) context.Context {
	t.Helper()
	var opts []chromedp.ContextOption
	if listen != nil {
		opts = append(opts, chromedp.WithListener(listen))
	}
	ctx, cancel := chromedp.NewContext(parent, opts...)
	t.Cleanup(cancel)
	return ctx
}

// axeViolation is what the test reports of one axe-core violation.
type axeViolation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"`
	Help    string   `json:"help"`
	Targets []string `json:"targets"`
}

// checkAxe runs axe-core in the loaded page and fails the test on any
// violation, WCAG 2.2 AA rules and best practices alike.
func checkAxe(t *testing.T, ctx context.Context, axe, what string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](axe)); err != nil {
		t.Fatalf("injecting axe-core into %s: %v", what, err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ['violations']}).then(r => JSON.stringify({
		rules: r.passes.length + r.violations.length + r.incomplete.length,
		violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map(n => n.target.join(' '))}))
	}))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("running axe-core on %s: %v", what, err)
	}
	var res struct {
		Rules      int            `json:"rules"`
		Violations []axeViolation `json:"violations"`
	}
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatalf("axe-core's answer on %s: %v", what, err)
	}
	if res.Rules == 0 {
		t.Fatalf("axe-core checked no rule on %s", what)
	}
	for _, v := range res.Violations {
		t.Errorf("axe-core on %s: %s (%s): %s, at %s", what, v.ID, v.Impact, v.Help, strings.Join(v.Targets, "; "))
	}
}

func headings(t *testing.T, ctx context.Context, selector string) []string {
	t.Helper()
	hs, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('`+selector+`')].map(h => h.textContent.trim())`))
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

var spaces = regexp.MustCompile(`\s+`)

// The demo council's pack, served by a running daemon, passes axe-core in
// headless Chromium, prints to A4 with every section heading, and the same
// pack written by `carewatch report --out` renders with the network off.
func TestReportPassesAxeAndPrintsInChromium(t *testing.T) {
	axe := axeSource(t)
	pdftotext, err := debian.Find("pdftotext", "poppler-utils")
	if err != nil {
		t.Fatal(err)
	}
	c := newCouncil(t)
	configFile := withoutRunOnStart(t)
	in := startDaemon(t, configFile)

	// Four months of the demo council, collected on the last day of each:
	// 31 March, then 30 April, 31 May and 30 June.
	for i, days := range []int{0, 30, 31, 30} {
		if days > 0 {
			if err := demo.Advance(t.Context(), c.source, days); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range []string{"caseload", "workforce", "children_assessments", "adults_waiting", "dfe_workforce"} {
			if i > 0 && name == "dfe_workforce" {
				continue
			}
			if err := in.d.runNow(t.Context(), name); err != nil {
				t.Fatalf("collector %s: %v", name, err)
			}
		}
	}
	today, err := demo.ReportingDate(t.Context(), c.source)
	if err != nil {
		t.Fatal(err)
	}
	comment := "Caseloads rose as two agency social workers left; the recruitment drive closes on 15 December."
	var out, errOut bytes.Buffer
	if code := run([]string{"--config.file=" + configFile, "comment", "children_sw_caseload_average", comment,
		"--series", "team=Family Support East", "--period", today.Format("2006-01")}, &out, &errOut); code != 0 {
		t.Fatalf("carewatch comment: exit %d: %s", code, errOut.String())
	}

	alloc := browser(t)
	ctx := tab(t, alloc, nil)
	if err := chromedp.Do(ctx, chromedp.Navigate(in.url+"/report")); err != nil {
		t.Fatal(err)
	}
	sections := headings(t, ctx, "main h2")
	cfg, err := loadConfig(configFile)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Contents", "Exceptions"}
	for _, s := range cfg.Report.Sections {
		want = append(want, s.Title)
	}
	if strings.Join(sections, "\n") != strings.Join(want, "\n") {
		t.Fatalf("section headings:\n%s\nwant:\n%s", strings.Join(sections, "\n"), strings.Join(want, "\n"))
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		comment,                           // the commentary on the red team
		"Family Support East",             // the red team
		"Statistical neighbours' average", // benchmarks from DfE's file
		"England",
		"Red or amber with no commentary yet",
		"Average caseload (DfE census): E09000008, Croydon (Red)", // red, no commentary
		"Performance to " + today.Format("January 2006"),
		"Every series is up to date.",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("the pack does not say %q", s)
		}
	}
	sparks, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('svg.spark[role=img][aria-label]').length`))
	if err != nil || sparks < 10 {
		t.Errorf("%d sparklines with a text alternative (%v), want one per series", sparks, err)
	}
	checkAxe(t, ctx, axe, "/report")

	dir := artefactDir(t)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pack.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	// Printed as the page asks (A4 landscape), every section heading is in
	// the PDF.
	pdf, err := chromedp.Run(ctx, chromedp.PrintToPDF(
		func(p *page.PrintToPDFParams) { yes := true; p.PreferCSSPageSize = &yes },
		chromedp.PDFPrintBackground(),
	))
	if err != nil {
		t.Fatal(err)
	}
	pdfFile := filepath.Join(dir, "pack.pdf")
	if err := os.WriteFile(pdfFile, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s, PDF %s", filepath.Join(dir, "pack.png"), pdfFile)
	printed, err := exec.CommandContext(t.Context(), pdftotext, "-layout", pdfFile, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	printedText := spaces.ReplaceAllString(string(printed), " ")
	for _, h := range want[1:] {
		if !strings.Contains(printedText, h) {
			t.Errorf("the printed pack lacks the heading %q", h)
		}
	}
	if pages := bytes.Count(printed, []byte("\f")); pages < len(want)-1 {
		t.Errorf("the pack printed on %d pages, want each of its %d sections to start a page", pages, len(want)-2)
	}

	// The file written by carewatch report renders the same pack with the
	// network off: nothing but the file itself is requested.
	file := filepath.Join(t.TempDir(), "pack.html")
	if code := run([]string{"--config.file=" + configFile, "report", "--out", file}, &out, &errOut); code != 0 {
		t.Fatalf("carewatch report: exit %d: %s", code, errOut.String())
	}
	var mu sync.Mutex
	var requests []string
	offline := tab(t, ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requests = append(requests, e.Request.URL)
			mu.Unlock()
		}
	})
	err = chromedp.Do(offline,
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, t, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
				MatchedNetworkConditions: []*network.Conditions{{Offline: true, DownloadThroughput: -1, UploadThroughput: -1}},
			})
			return err
		}),
		chromedp.Navigate("file://"+file),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := headings(t, offline, "main h2"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the written pack's sections:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	checkAxe(t, offline, axe, "the written pack")
	mu.Lock()
	defer mu.Unlock()
	for _, u := range requests {
		if u != "file://"+file {
			t.Errorf("the written pack requested %s", u)
		}
	}
}
