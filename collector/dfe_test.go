package collector_test

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

const (
	dfeExample = "../examples/dfe/benchmarking.yml"
	dfeData    = "../examples/dfe/data"
	csww       = "csww_indicators_2017_to_2025.csv"
)

// dfeRows reads the DfE workforce file with nothing but encoding/csv, as
// an independent account of what it says.
func dfeRows(t *testing.T) []map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dfeData, csww))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := recs[0]
	header[0] = strings.TrimPrefix(header[0], "\ufeff")
	out := make([]map[string]string, 0, len(recs)-1)
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range header {
			m[h] = r[i]
		}
		out = append(out, m)
	}
	return out
}

// snNeighbours reads a council's ten neighbours from the 2025 model with
// encoding/csv.
func snNeighbours(t *testing.T, oldCode string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dfeData, "sn_model_2025_wide.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs[1:] {
		if r[0] == oldCode {
			var out []string
			for i := 4; i < len(r); i += 2 {
				out = append(out, strings.TrimSpace(r[i]))
			}
			return out
		}
	}
	t.Fatalf("no neighbours for %s", oldCode)
	return nil
}

// dfeSource builds the example's collector for a council.
func dfeSource(t *testing.T, council string) (*collector.FileSource, *config.Config) {
	t.Helper()
	cfg, err := config.Load(dfeExample)
	if err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	cc := &cfg.Collectors[0]
	if council != "" {
		cc.Benchmark.Council = council
	}
	src, err := newSourceFor(cfg, cc)
	if err != nil {
		t.Fatal(err)
	}
	return src.(*collector.FileSource), cfg
}

// newSourceFor builds a collector's source as the daemon does, through the
// factory.
func newSourceFor(cfg *config.Config, cc *config.CollectorConfig) (kpi.Source, error) {
	return collector.NewSources(cfg).Source(cc)
}

// obsKey names an observation: KPI, labels and year.
type obsKey struct {
	kpi, code, scope string
	year             int
}

func byKey(t *testing.T, obs []kpi.Observation, loc *time.Location) map[obsKey]kpi.Observation {
	t.Helper()
	out := map[obsKey]kpi.Observation{}
	for _, o := range obs {
		k := o.KPI
		code, scope := o.Labels[k.LabelIndex("la_code")], o.Labels[k.LabelIndex("scope")]
		p := o.Period.In(loc)
		if p.Month() != time.September || p.Day() != 30 || p.Hour() != 0 {
			t.Errorf("%s %s: period %s is not 30 September at midnight", k.Name, code, p)
		}
		key := obsKey{k.Name, code, scope, p.Year()}
		if _, dup := out[key]; dup {
			t.Errorf("two observations for %+v", key)
		}
		out[key] = o
	}
	return out
}

var dfeKPIs = map[string]struct {
	column  string
	percent bool
}{
	"children_sw_dfe_vacancy_ratio":    {"vacancy_rate_fte", true},
	"children_sw_dfe_agency_ratio":     {"agency_rate_fte", true},
	"children_sw_dfe_turnover_ratio":   {"turnover_rate_fte", true},
	"children_sw_dfe_caseload_average": {"caseload_fte", false},
	"children_sw_dfe_absence_ratio":    {"absence_rate_fte", true},
}

