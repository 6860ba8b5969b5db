package collector_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
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

// BenchmarkQuery1M reads a 1,000,000-row person-level CSV two ways, one
// after the other in each iteration so that both meet the same machine:
// plain, as carewatch reads any file (every row parsed and filtered, one
// mapped), and with a query that groups all of them by team (the same
// reading, then the rows loaded into the engine and the query run). It
// reports the seconds of each and query ÷ plain, in wall-clock time and in
// CPU time (the process's, which a busy machine disturbs less).
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
	var sources [2]kpi.Source
	for i := range sources {
		if sources[i], err = newSourceFor(cfg, &cfg.Collectors[i]); err != nil {
			b.Fatal(err)
		}
	}
	want := [2]int{1, 40}
	var wall, cpu [2]time.Duration
	for b.Loop() {
		for i, src := range sources {
			runtime.GC() // neither pays for the other's garbage
			w, c := time.Now(), cpuTime(b)
			obs, err := src.Collect(b.Context(), kpi.RunInfo{Collector: cfg.Collectors[i].Name, At: time.Now(), Location: cfg.Location})
			wall[i] += time.Since(w)
			cpu[i] += cpuTime(b) - c
			if err != nil {
				b.Fatal(err)
			}
			if len(obs) != want[i] {
				b.Fatalf("%s: %d observations, want %d", cfg.Collectors[i].Name, len(obs), want[i])
			}
		}
	}
	n := float64(b.N)
	b.ReportMetric(wall[0].Seconds()/n, "plain-s/op")
	b.ReportMetric(wall[1].Seconds()/n, "query-s/op")
	b.ReportMetric(wall[1].Seconds()/wall[0].Seconds(), "query/plain")
	b.ReportMetric(cpu[0].Seconds()/n, "plain-cpu-s/op")
	b.ReportMetric(cpu[1].Seconds()/n, "query-cpu-s/op")
	b.ReportMetric(cpu[1].Seconds()/cpu[0].Seconds(), "query/plain-cpu")
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
