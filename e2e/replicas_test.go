package e2e_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/carewatch/carewatch/e2e"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

// Two replicas sharing a store, the second started several seconds after
// the first, record exactly one run per collector per tick.
func TestTwoReplicasRunEachTickOnce(t *testing.T) {
	storeDSN, sourceDSN := pgtest.NewDatabase(t), sourceWithOpenCases(t)
	const every = 3 * time.Second
	file := e2e.WriteFile(t, "carewatch.yml", fmt.Sprintf(`
store:
  dsn_env: CW_STORE_URL
kpis:
  - {name: children_open_cases, help: Open cases., direction: lower_is_better, labels: [team]}
sources:
  - {name: cms, type: postgres, dsn_env: CW_SOURCE_URL}
collectors:
  - name: open_cases
    source: cms
    schedule: "@every %[1]s"
    query: SELECT team, open FROM open_cases
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]
  - name: open_cases_again
    source: cms
    schedule: "@every %[1]s"
    query: SELECT team, open + 1 AS open FROM open_cases
    metrics: [{kpi: children_open_cases, value_column: open, labels: {team: team}}]
`, every))
	binary := e2e.BuildCommand(t, "./cmd/carewatch")
	env := []string{"CW_STORE_URL=" + storeDSN, "CW_SOURCE_URL=" + sourceDSN}
	start := func(name string) *e2e.Carewatch {
		addr := e2e.FreeAddr(t)
		cw := &e2e.Carewatch{Addr: addr, URL: "http://" + addr}
		cw.Process = e2e.StartProcess(t, name, binary, env, "run", "--config.file="+file,
			"--web.listen-address="+addr, "--log.level=debug", "--shutdown.timeout=10s")
		cw.WaitHTTP(t, cw.URL+"/-/ready")
		return cw
	}
	first := start("carewatch-1")
	time.Sleep(4 * time.Second)
	second := start("carewatch-2")
	both := time.Now()
	time.Sleep(5*every + every/2)
	first.Stop(t)
	second.Stop(t)

	db := sqlx.MustOpen("postgres", storeDSN)
	defer db.Close()
	for _, name := range []string{"open_cases", "open_cases_again"} {
		var starts []time.Time
		if err := db.Select(&starts, `SELECT started_at FROM runs WHERE collector = $1 ORDER BY started_at`, name); err != nil {
			t.Fatal(err)
		}
		var claims int
		if err := db.Get(&claims, `SELECT count(*) FROM run_claims WHERE collector = $1`, name); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d runs, %d claimed ticks: %v", name, len(starts), claims, starts)
		if len(starts) != claims {
			t.Errorf("%s: %d runs for %d ticks", name, len(starts), claims)
		}
		for i := 1; i < len(starts); i++ {
			if gap := starts[i].Sub(starts[i-1]); gap < every-time.Second {
				t.Errorf("%s ran twice for one tick: at %s and %s", name, starts[i-1].Format(time.StampMilli), starts[i].Format(time.StampMilli))
			}
		}
		after := 0
		for _, s := range starts {
			if s.After(both) {
				after++
			}
		}
		if after < 5 {
			t.Errorf("%s: %d runs while both replicas ran, want 5", name, after)
		}
	}
}
