package collector_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// writePersonLevelCSV writes a synthetic person-level return of n rows, as
// councils export them for Annex A or SSDA903: a synthetic child reference,
// team, age band, two dates written the UK way, a number with suppressed
// cells. No row describes a real person.
func writePersonLevelCSV(tb testing.TB, path string, n int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "child_ref,team,age_band,referral_date,decision_date,contacts")
	bands := []string{"0-4", "5-9", "10-15", "16-17"}
	start := time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		referral := start.AddDate(0, 0, i%365)
		decision := referral.AddDate(0, 0, i%7)
		contacts := fmt.Sprint(i % 13)
		if i%97 == 0 {
			contacts = "x"
		}
		fmt.Fprintf(w, "C%07d,team %02d,%s,%s,%s,%s\n", i, i%40, bands[i%4],
			referral.Format("02/01/2006"), decision.Format("02/01/2006"), contacts)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkQuery1M reads a 1,000,000-row person-level CSV two ways in the
// same run: plain, as carewatch reads any file (every row parsed and
// filtered, one mapped), and with a query that groups all of them by team
// (the same reading, then every row loaded into the engine and the query
// run). scripts/bench reports query ÷ plain.
func BenchmarkQuery1M(b *testing.B) {
	dir := b.TempDir()
	writePersonLevelCSV(b, filepath.Join(dir, "referrals.csv"), 1_000_000)
	const cfgText = `
kpis:
  - {name: referral_decision_wait_average, help: h, direction: lower_is_better, labels: [team]}
sources:
  - {name: returns, type: file, directory: DIR, max_file_size: 256MiB}
collectors:
  - name: plain
    source: returns
    schedule: "@daily"
    file: {path: referrals.csv}
    filters: [{column: child_ref, equals: C0000007}]
    metrics:
      - {kpi: referral_decision_wait_average, value_column: contacts, labels: {team: team}}
  - name: query
    source: returns
    schedule: "@daily"
    file: {path: referrals.csv}
    query: |
      SELECT team, AVG(julianday(decision_date) - julianday(referral_date)) AS days
        FROM referrals
       WHERE contacts IS NOT NULL
       GROUP BY team
    metrics:
      - {kpi: referral_decision_wait_average, value_column: days, labels: {team: team}}
`
	cfg, err := config.Parse([]byte(strings.Replace(cfgText, "DIR", dir, 1)), filepath.Join(dir, "c.yml"))
	if err != nil {
		b.Fatal(err)
	}
	for i, name := range []string{"plain", "query"} {
		cc := &cfg.Collectors[i]
		want := map[string]int{"plain": 1, "query": 40}[name]
		src, err := newSourceFor(cfg, cc)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				obs, err := src.Collect(b.Context(), kpi.RunInfo{Collector: cc.Name, At: time.Now(), Location: cfg.Location})
				if err != nil {
					b.Fatal(err)
				}
				if len(obs) != want {
					b.Fatalf("%d observations, want %d", len(obs), want)
				}
			}
		})
	}
}