// The example config for Croydon yields its figures, its ten statistical
// neighbours', Outer London's and England's, for every year, exactly as the
// DfE file publishes them.
func TestDfEBenchmarkForCroydonGivesEveryAreaEveryYearAsPublished(t *testing.T) {
	src, cfg := dfeSource(t, "")
	obs, err := src.Collect(t.Context(), kpi.RunInfo{Collector: "dfe_workforce", At: time.Now(), Location: cfg.Location})
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	got := byKey(t, obs, cfg.Location)

	t.Run("Croydon 2025 is vacancy 0.192, agency 0.189, caseload 19.1", func(t *testing.T) {
		for name, want := range map[string]float64{
			"children_sw_dfe_vacancy_ratio":    0.192,
			"children_sw_dfe_agency_ratio":     0.189,
			"children_sw_dfe_caseload_average": 19.1,
			"children_sw_dfe_turnover_ratio":   0.129,
			"children_sw_dfe_absence_ratio":    0.041,
		} {
			o, ok := got[obsKey{name, "E09000008", collector.ScopeCouncil, 2025}]
			if !ok || !o.Value.Valid || o.Value.V != want {
				t.Errorf("%s{la_code=E09000008,scope=council} 2025 = %v, want %v", name, o.Value, want)
			}
			if ok && o.Labels[o.KPI.LabelIndex("la_name")] != "Croydon" {
				t.Errorf("la_name = %q", o.Labels[o.KPI.LabelIndex("la_name")])
			}
		}
	})

	// The areas, from the files read independently.
	neighbours := map[string]bool{}
	for _, n := range snNeighbours(t, "306") {
		neighbours[n] = true
	}
	if len(neighbours) != 10 {
		t.Fatalf("Croydon has %d neighbours in the model", len(neighbours))
	}
	want := map[obsKey]kpi.Value{}
	areas := map[string]string{}
	for _, r := range dfeRows(t) {
		var code, scope string
		switch {
		case r["geographic_level"] == "National":
			code, scope = r["country_code"], collector.ScopeEngland
		case r["geographic_level"] == "Regional" && r["region_code"] == "E13000002":
			code, scope = r["region_code"], collector.ScopeRegion
		case r["geographic_level"] == "Local authority" && r["old_la_code"] == "306":
			code, scope = r["new_la_code"], collector.ScopeCouncil
		case r["geographic_level"] == "Local authority" && neighbours[r["old_la_code"]]:
			code, scope = r["new_la_code"], collector.ScopeNeighbour
		default:
			continue
		}
		areas[code] = scope
		year, _ := strconv.Atoi(r["time_period"])
		for name, k := range dfeKPIs {
			v := kpi.Missing
			if f, err := strconv.ParseFloat(r[k.column], 64); err == nil {
				if k.percent {
					f /= 100
				}
				v = kpi.Known(f)
			}
			want[obsKey{name, code, scope, year}] = v
		}
	}
	if len(areas) != 13 {
		t.Fatalf("the file has %d of Croydon's 13 areas", len(areas))
	}

	t.Run("every area has every year 2017 to 2025 of every KPI", func(t *testing.T) {
		for code, scope := range areas {
			for name := range dfeKPIs {
				for year := 2017; year <= 2025; year++ {
					if _, ok := got[obsKey{name, code, scope, year}]; !ok {
						t.Errorf("no %s for %s (%s) in %d", name, code, scope, year)
					}
				}
			}
		}
		if len(got) != 13*5*9 {
			t.Errorf("%d observations, want %d (13 areas, 5 KPIs, 9 years)", len(got), 13*5*9)
		}
	})

	t.Run("every figure is the file's, a percentage as its ratio", func(t *testing.T) {
		for k, w := range want {
			g, ok := got[k]
			switch {
			case !ok:
				t.Errorf("%+v missing", k)
			case g.Value.Valid != w.Valid:
				t.Errorf("%+v = %v, want %v", k, g.Value, w)
			case w.Valid && math.Abs(g.Value.V-w.V) > 1e-12:
				t.Errorf("%+v = %v, want %v", k, g.Value.V, w.V)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%+v is not one of Croydon's areas", k)
			}
		}
	})

	t.Run("the neighbours and England carry their own 2025 figures", func(t *testing.T) {
		for _, k := range []obsKey{
			{"children_sw_dfe_vacancy_ratio", "E92000001", collector.ScopeEngland, 2025},
			{"children_sw_dfe_caseload_average", "E92000001", collector.ScopeEngland, 2025},
			{"children_sw_dfe_vacancy_ratio", "E09000023", collector.ScopeNeighbour, 2025}, // Lewisham
		} {
			if g := got[k]; !g.Value.Valid || g.Value != want[k] {
				t.Errorf("%+v = %v, want %v", k, g.Value, want[k])
			}
		}
		if v := got[obsKey{"children_sw_dfe_vacancy_ratio", "E92000001", collector.ScopeEngland, 2025}].Value; v.V != 0.142 {
			t.Errorf("England 2025 vacancy %v, want 0.142", v)
		}
	})
}

