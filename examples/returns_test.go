// Package examples_test runs the example configurations that read the
// demo council's statutory returns against the returns the demo writes, and
// compares every KPI with the demo's own Go computation of it.
package examples_test

import (
	"context"
	"encoding/csv"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func date(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

// Thin keeps a sample of the returns' largest parts, List 1's contacts and
// List 6's children in need (which no KPI reads) and a quarter of the
// adults in CLD (all of each
// one's rows), so that the tests run in reasonable time under the race
// detector. The KPIs are still compared over the very rows collected.
func Thin(r *demo.Returns) {
	var contacts []demo.Contact
	for i, c := range r.Contacts {
		if i%8 == 0 {
			contacts = append(contacts, c)
		}
	}
	r.Contacts = contacts
	var cins []demo.CIN
	for i, c := range r.CINs {
		if i%4 == 0 {
			cins = append(cins, c)
		}
	}
	r.CINs = cins
	var events []demo.CLDEvent
	for _, e := range r.CLD {
		h := fnv.New32a()
		h.Write([]byte(e.Person))
		if h.Sum32()%4 == 0 {
			events = append(events, e)
		}
	}
	r.CLD = events
}

// inYear is the reporting date of the council most tests share.
const inYear = "2026-11-17"

var shared struct {
	once sync.Once
	r    *demo.Returns
	err  error
}

// sharedCouncil is the demo council of seed 2026 on inYear, with its
// returns thinned, built once for the tests that only read it.
func sharedCouncil(t *testing.T) *demo.Returns {
	t.Helper()
	shared.once.Do(func() {
		db, err := sqlx.Open("postgres", pgtest.NewDatabase(t))
		if err != nil {
			shared.err = err
			return
		}
		defer db.Close()
		if shared.err = demo.Setup(context.Background(), db, demo.Options{Seed: 2026, Today: date(inYear)}); shared.err != nil {
			return
		}
		if shared.r, shared.err = demo.BuildReturns(context.Background(), db); shared.err == nil {
			Thin(shared.r)
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.r
}

// council sets up the demo council with seed on today, and builds its
// returns, thinned.
func council(t *testing.T, seed uint64, today string) *demo.Returns {
	t.Helper()
	db, err := sqlx.Open("postgres", pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := demo.Setup(context.Background(), db, demo.Options{Seed: seed, Today: date(today)}); err != nil {
		t.Fatal(err)
	}
	r, err := demo.BuildReturns(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	Thin(r)
	return r
}

// returnExamples are the examples over the demo's returns, each with the
// folder under WriteReturns's output its source reads.
var returnExamples = []struct{ config, dir string }{
	{"annex-a/carewatch.yml", demo.AnnexADir},
	{"ssda903/carewatch.yml", demo.SSDA903Dir},
	{"cld/carewatch.yml", demo.CLDDir},
}

// loadExample loads an example configuration with its file source pointed
// at dir, as a council points it at its own folder.
func loadExample(t *testing.T, file, dir string) *config.Config {
	t.Helper()
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Sources {
		if cfg.Sources[i].Type == config.SourceFile {
			cfg.Sources[i].Directory = dir
		}
	}
	return cfg
}

// collect runs every collector of cfg, returning the observations by series
// and each collector's error.
func collectAll(t *testing.T, cfg *config.Config) (demo.Figures, map[string]error) {
	t.Helper()
	got, errs := demo.Figures{}, map[string]error{}
	for i := range cfg.Collectors {
		cc := &cfg.Collectors[i]
		m, err := collector.NewMapper(cc, cfg.Catalogue, cfg.EffectiveMaxSeries(cc))
		if err != nil {
			t.Fatal(err)
		}
		src, err := collector.NewFileSource(cc, cfg.SourceByName(cc.Source), m)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		obs, err := src.Collect(ctx, kpi.RunInfo{Collector: cc.Name, At: time.Now(), Location: cfg.Location})
		cancel()
		errs[cc.Name] = err
		for _, o := range obs {
			labels := map[string]string{}
			for j, l := range o.KPI.Labels {
				labels[l] = o.Labels[j]
			}
			got[demo.SeriesKey(o.KPI.Name, labels)] = o.Value
		}
	}
	return got, errs
}

func sameValue(a, b kpi.Value) bool {
	if a.Valid != b.Valid {
		return false
	}
	return !a.Valid || math.Abs(a.V-b.V) <= 1e-9*math.Max(1, math.Abs(b.V))
}

// TestExamplesComputeTheReturnsKPIs runs the examples' collectors, SQL and
// all, over the demo's returns, and compares every series with the Go
// computation over the same rows: at a year end (a whole SSDA903 year) and
// in November (a year to date, a CLD resubmission made).
func TestExamplesComputeTheReturnsKPIs(t *testing.T) {
	for _, c := range []struct {
		today    string
		examples []string // all when empty
	}{
		// At a year end, the SSDA903 return is a whole year.
		{"2026-03-31", []string{"ssda903"}},
		// In November, a year to date, with a CLD resubmission.
		{inYear, nil},
	} {
		t.Run(c.today, func(t *testing.T) {
			r := sharedCouncil(t)
			if c.today != inYear {
				r = council(t, 2026, c.today)
			}
			dir := t.TempDir()
			if err := demo.WriteReturns(r, dir); err != nil {
				t.Fatal(err)
			}
			want := r.Figures()
			got := demo.Figures{}
			for _, ex := range returnExamples {
				if c.examples != nil && !slices.Contains(c.examples, ex.dir) {
					for k := range want {
						if strings.HasPrefix(k.Labels, "source="+strings.ReplaceAll(ex.dir, "-", "_")) {
							delete(want, k)
						}
					}
					continue
				}
				cfg := loadExample(t, ex.config, filepath.Join(dir, ex.dir))
				obs, errs := collectAll(t, cfg)
				for name, err := range errs {
					if err != nil {
						t.Errorf("%s: %s: %v", ex.config, name, err)
					}
				}
				for k, v := range obs {
					got[k] = v
				}
			}
			var keys []demo.Key
			for k := range want {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
			for _, k := range keys {
				g, ok := got[k]
				switch {
				case !ok:
					t.Errorf("%s: no observation, want %v", k, want[k])
				case !sameValue(g, want[k]):
					t.Errorf("%s = %v, want %v", k, g, want[k])
				case strings.Contains(k.Labels, "team=all") || !strings.Contains(k.Labels, "team="):
					t.Logf("%s = %v", k, g)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("%s = %v, not expected", k, got[k])
				}
			}
		})
	}
}

// TestExamplesPassCheck loads each example as carewatch check does.
func TestExamplesPassCheck(t *testing.T) {
	for _, ex := range returnExamples {
		if _, err := config.Load(ex.config); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// writeVariant writes the returns under dir with the workbook's lists and
// the SSDA903 files changed by the given functions.
func writeVariant(t *testing.T, r *demo.Returns, dir string, lists func([]demo.AnnexAList), files func(map[string][][]string)) {
	t.Helper()
	if err := demo.WriteReturns(r, dir); err != nil {
		t.Fatal(err)
	}
	if lists != nil {
		ls := r.AnnexALists()
		lists(ls)
		data, err := demo.WriteAnnexA(ls)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, demo.AnnexADir, demo.AnnexAFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if files != nil {
		fs := r.SSDA903CSV()
		files(fs)
		for name, rows := range fs {
			var b strings.Builder
			w := csv.NewWriter(&b)
			if err := w.WriteAll(rows); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, demo.SSDA903Dir, name), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// collectExamples runs the named collectors of the Annex A and SSDA903
// examples over dir.
func collectExamples(t *testing.T, dir string, names ...string) (demo.Figures, map[string]error) {
	t.Helper()
	got, errs := demo.Figures{}, map[string]error{}
	for _, ex := range returnExamples[:2] {
		cfg := loadExample(t, ex.config, filepath.Join(dir, ex.dir))
		cfg.Collectors = slices.DeleteFunc(cfg.Collectors, func(c config.CollectorConfig) bool { return !slices.Contains(names, c.Name) })
		obs, e := collectAll(t, cfg)
		for k, v := range obs {
			got[k] = v
		}
		for k, v := range e {
			errs[k] = v
		}
	}
	return got, errs
}

func TestRealFilesVary(t *testing.T) {
	r := sharedCouncil(t)
	want := r.Figures()
	same := func(t *testing.T, got demo.Figures, errs map[string]error, except ...string) {
		t.Helper()
		for name, err := range errs {
			if err != nil && !slices.Contains(except, name) {
				t.Errorf("%s failed: %v", name, err)
			}
		}
		for k, v := range want {
			if strings.HasPrefix(k.KPI, "adults_") {
				continue
			}
			if g, ok := got[k]; ok && !sameValue(g, v) {
				t.Errorf("%s = %v, want %v", k, g, v)
			}
		}
	}

	t.Run("header spellings and the old and new codes read the same", func(t *testing.T) {
		dir := t.TempDir()
		writeVariant(t, r, dir, func(ls []demo.AnnexAList) {
			for i := range ls {
				for j, h := range ls[i].Headings {
					switch h {
					case "Date of Referral":
						ls[i].Headings[j] = "Date of referral"
					case "Allocated Team":
						ls[i].Headings[j] = "Allocated team"
					case "Child Protection Plan Start Date":
						ls[i].Headings[j] = "CHILD PROTECTION PLAN START DATE"
					}
				}
				ls[i].Name = strings.ToUpper(ls[i].Name) // LIST 3
			}
		}, func(fs map[string][][]string) {
			// SEX as 1/2, as before 2024-25; Z11 where Z1 was, for a child.
			for _, row := range fs["header.csv"][1:] {
				row[1] = map[string]string{"M": "1", "F": "2"}[row[1]]
			}
			eps := fs["episodes.csv"]
			for i, row := range eps[1:] {
				if row[5] == "U4" && i%2 == 0 {
					row[5] = "Z11"
				}
			}
		})
		got, errs := collectExamples(t, dir, "annex_a_referrals", "annex_a_child_protection", "ssda903_placements")
		same(t, got, errs)
		if len(got) < 10 {
			t.Errorf("only %d series", len(got))
		}
	})

	t.Run("a renamed list fails only its own collector", func(t *testing.T) {
		dir := t.TempDir()
		writeVariant(t, r, dir, func(ls []demo.AnnexAList) { ls[4].Name = "S47 enquiries" }, nil)
		got, errs := collectExamples(t, dir, "annex_a_s47", "annex_a_referrals")
		err := errs["annex_a_s47"]
		if err == nil || !strings.Contains(err.Error(), `no sheet "List 5"`) || !strings.Contains(err.Error(), `"S47 enquiries"`) {
			t.Fatalf("annex_a_s47: %v, want an error naming the sheet it wants and the sheets there are", err)
		}
		t.Logf("annex_a_s47: %v", err)
		same(t, got, errs, "annex_a_s47")
		if _, ok := got[demo.SeriesKey("children_rereferral_12m_ratio", map[string]string{"team": "all", "source": "annex_a"})]; !ok {
			t.Error("the other lists' collectors gave nothing")
		}
	})

	t.Run("an episodes file without a column fails only its own collector", func(t *testing.T) {
		dir := t.TempDir()
		writeVariant(t, r, dir, nil, func(fs map[string][][]string) {
			for i, row := range fs["episodes.csv"] {
				fs["episodes.csv"][i] = slices.Delete(slices.Clone(row), 7, 8) // DEC
			}
		})
		got, errs := collectExamples(t, dir, "ssda903_placements", "annex_a_referrals")
		err := errs["ssda903_placements"]
		if err == nil || !strings.Contains(err.Error(), "DEC") || !strings.Contains(err.Error(), "episodes") {
			t.Fatalf("ssda903_placements: %v, want an error naming the column and the file", err)
		}
		t.Logf("ssda903_placements: %v", err)
		same(t, got, errs, "ssda903_placements")
	})

	t.Run("an empty list gives missing values", func(t *testing.T) {
		dir := t.TempDir()
		writeVariant(t, r, dir, func(ls []demo.AnnexAList) { ls[6].Rows = nil }, nil)
		got, errs := collectExamples(t, dir, "annex_a_child_protection")
		for name, err := range errs {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		k := demo.SeriesKey("children_cp_plan_repeat_ratio", map[string]string{"team": "all", "source": "annex_a"})
		if v, ok := got[k]; !ok || v.Valid {
			t.Errorf("%s = %v (present %v), want missing", k, v, ok)
		}
	})
}

// TestAnnexAHolidaysAreTheDemoCalendars checks that each working-day query
// of the Annex A example lists exactly the England and Wales bank holidays
// the demo's calendar knows.
func TestAnnexAHolidaysAreTheDemoCalendars(t *testing.T) {
	var want []string
	for y := demo.FirstHolidayYear; y <= demo.LastHolidayYear; y++ {
		for _, h := range demo.BankHolidays(y) {
			want = append(want, h.Date.Format(time.DateOnly))
		}
	}
	cfg, err := config.Load(returnExamples[0].config)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\('(\d{4}-\d{2}-\d{2})'\)`)
	n := 0
	for _, cc := range cfg.Collectors {
		if !strings.Contains(cc.Query, "holiday(d)") {
			continue
		}
		n++
		var got []string
		for _, m := range re.FindAllStringSubmatch(cc.Query, -1) {
			got = append(got, m[1])
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s lists %d holidays, not the calendar's %d (regenerate them from demo.BankHolidays)", cc.Name, len(got), len(want))
		}
	}
	if n != 2 {
		t.Errorf("%d collectors count working days, want 2", n)
	}
}

// TestDemoRunsTheReturnsExamples checks that the demo configuration carries
// the returns examples' KPIs and collectors unchanged but for how often
// they run and where their folders are.
func TestDemoRunsTheReturnsExamples(t *testing.T) {
	d, err := config.Load("demo/carewatch.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range returnExamples {
		e, err := config.Load(ex.config)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range e.KPIs {
			i := slices.IndexFunc(d.KPIs, func(x config.KPIConfig) bool { return x.Name == k.Name })
			if i < 0 {
				t.Errorf("%s: the demo has no KPI %s", ex.config, k.Name)
				continue
			}
			if !reflect.DeepEqual(d.Catalogue[k.Name], e.Catalogue[k.Name]) {
				t.Errorf("%s: KPI %s differs in the demo", ex.config, k.Name)
			}
		}
		for _, c := range e.Collectors {
			i := slices.IndexFunc(d.Collectors, func(x config.CollectorConfig) bool { return x.Name == c.Name })
			if i < 0 {
				t.Errorf("%s: the demo has no collector %s", ex.config, c.Name)
				continue
			}
			dc := d.Collectors[i]
			dc.Schedule, dc.ParsedSchedule = c.Schedule, c.ParsedSchedule
			if !reflect.DeepEqual(dc, c) {
				t.Errorf("%s: collector %s differs in the demo", ex.config, c.Name)
			}
			if ds, es := d.SourceByName(c.Source), e.SourceByName(c.Source); ds == nil || !reflect.DeepEqual(*ds, *es) {
				t.Errorf("%s: the demo's source %s is %+v, the example's %+v", ex.config, c.Source, ds, es)
			}
		}
	}
}
