package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

// TestCollectDryRunPrintsTheReturnsKPIs runs `carewatch check` and
// `carewatch collect NAME --dry-run` on each returns example as it ships,
// over the returns the demo writes beside the demo configuration, and finds
// every series the demo's own Go computation expects in what it prints.
func TestCollectDryRunPrintsTheReturnsKPIs(t *testing.T) {
	ctx := context.Background()
	db, err := sqlx.Open("postgres", pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := demo.Setup(ctx, db, demo.Options{Seed: 5, Today: time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	// The examples' folders, as in the repository: annex-a/, ssda903/ and
	// cld/ beside demo/, whose returns/ the demo writes.
	root := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	// As carewatch-demo writes them, beside its configuration.
	r := writeSampledReturns(t, db, filepath.Join(root, "demo", "returns"))
	want := r.Figures()
	for _, ex := range []struct{ dir, collectors string }{
		{"annex-a", "annex_a_assessments"},
		{"ssda903", "ssda903_placements"},
		{"cld", "cld_adults"},
	} {
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", ex.dir, "carewatch.yml"))
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(root, ex.dir, "carewatch.yml")
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := runCheck(ctx, file, false, &out); err != nil {
			t.Fatalf("check %s: %v\n%s", ex.dir, err, out.String())
		}
		out.Reset()
		for _, name := range strings.Fields(ex.collectors) {
			if err := runCollect(ctx, file, name, true, &out, logger); err != nil {
				t.Fatalf("collect %s --dry-run: %v", name, err)
			}
		}
		printed := out.String()
		t.Logf("%s:\n%s", ex.dir, printed)
		checked := 0
		for k, v := range want {
			if !strings.HasPrefix(k.Labels, "source="+strings.ReplaceAll(ex.dir, "-", "_")) || strings.Contains(k.Labels, ",team=") && !strings.Contains(k.Labels, "team=all") {
				continue
			}
			if ex.dir == "annex-a" && k.KPI != "children_annex_a_assessment_within_45wd_ratio" {
				continue
			}
			line := k.KPI + " "
			if !strings.Contains(printed, line) || !strings.Contains(printed, v.String()) {
				t.Errorf("%s: %s = %v not printed", ex.dir, k, v)
			}
			checked++
		}
		if checked < len(strings.Fields(ex.collectors)) {
			t.Errorf("%s: only %d series checked", ex.dir, checked)
		}
	}
}

// writeSampledReturns writes the statutory returns of the council in db into
// dir, as carewatch-demo does, and returns them. It keeps a sample of the
// largest parts (List 1's contacts, which no KPI reads, and a fifth of CLD's
// adults with all their rows), so that collecting them runs in reasonable
// time under the race detector; examples/ compares every collector over the
// demo's returns in full.
func writeSampledReturns(t *testing.T, db *sqlx.DB, dir string) *demo.Returns {
	t.Helper()
	r, err := demo.BuildReturns(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	r.Contacts = r.Contacts[:len(r.Contacts)/8]
	var events []demo.CLDEvent
	for _, e := range r.CLD {
		if strings.HasSuffix(e.Person, "0") || strings.HasSuffix(e.Person, "5") {
			events = append(events, e)
		}
	}
	r.CLD = events
	if err := demo.WriteReturns(r, dir); err != nil {
		t.Fatal(err)
	}
	return r
}