// The council is a setting: Croydon by its DfE code gives the same
// observations as by its ONS code.
func TestDfEBenchmarkCouncilByDfECodeIsTheSameAsByONSCode(t *testing.T) {
	a, cfg := dfeSource(t, "E09000008")
	b, _ := dfeSource(t, "306")
	run := kpi.RunInfo{Collector: "dfe_workforce", At: time.Now(), Location: cfg.Location}
	oa, err := a.Collect(t.Context(), run)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := b.Collect(t.Context(), run)
	if err != nil {
		t.Fatal(err)
	}
	ka, kb := byKey(t, oa, cfg.Location), byKey(t, ob, cfg.Location)
	if len(ka) != len(kb) || len(ka) == 0 {
		t.Fatalf("%d and %d observations", len(ka), len(kb))
	}
	for k, v := range ka {
		if kb[k].Value != v.Value {
			t.Errorf("%+v: %v by ONS code, %v by DfE code", k, v.Value, kb[k].Value)
		}
	}
}

// Westminster and Kensington and Chelsea could not make their 2025 return
// (published as x): their 2025 values are missing, never 0, and their 2024
// vacancy and caseload are there.
func TestDfEBenchmarkSuppressedFiguresAreMissingNotZero(t *testing.T) {
	src, cfg := dfeSource(t, "213") // Westminster, whose neighbours include Kensington and Chelsea
	obs, err := src.Collect(t.Context(), kpi.RunInfo{Collector: "dfe_workforce", At: time.Now(), Location: cfg.Location})
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	got := byKey(t, obs, cfg.Location)
	for _, area := range []struct{ code, scope, name string }{
		{"E09000033", collector.ScopeCouncil, "Westminster"},
		{"E09000020", collector.ScopeNeighbour, "Kensington and Chelsea"},
	} {
		for name := range dfeKPIs {
			o, ok := got[obsKey{name, area.code, area.scope, 2025}]
			if !ok {
				t.Errorf("%s: no 2025 %s at all: a missing value must still be recorded", area.name, name)
			} else if o.Value.Valid {
				t.Errorf("%s 2025 %s = %v, want missing", area.name, name, o.Value)
			}
		}
		// 2024 was returned (its agency rates are themselves x, as published).
		for _, name := range []string{"children_sw_dfe_vacancy_ratio", "children_sw_dfe_caseload_average"} {
			if o := got[obsKey{name, area.code, area.scope, 2024}]; !o.Value.Valid {
				t.Errorf("%s 2024 %s is missing", area.name, name)
			}
		}
	}
	if o := got[obsKey{"children_sw_dfe_vacancy_ratio", "E13000001", collector.ScopeRegion, 2025}]; !o.Value.Valid {
		t.Errorf("Inner London 2025 vacancy is missing")
	}
}

// The older April 2021 neighbour groupings (LA num, SN1...) work as well as
// the 2025 model.
func TestDfEBenchmarkReadsThe2021NeighbourGroupings(t *testing.T) {
	cfg, err := config.Load(dfeExample)
	if err != nil {
		t.Fatal(err)
	}
	cc := &cfg.Collectors[0]
	cc.Benchmark.NeighboursFile = "New_Statistical_Neighbour_Groupings_April_2021.csv"
	src, err := newSourceFor(cfg, cc)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := src.Collect(t.Context(), kpi.RunInfo{Collector: "dfe_workforce", At: time.Now(), Location: cfg.Location})
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	names := map[string]bool{}
	for _, o := range obs {
		if o.Labels[2] == collector.ScopeNeighbour {
			names[o.Labels[1]] = true
		}
	}
	// Croydon's 2021 neighbours: 308 Enfield, 320 Waltham Forest, 209 Lewisham, 309 Haringey, 304 Brent, 203 Greenwich, 208 Lambeth, 330 Birmingham, 315 Merton, 307 Ealing.
	want := []string{"Birmingham", "Brent", "Ealing", "Enfield", "Greenwich", "Haringey", "Lambeth", "Lewisham", "Merton", "Waltham Forest"}
	var gotNames []string
	for n := range names {
		gotNames = append(gotNames, n)
	}
	sort.Strings(gotNames)
	if strings.Join(gotNames, ",") != strings.Join(want, ",") {
		t.Errorf("neighbours %v, want %v", gotNames, want)
	}
}

