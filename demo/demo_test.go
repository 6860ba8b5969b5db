package demo_test

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"
	"gopkg.in/yaml.v3"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const configFile = "../examples/demo/carewatch.yml"

// start is the demo's first reporting date in these tests: a Tuesday, with
// Easter 2026 (3 and 6 April) a few days ahead.
var start = date("2026-03-31")

func newSource(t *testing.T) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("postgres", pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func setUp(t *testing.T, seed uint64) *sqlx.DB {
	t.Helper()
	db := newSource(t)
	begun := time.Now()
	if err := demo.Setup(context.Background(), db, demo.Options{Seed: seed, Today: start}); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Logf("Setup took %v", time.Since(begun))
	return db
}

func advance(t *testing.T, db *sqlx.DB, days int) {
	t.Helper()
	if err := demo.Advance(context.Background(), db, days); err != nil {
		t.Fatalf("Advance(%d): %v", days, err)
	}
}

func expected(t *testing.T, db *sqlx.DB) demo.Figures {
	t.Helper()
	f, err := demo.Expected(context.Background(), db)
	if err != nil {
		t.Fatalf("Expected: %v", err)
	}
	return f
}

// checksums fingerprints every table the demo writes.
func checksums(t *testing.T, db *sqlx.DB) map[string]string {
	t.Helper()
	var tables []string
	if err := db.Select(&tables, `SELECT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_schema IN ('cms', 'hr', 'ref', 'demo_sim') ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	if len(tables) < 12 {
		t.Fatalf("only %d demo tables: %v", len(tables), tables)
	}
	sums := map[string]string{}
	for _, table := range tables {
		var sum string
		if err := db.Get(&sum, fmt.Sprintf(`SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, ';' ORDER BY x::text)), '')
			FROM %s x`, table)); err != nil {
			t.Fatal(err)
		}
		sums[table] = sum
	}
	return sums
}

func diffSums(a, b map[string]string) []string {
	var diff []string
	for k, v := range a {
		if b[k] != v {
			diff = append(diff, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diff = append(diff, k)
		}
	}
	sort.Strings(diff)
	return diff
}

func TestSetupIsDeterministic(t *testing.T) {
	a, b, c := setUp(t, 7), setUp(t, 7), setUp(t, 8)
	t.Run("the same seed gives identical tables", func(t *testing.T) {
		if d := diffSums(checksums(t, a), checksums(t, b)); len(d) > 0 {
			t.Errorf("tables differ: %v", d)
		}
	})
	t.Run("another seed gives another council", func(t *testing.T) {
		if d := diffSums(checksums(t, a), checksums(t, c)); len(d) == 0 {
			t.Error("seeds 7 and 8 gave identical tables")
		}
	})
	t.Run("setting up again replaces the council", func(t *testing.T) {
		if err := demo.Setup(context.Background(), c, demo.Options{Seed: 7, Today: start}); err != nil {
			t.Fatal(err)
		}
		if d := diffSums(checksums(t, a), checksums(t, c)); len(d) > 0 {
			t.Errorf("tables differ after setting up seed 7 over seed 8: %v", d)
		}
	})
	t.Run("setting up takes under three seconds", func(t *testing.T) {
		db := newSource(t)
		begun := time.Now()
		if err := demo.Setup(context.Background(), db, demo.Options{Seed: 9, Today: start}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(begun); took > 3*time.Second {
			t.Errorf("Setup took %v", took)
		}
	})
}

func TestAdvanceIsDeterministic(t *testing.T) {
	a, b := setUp(t, 11), setUp(t, 11)
	advance(t, a, 9)
	for range 9 {
		advance(t, b, 1)
	}
	if d := diffSums(checksums(t, a), checksums(t, b)); len(d) > 0 {
		t.Errorf("advancing 9 days at once and day by day differ in %v", d)
	}
	got, err := demo.ReportingDate(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if want := start.AddDate(0, 0, 9); !got.Equal(want) {
		t.Errorf("reporting date %s, want %s", got.Format(time.DateOnly), want.Format(time.DateOnly))
	}
}

// invariants are counts of rows that break the council's consistency; each
// must be zero.
var invariants = []struct{ name, query string }{
	{"open cases held by a worker not in post", `
		SELECT count(*) FROM cms.child_case c JOIN cms.worker w ON w.worker_id = c.worker_id CROSS JOIN cms.reporting_date r
		WHERE c.opened <= r.today AND (c.closed IS NULL OR c.closed > r.today)
		  AND NOT (w.started_on <= r.today AND (w.left_on IS NULL OR w.left_on > r.today))`},
	{"open cases held by a worker of another team", `
		SELECT count(*) FROM cms.child_case c JOIN cms.worker w ON w.worker_id = c.worker_id
		WHERE c.closed IS NULL AND w.team_id <> c.team_id`},
	{"open cases held by a team manager", `
		SELECT count(*) FROM cms.child_case c JOIN cms.worker w ON w.worker_id = c.worker_id
		WHERE c.closed IS NULL AND w.role = 'team_manager'`},
	{"children's cases in adults' or front door teams", `
		SELECT count(*) FROM cms.child_case c JOIN cms.team t USING (team_id)
		WHERE t.service <> 'children' OR t.team_type = 'front_door'`},
	{"assessment cases outside assessment teams, or other cases inside them", `
		SELECT count(*) FROM cms.child_case c JOIN cms.team t USING (team_id)
		WHERE (c.case_type = 'assessment') <> (t.team_type = 'assessment')`},
	{"filled posts whose holder is not a permanent worker in post in the team with the post's FTE", `
		SELECT count(*) FROM hr.establishment e LEFT JOIN cms.worker w ON w.worker_id = e.worker_id
		WHERE e.status = 'filled' AND (w.worker_id IS NULL OR w.left_on IS NOT NULL OR w.employment <> 'permanent'
		      OR w.team_id <> e.team_id OR w.fte <> e.fte OR w.role <> e.role)`},
	{"permanent workers in post without exactly one filled post", `
		SELECT count(*) FROM cms.worker w
		WHERE w.employment = 'permanent' AND w.left_on IS NULL
		  AND (SELECT count(*) FROM hr.establishment e WHERE e.worker_id = w.worker_id) <> 1`},
	{"agency cover by someone not an agency worker in post in the team, or not matching the cover FTE", `
		SELECT count(*) FROM hr.establishment e JOIN cms.worker w ON w.worker_id = e.cover_worker_id
		WHERE w.left_on IS NOT NULL OR w.employment <> 'agency' OR w.team_id <> e.team_id OR w.fte <> e.agency_cover_fte`},
	{"agency workers covering more than one post", `
		SELECT count(*) FROM (SELECT cover_worker_id FROM hr.establishment WHERE cover_worker_id IS NOT NULL
		GROUP BY 1 HAVING count(*) > 1) x`},
	{"open assessments whose case is not an open assessment case", `
		SELECT count(*) FROM cms.child_assessment a JOIN cms.child_case c USING (case_id)
		WHERE a.completed_date IS NULL AND (c.closed IS NOT NULL OR c.case_type <> 'assessment' OR c.team_id <> a.team_id)`},
	{"completed assessments whose case did not close that day", `
		SELECT count(*) FROM cms.child_assessment a JOIN cms.child_case c USING (case_id)
		WHERE a.completed_date IS NOT NULL AND c.closed IS DISTINCT FROM a.completed_date`},
	{"assessment cases without exactly one assessment", `
		SELECT count(*) FROM cms.child_case c
		  LEFT JOIN (SELECT case_id, count(*) AS n FROM cms.child_assessment GROUP BY case_id) a USING (case_id)
		WHERE c.case_type = 'assessment' AND a.n IS DISTINCT FROM 1`},
	{"open assessments or adults' requests with no due date", `
		SELECT (SELECT count(*) FROM cms.child_assessment a LEFT JOIN demo_sim.assessment_due d USING (assessment_id)
		        WHERE a.completed_date IS NULL AND d.due IS NULL)
		     + (SELECT count(*) FROM cms.adult_assessment_request q LEFT JOIN demo_sim.adult_request_due d USING (request_id)
		        WHERE q.assessed IS NULL AND d.due IS NULL)`},
	{"adults' requests outside adults' teams", `
		SELECT count(*) FROM cms.adult_assessment_request q JOIN cms.team t USING (team_id) WHERE t.service <> 'adults'`},
	{"dates after the reporting date", `
		SELECT (SELECT count(*) FROM cms.child_case, cms.reporting_date r WHERE opened > r.today OR closed > r.today)
		     + (SELECT count(*) FROM cms.child_assessment, cms.reporting_date r WHERE referral_date > r.today OR completed_date > r.today)
		     + (SELECT count(*) FROM cms.adult_assessment_request, cms.reporting_date r WHERE requested > r.today OR assessed > r.today)
		     + (SELECT count(*) FROM cms.worker, cms.reporting_date r WHERE started_on > r.today OR left_on > r.today)`},
	{"work recorded on weekends or bank holidays", `
		SELECT count(*) FROM (
		  SELECT referral_date AS d FROM cms.child_assessment UNION ALL SELECT completed_date FROM cms.child_assessment
		  UNION ALL SELECT requested FROM cms.adult_assessment_request UNION ALL SELECT assessed FROM cms.adult_assessment_request
		) x WHERE x.d IS NOT NULL AND (extract(isodow FROM x.d) > 5 OR x.d IN (SELECT day FROM ref.bank_holiday))`},
}

func checkConsistent(t *testing.T, db *sqlx.DB) {
	t.Helper()
	for _, inv := range invariants {
		var n int
		if err := db.Get(&n, inv.query); err != nil {
			t.Fatalf("%s: %v", inv.name, err)
		}
		if n != 0 {
			t.Errorf("%d %s", n, inv.name)
		}
	}
}

func TestAdvance(t *testing.T) {
	db := setUp(t, 2026)
	t.Run("the council set up is consistent", func(t *testing.T) { checkConsistent(t, db) })

	before := expected(t, db)
	for i := 1; i <= 7; i++ {
		advance(t, db, 1)
		after := expected(t, db)
		changed := 0
		for k, v := range after {
			if before[k] != v {
				changed++
			}
		}
		// Even on Easter Monday, waits grow and the 12-month window slides.
		if changed < 5 {
			t.Errorf("day %d: only %d of %d series changed", i, changed, len(after))
		}
		before = after
	}

	var caseChanges, workforceChanges int
	advance(t, db, 60)
	if err := db.Get(&caseChanges, `SELECT count(*) FROM cms.child_case, cms.reporting_date r WHERE opened > r.today - 60 OR closed > r.today - 60`); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(&workforceChanges, `SELECT count(*) FROM cms.worker, cms.reporting_date r WHERE started_on > r.today - 60 OR left_on > r.today - 60`); err != nil {
		t.Fatal(err)
	}
	t.Run("cases open and close, and workers come and go", func(t *testing.T) {
		if caseChanges < 1000 {
			t.Errorf("%d cases opened or closed in 60 days", caseChanges)
		}
		if workforceChanges < 5 {
			t.Errorf("%d workers started or left in 60 days", workforceChanges)
		}
	})
	t.Run("after 67 days the council is still consistent", func(t *testing.T) { checkConsistent(t, db) })
	t.Run("after 67 days the council still looks like a London borough", func(t *testing.T) { checkRealistic(t, db) })

	t.Run("advancing by a negative number of days fails", func(t *testing.T) {
		if err := demo.Advance(context.Background(), db, -1); err == nil {
			t.Error("Advance(-1) succeeded")
		}
	})
	t.Run("advancing a database without a demo fails", func(t *testing.T) {
		if err := demo.Advance(context.Background(), newSource(t), 1); err == nil {
			t.Error("Advance on an empty database succeeded")
		}
	})
}

func between(t *testing.T, what string, got, lo, hi float64) {
	t.Helper()
	if got < lo || got > hi {
		t.Errorf("%s = %.3f, want %g to %g", what, got, lo, hi)
	}
}

// checkRealistic checks the council's shape against a London borough's.
func checkRealistic(t *testing.T, db *sqlx.DB) {
	t.Helper()
	var s struct {
		SWFTE       float64 `db:"sw_fte"`
		Cases       float64 `db:"cases"`
		Completed   float64 `db:"completed"`
		MedianWD    float64 `db:"median_wd"`
		Waiting     float64 `db:"waiting"`
		OpenReferrs float64 `db:"open_assessments"`
	}
	if err := db.Get(&s, `
		WITH r AS (SELECT today FROM cms.reporting_date),
		wd AS (
		  SELECT a.assessment_id, (SELECT count(*) FROM generate_series(a.referral_date + 1, a.completed_date, interval '1 day') g(d)
		          WHERE extract(isodow FROM g.d) < 6 AND g.d::date NOT IN (SELECT day FROM ref.bank_holiday)) AS n
		    FROM cms.child_assessment a, r WHERE a.completed_date > r.today - 365)
		SELECT
		  (SELECT sum(w.fte) FROM cms.worker w JOIN cms.team t USING (team_id) WHERE t.service = 'children' AND w.qualified AND w.left_on IS NULL) AS sw_fte,
		  (SELECT count(*) FROM cms.child_case WHERE closed IS NULL) AS cases,
		  (SELECT count(*) FROM wd) AS completed,
		  (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY n) FROM wd) AS median_wd,
		  (SELECT count(*) FROM cms.adult_assessment_request WHERE assessed IS NULL) AS waiting,
		  (SELECT count(*) FROM cms.child_assessment WHERE completed_date IS NULL) AS open_assessments`); err != nil {
		t.Fatal(err)
	}
	between(t, "children's social worker FTE in post, agency included", s.SWFTE, 170, 240)
	between(t, "open children's cases", s.Cases, 1800, 2600)
	between(t, "assessments completed in a year", s.Completed, 3600, 5000)
	between(t, "median assessment in working days", s.MedianWD, 26, 36)
	between(t, "adults waiting", s.Waiting, 150, 600)

	f := expected(t, db)
	all := func(name string) float64 {
		k := demo.SeriesKey(name, map[string]string{"service": "children", "team": "all"})
		if strings.HasPrefix(name, "adults_") {
			k = demo.SeriesKey(name, map[string]string{"team": "all"})
		}
		v, ok := f[k]
		if !ok || !v.Valid {
			t.Fatalf("%s is %v", k, v)
		}
		return v.V
	}
	between(t, "children's caseload", all("children_sw_caseload_average"), 12, 18)
	between(t, "vacancy rate", all("children_sw_vacancy_ratio"), 0.13, 0.32)
	between(t, "agency rate", all("children_sw_agency_ratio"), 0.13, 0.27)
	between(t, "assessments within 45 working days", all("children_assessment_within_45wd_ratio"), 0.78, 0.92)
	between(t, "adults waiting over six months", all("adults_assessment_waiting_over_6m_ratio"), 0.07, 0.22)
	for k, v := range f {
		if k.KPI == "children_sw_caseload_average" && v.Valid {
			between(t, k.String(), v.V, 8, 30)
		}
	}
}

func TestSetupLooksLikeALondonBorough(t *testing.T) {
	for _, seed := range []uint64{1, 2026, 424242} {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			db := setUp(t, seed)
			checkConsistent(t, db)
			checkRealistic(t, db)
		})
	}
}

func loadCatalogue(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(configFile)
	if err != nil {
		t.Fatalf("the demo configuration does not load: %v", err)
	}
	return cfg
}

// statuses evaluates every series of f against the demo catalogue.
func statuses(t *testing.T, cat kpi.Catalogue, f demo.Figures) map[demo.Key]kpi.Status {
	t.Helper()
	out := map[demo.Key]kpi.Status{}
	for k, v := range f {
		def, ok := cat[k.KPI]
		if !ok {
			t.Fatalf("%s is not in the demo catalogue", k)
		}
		labels := map[string]string{}
		for _, pair := range strings.Split(k.Labels, ",") {
			name, value, _ := strings.Cut(pair, "=")
			labels[name] = value
		}
		values := make([]string, len(def.Labels))
		for i, l := range def.Labels {
			values[i] = labels[l]
		}
		out[k], _ = def.Evaluate(values, time.Time{}, v)
	}
	return out
}

func TestCouncilOpensWithARedAndAnAmberTeam(t *testing.T) {
	cat := loadCatalogue(t).Catalogue
	for _, seed := range []uint64{1, 2026, 424242} {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			st := statuses(t, cat, expected(t, setUp(t, seed)))
			count := map[kpi.Status]int{}
			for k, s := range st {
				if k.KPI == "children_sw_caseload_average" && !strings.Contains(k.Labels, "team=all") {
					count[s]++
				}
			}
			if count[kpi.StatusRed] < 1 || count[kpi.StatusAmber] < 1 || count[kpi.StatusGreen] < 10 {
				t.Errorf("children's team caseloads: %d red, %d amber, %d green; want at least 1, 1 and 10",
					count[kpi.StatusRed], count[kpi.StatusAmber], count[kpi.StatusGreen])
			}
			for _, name := range []string{"Family Support East", "Children in Care 2"} {
				k := demo.SeriesKey("children_sw_caseload_average", map[string]string{"service": "children", "team": name})
				t.Logf("%s: %s", k, st[k])
			}
		})
	}
}

// demoConfig is the part of the demo configuration these tests read, decoded
// without the config package so that the queries are checked as written.
type demoConfig struct {
	KPIs []struct {
		Name   string   `yaml:"name"`
		Labels []string `yaml:"labels"`
	} `yaml:"kpis"`
	Collectors []struct {
		Name         string `yaml:"name"`
		Source       string `yaml:"source"`
		Query        string `yaml:"query"`
		PeriodColumn string `yaml:"period_column"`
		Metrics      []struct {
			KPI          string            `yaml:"kpi"`
			ValueColumn  string            `yaml:"value_column"`
			Labels       map[string]string `yaml:"labels"`
			StaticLabels map[string]string `yaml:"static_labels"`
		} `yaml:"metrics"`
	} `yaml:"collectors"`
}

func readDemoConfig(t *testing.T) demoConfig {
	t.Helper()
	data, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	var c demoConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Collectors) == 0 {
		t.Fatal("no collectors in the demo configuration")
	}
	return c
}

func number(v any) (kpi.Value, error) {
	switch x := v.(type) {
	case nil:
		return kpi.Missing, nil
	case float64:
		return kpi.Known(x), nil
	case int64:
		return kpi.Known(float64(x)), nil
	case []byte:
		f, err := strconv.ParseFloat(string(x), 64)
		return kpi.Known(f), err
	}
	return kpi.Missing, fmt.Errorf("unexpected %T %v", v, v)
}

func text(v any) string {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return fmt.Sprint(v)
}

// collect runs every collector query of the demo configuration on db, as
// carewatch would (read-only), and maps its rows to series.
func collect(t *testing.T, db *sqlx.DB, c demoConfig, today time.Time) demo.Figures {
	t.Helper()
	ctx := context.Background()
	got := demo.Figures{}
	for _, col := range c.Collectors {
		if col.Query == "" || col.Source != "cms" {
			continue // a file source's collector (the national statistics, the statutory returns), not the demo council's warehouse
		}
		tx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		// On schedule carewatch gives a query's :period_start and
		// :period_end NULL: the query collects the reporting date.
		query := strings.NewReplacer(":period_start", "NULL", ":period_end", "NULL").Replace(col.Query)
		rows, err := tx.QueryxContext(ctx, query)
		if err != nil {
			t.Fatalf("collector %s: %v", col.Name, err)
		}
		for rows.Next() {
			row := map[string]any{}
			if err := rows.MapScan(row); err != nil {
				t.Fatalf("collector %s: %v", col.Name, err)
			}
			period, ok := row[col.PeriodColumn].(time.Time)
			if !ok || !period.Equal(today) {
				t.Errorf("collector %s: period %v, want the reporting date %s", col.Name, row[col.PeriodColumn], today.Format(time.DateOnly))
			}
			for _, m := range col.Metrics {
				labels := map[string]string{}
				for l, column := range m.Labels {
					labels[l] = text(row[column])
				}
				for l, v := range m.StaticLabels {
					labels[l] = v
				}
				k := demo.SeriesKey(m.KPI, labels)
				v, err := number(row[m.ValueColumn])
				if err != nil {
					t.Fatalf("collector %s: %s: %v", col.Name, k, err)
				}
				if _, dup := got[k]; dup {
					t.Errorf("collector %s: %s twice", col.Name, k)
				}
				got[k] = v
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("collector %s: %v", col.Name, err)
		}
		rows.Close()
		tx.Rollback()
	}
	return got
}

func same(a, b kpi.Value) bool {
	if a.Valid != b.Valid {
		return false
	}
	return !a.Valid || math.Abs(a.V-b.V) <= 1e-9*math.Max(1, math.Max(math.Abs(a.V), math.Abs(b.V)))
}

func compare(t *testing.T, got, want demo.Figures) {
	t.Helper()
	var keys []demo.Key
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	for _, k := range keys {
		g, gok := got[k]
		w, wok := want[k]
		switch {
		case !gok:
			t.Errorf("%s: no row from the collectors; Expected says %v", k, w)
		case !wok:
			t.Errorf("%s: the collectors say %v; Expected has no such series", k, g)
		case !same(g, w):
			t.Errorf("%s: collectors %v, Expected %v", k, g, w)
		}
	}
}

func TestCollectorQueriesGiveTheExpectedFigures(t *testing.T) {
	c := readDemoConfig(t)
	db := setUp(t, 2026)
	ctx := context.Background()
	for _, step := range []struct {
		name string
		do   func(t *testing.T)
	}{
		{"at set-up", func(t *testing.T) {}},
		{"after a day", func(t *testing.T) { advance(t, db, 1) }},
		{"after Easter", func(t *testing.T) { advance(t, db, 7) }},
		{"after three more months", func(t *testing.T) { advance(t, db, 92) }},
		{"after cases were added", func(t *testing.T) {
			if err := demo.AddCases(ctx, db, "Assessment 2", 15); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(step.name, func(t *testing.T) {
			step.do(t)
			today, err := demo.ReportingDate(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			want := expected(t, db)
			got := collect(t, db, c, today)
			if len(want) < 60 {
				t.Errorf("only %d series expected", len(want))
			}
			compare(t, got, want)
			missing := 0
			for _, v := range want {
				if !v.Valid {
					missing++
				}
			}
			t.Logf("%s: %d series, %d missing", today.Format(time.DateOnly), len(want), missing)
		})
	}
	t.Run("every KPI of the catalogue is collected", func(t *testing.T) {
		got := collect(t, db, c, mustToday(t, db))
		fromFiles := map[string]bool{} // the national statistics: not the warehouse's
		for _, col := range c.Collectors {
			for _, m := range col.Metrics {
				if col.Query == "" || col.Source != "cms" {
					fromFiles[m.KPI] = true
				}
			}
		}
		for _, k := range c.KPIs {
			if fromFiles[k.Name] {
				continue
			}
			n := 0
			for key := range got {
				if key.KPI == k.Name {
					n++
				}
			}
			if n == 0 {
				t.Errorf("no collector produces %s", k.Name)
			}
		}
	})
	t.Run("a team with no case holders has a missing caseload, not 0", func(t *testing.T) {
		got := collect(t, db, c, mustToday(t, db))
		k := demo.SeriesKey("children_sw_caseload_average", map[string]string{"service": "children", "team": "Children's Front Door"})
		if v, ok := got[k]; !ok || v.Valid {
			t.Errorf("%s = %v, present %v; want a missing value", k, v, ok)
		}
	})
}

func mustToday(t *testing.T, db *sqlx.DB) time.Time {
	t.Helper()
	today, err := demo.ReportingDate(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return today
}

func TestAddCasesPushesATeamRedAndCloseCasesBringsItBack(t *testing.T) {
	ctx := context.Background()
	cat := loadCatalogue(t).Catalogue
	c := readDemoConfig(t)
	db := setUp(t, 2026)
	advance(t, db, 2) // Thursday 2 April 2026, a working day

	caseload := func() (kpi.Value, kpi.Status) {
		t.Helper()
		k := demo.SeriesKey("children_sw_caseload_average", map[string]string{"service": "children", "team": "Family Support North"})
		got := collect(t, db, c, mustToday(t, db))
		st := statuses(t, cat, got)
		return got[k], st[k]
	}
	before, status := caseload()
	if status == kpi.StatusRed || !before.Valid {
		t.Fatalf("Family Support North starts at %v (%s)", before, status)
	}
	var holderFTE float64
	if err := db.Get(&holderFTE, `SELECT sum(fte) FROM cms.worker w JOIN cms.team t USING (team_id)
		WHERE t.team_name = 'Family Support North' AND w.qualified AND w.left_on IS NULL
		  AND EXISTS (SELECT FROM cms.child_case c WHERE c.worker_id = w.worker_id AND c.closed IS NULL)`); err != nil {
		t.Fatal(err)
	}
	n := int(math.Ceil((22.5-before.V)*holderFTE)) + 1

	if err := demo.AddCases(ctx, db, "Family Support North", n); err != nil {
		t.Fatal(err)
	}
	t.Run("adding cases turns the team red", func(t *testing.T) {
		if v, s := caseload(); s != kpi.StatusRed {
			t.Errorf("after adding %d cases the caseload is %v (%s), want red", n, v, s)
		}
		checkConsistent(t, db)
		compare(t, collect(t, db, c, mustToday(t, db)), expected(t, db))
	})
	if err := demo.CloseCases(ctx, db, "Family Support North", n); err != nil {
		t.Fatal(err)
	}
	t.Run("closing them brings it back", func(t *testing.T) {
		after, s := caseload()
		if !same(after, before) || s != status {
			t.Errorf("after closing %d cases the caseload is %v (%s), want %v (%s)", n, after, s, before, status)
		}
		checkConsistent(t, db)
	})
	t.Run("cases added to an assessment team come with their assessments", func(t *testing.T) {
		if err := demo.AddCases(ctx, db, "Assessment 1", 3); err != nil {
			t.Fatal(err)
		}
		if err := demo.CloseCases(ctx, db, "Assessment 1", 3); err != nil {
			t.Fatal(err)
		}
		checkConsistent(t, db)
		advance(t, db, 2)
		checkConsistent(t, db)
	})
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"adding to an unknown team fails", demo.AddCases(ctx, db, "Assessment 9", 1)},
		{"adding to a team that holds no children's cases fails", demo.AddCases(ctx, db, "Adults Front Door", 1)},
		{"adding no cases fails", demo.AddCases(ctx, db, "Assessment 1", 0)},
		{"closing more cases than the team has fails", demo.CloseCases(ctx, db, "Disabled Children", 100000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Error("no error")
			}
		})
	}
}