// computedConfig computes vacancy, agency and caseload from the file's own
// FTE and case columns, beside the published rates, for every local
// authority row.
const computedConfig = `
kpis:
  - {name: computed_vacancy_ratio, help: h, direction: lower_is_better, labels: [la_code]}
  - {name: published_vacancy_ratio, help: h, direction: lower_is_better, labels: [la_code]}
  - {name: computed_agency_ratio, help: h, direction: lower_is_better, labels: [la_code]}
  - {name: published_agency_ratio, help: h, direction: lower_is_better, labels: [la_code]}
  - {name: computed_caseload_average, help: h, direction: lower_is_better, labels: [la_code]}
  - {name: published_caseload_average, help: h, direction: lower_is_better, labels: [la_code]}
sources:
  - {name: dfe, type: file, directory: DIR}
collectors:
  - name: dfe
    source: dfe
    schedule: "@daily"
    file: {path: csww_indicators_2017_to_2025.csv}
    filters:
      - {column: geographic_level, equals: Local authority}
    period_column: time_period
    period_format: YYYY
    period_day: 09-30
    metrics:
      - {kpi: computed_vacancy_ratio, value_expression: vacancy_fte / (vacancy_fte + inpost_fte), labels: {la_code: new_la_code}}
      - {kpi: published_vacancy_ratio, value_column: vacancy_rate_fte, percent: true, labels: {la_code: new_la_code}}
      - {kpi: computed_agency_ratio, value_expression: agency_fte / (agency_fte + inpost_fte), labels: {la_code: new_la_code}}
      - {kpi: published_agency_ratio, value_column: agency_rate_fte, percent: true, labels: {la_code: new_la_code}}
      - {kpi: computed_caseload_average, value_expression: cases / case_holders_fte, labels: {la_code: new_la_code}}
      - {kpi: published_caseload_average, value_column: caseload_fte, labels: {la_code: new_la_code}}
`

// The ratios carewatch computes from the FTE columns agree with DfE's
// published rates for every local authority and year within 0.1 percentage
// point (the FTEs are rounded to one decimal), and the caseload within 0.1
// case, except the Isles of Scilly in 2023: a workforce of a few people,
// where the rounding of its FTE moves the caseload by 0.3.
func TestComputedRatesAgreeWithThePublishedOnes(t *testing.T) {
	abs, err := filepath.Abs(dfeData)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(strings.Replace(computedConfig, "DIR", abs, 1)), "computed.yml")
	if err != nil {
		t.Fatal(err)
	}
	src, err := newSourceFor(cfg, &cfg.Collectors[0])
	if err != nil {
		t.Fatal(err)
	}
	obs, err := src.Collect(t.Context(), kpi.RunInfo{Collector: "dfe", At: time.Now(), Location: cfg.Location})
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	type key struct {
		measure, code string
		period        time.Time
	}
	vals := map[key]map[string]kpi.Value{}
	for _, o := range obs {
		kind, measure, _ := strings.Cut(o.KPI.Name, "_")
		k := key{measure, o.Labels[0], o.Period}
		if vals[k] == nil {
			vals[k] = map[string]kpi.Value{}
		}
		vals[k][kind] = o.Value
	}
	tolerance := map[string]float64{"vacancy_ratio": 0.001, "agency_ratio": 0.001, "caseload_average": 0.1}
	compared := map[string]int{}
	var exceptions []string
	for k, v := range vals {
		c, p := v["computed"], v["published"]
		if c.Valid != p.Valid {
			t.Errorf("%s %s %d: computed %v, published %v: one is missing, the other not", k.measure, k.code, k.period.Year(), c, p)
			continue
		}
		if !c.Valid {
			continue
		}
		compared[k.measure]++
		if d := math.Abs(c.V - p.V); d > tolerance[k.measure]+1e-9 {
			exceptions = append(exceptions, fmt.Sprintf("%s %s %d: computed %.4f, published %.4f", k.measure, k.code, k.period.Year(), c.V, p.V))
		}
	}
	sort.Strings(exceptions)
	want := []string{"caseload_average E06000053 2023: computed 10.0000, published 9.7000"} // the Isles of Scilly
	if strings.Join(exceptions, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows beyond the tolerance:\n%s\nwant only the Isles of Scilly's:\n%s", strings.Join(exceptions, "\n"), strings.Join(want, "\n"))
	}
	for measure, n := range compared {
		if n < 1300 {
			t.Errorf("%s: only %d rows compared", measure, n)
		}
	}
	if len(compared) != 3 {
		t.Errorf("compared %v", compared)
	}
}
