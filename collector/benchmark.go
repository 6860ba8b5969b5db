package collector

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/carewatch/carewatch/config"
)

// The scopes a benchmark gives its rows, in its benchmark_scope column.
const (
	ScopeCouncil     = "council"
	ScopeNeighbour   = "stat_neighbour"
	ScopeRegion      = "region"
	ScopeEngland     = "england"
	englandCode      = "e92000001"
	levelNational    = "national"
	levelRegional    = "regional"
	levelLA          = "local authority"
	jointCodeDivider = "/"
)

// The columns a benchmark adds to the rows it keeps.
const (
	BenchmarkScopeColumn = "benchmark_scope"
	BenchmarkCodeColumn  = "benchmark_code"
	BenchmarkNameColumn  = "benchmark_name"
)

// dfeColumns are the geography columns of DfE's open-data layout, which
// every Explore Education Statistics file shares.
var dfeColumns = []string{"geographic_level", "country_code", "country_name", "region_code", "region_name", "old_la_code", "new_la_code", "la_name"}

const (
	colLevel = iota
	colCountryCode
	colCountryName
	colRegionCode
	colRegionName
	colOldCode
	colNewCode
	colLAName
)

// benchmark keeps the rows of one council, its statistical neighbours, its
// region and England.
type benchmark struct {
	council        string
	neighboursFile string
	region         string
}

func newBenchmark(b *config.Benchmark) *benchmark {
	return &benchmark{
		council:        strings.TrimSpace(b.Council),
		neighboursFile: b.NeighboursFile,
		region:         strings.TrimSpace(b.Region),
	}
}

// codeParts splits a code cell into its codes: joint returns are written
// "314 / 318" (Kingston upon Thames and Richmond upon Thames).
func codeParts(v any) []string {
	parts := strings.Split(foldCell(v), jointCodeDivider)
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func anyIn(parts []string, set map[string]bool) bool {
	for _, p := range parts {
		if set[p] {
			return true
		}
	}
	return false
}

// apply keeps the benchmark's rows of every table, adding the scope, code
// and name columns to them, with the neighbours read from neighbours.
func (b *benchmark) apply(tables []*table, neighbours *table) error {
	idx, err := dfeIndexes(tables)
	if err != nil {
		return err
	}
	s, err := b.findCouncil(tables, idx)
	if err != nil {
		return err
	}
	nbs, err := neighbourCodes(neighbours, s.councilOld, b.council)
	if err != nil {
		return err
	}
	for _, n := range nbs {
		s.neighbours[n] = true
	}
	for i, t := range tables {
		kept := t.rows[:0]
		for _, r := range t.rows {
			scope, code, name := s.scope(r, idx[i])
			if scope == "" {
				continue
			}
			r.values = append(r.values, scope, code, name)
			kept = append(kept, r)
		}
		t.rows = kept
		t.columns = append(t.columns, BenchmarkScopeColumn, BenchmarkCodeColumn, BenchmarkNameColumn)
	}
	var absent []string
	for _, n := range nbs {
		if !s.seen[n] && !s.councilOld[n] {
			absent = append(absent, n)
		}
	}
	if len(absent) > 0 {
		return fmt.Errorf("the statistical neighbours %s of council %s (in %s) are in no local-authority row of %s: do the two files come from the same DfE release?",
			strings.Join(absent, ", "), b.council, neighbours.where, whereList(tables))
	}
	if !s.regionSeen && (b.region != "" || s.hasRegional) {
		return fmt.Errorf("benchmark region %q is in no regional row of %s", firstNonEmpty(b.region, s.region), whereList(tables))
	}
	return nil
}

// dfeIndexes returns, for every table, the index of each of dfeColumns.
func dfeIndexes(tables []*table) ([][]int, error) {
	idx := make([][]int, len(tables))
	for i, t := range tables {
		idx[i] = make([]int, len(dfeColumns))
		for j, col := range dfeColumns {
			if idx[i][j] = t.column(col); idx[i][j] < 0 {
				return nil, fmt.Errorf("%s has no column %q, which benchmark needs: it reads files in DfE's open-data layout (%s)", t.where, col, strings.Join(dfeColumns, ", "))
			}
		}
	}
	return idx, nil
}

// scoping is what deciding the scope of the benchmark's rows needs and
// learns: the council's old (DfE) codes, its region, its statistical
// neighbours, and which of them and of the region's rows were seen.
type scoping struct {
	councilOld  map[string]bool
	region      string
	hasRegional bool
	neighbours  map[string]bool
	seen        map[string]bool
	regionSeen  bool
}

// findCouncil finds the council's local-authority rows: its old codes and,
// unless the benchmark names it, its region.
func (b *benchmark) findCouncil(tables []*table, idx [][]int) (*scoping, error) {
	s := &scoping{councilOld: map[string]bool{}, region: strings.ToLower(b.region), neighbours: map[string]bool{}, seen: map[string]bool{}}
	key := strings.ToLower(b.council)
	found := false
	for i, t := range tables {
		for _, r := range t.rows {
			level := foldCell(r.values[idx[i][colLevel]])
			if level == levelRegional {
				s.hasRegional = true
			}
			if level != levelLA {
				continue
			}
			old := codeParts(r.values[idx[i][colOldCode]])
			if slices.Contains(old, key) || slices.Contains(codeParts(r.values[idx[i][colNewCode]]), key) {
				found = true
				for _, o := range old {
					s.councilOld[o] = true
				}
				if s.region == "" {
					s.region = foldCell(r.values[idx[i][colRegionCode]])
				}
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("benchmark.council %q is in no local-authority row of %s: give the council's ONS code (e.g. E09000008) or DfE code (e.g. 306)", b.council, whereList(tables))
	}
	return s, nil
}

// scope returns the scope, code and name of row r (whose columns ix
// indexes), or an empty scope when the benchmark does not keep it:
// England, the council's region, the council and its neighbours.
func (s *scoping) scope(r tableRow, ix []int) (scope, code, name string) {
	cell := func(c int) string { return strings.TrimSpace(cellText(r.values[ix[c]])) }
	switch foldCell(r.values[ix[colLevel]]) {
	case levelNational:
		if foldCell(r.values[ix[colCountryCode]]) == englandCode {
			return ScopeEngland, cell(colCountryCode), cell(colCountryName)
		}
	case levelRegional:
		if foldCell(r.values[ix[colRegionCode]]) == s.region {
			s.regionSeen = true
			return ScopeRegion, cell(colRegionCode), cell(colRegionName)
		}
	case levelLA:
		old := codeParts(r.values[ix[colOldCode]])
		switch {
		case anyIn(old, s.councilOld):
			scope = ScopeCouncil
		case anyIn(old, s.neighbours):
			scope = ScopeNeighbour
			for _, o := range old {
				s.seen[o] = true
			}
		}
		code, name = cell(colNewCode), cell(colLAName)
		if code == "" {
			code = cell(colOldCode)
		}
		return scope, code, name
	}
	return "", "", ""
}

func whereList(tables []*table) string {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.where
	}
	return strings.Join(names, ", ")
}

var (
	reSN2025 = regexp.MustCompile(`(?i)^SN_(\d+)$`)
	reSN2021 = regexp.MustCompile(`(?i)^SN(\d+)$`)
)

// neighbourCodes returns the DfE codes of the council's statistical
// neighbours, closest first, from a neighbour model: sn_model_2025_wide.csv
// (old_la_code, SN_1 ... SN_10) or the April 2021 groupings (LA num, SN1 ...
// SN10).
func neighbourCodes(t *table, councilOld map[string]bool, council string) ([]string, error) {
	codeCol := -1
	for _, name := range []string{"old_la_code", "LA num", "LA number"} {
		if codeCol = t.column(name); codeCol >= 0 {
			break
		}
	}
	type snCol struct{ rank, idx int }
	var sn []snCol
	for i, c := range t.columns {
		for _, re := range []*regexp.Regexp{reSN2025, reSN2021} {
			if m := re.FindStringSubmatch(c); m != nil {
				rank, _ := strconv.Atoi(m[1])
				sn = append(sn, snCol{rank, i})
			}
		}
	}
	if codeCol < 0 || len(sn) == 0 {
		return nil, fmt.Errorf("%s is not a DfE statistical neighbour model: it needs an old_la_code (or LA num) column and SN_1, SN_2... (or SN1, SN2...) columns; columns present: %s", t.where, columnList(t.columns))
	}
	sort.Slice(sn, func(i, j int) bool { return sn[i].rank < sn[j].rank })
	for _, r := range t.rows {
		if !anyIn(codeParts(r.values[codeCol]), councilOld) {
			continue
		}
		var codes []string
		for _, c := range sn {
			if code := foldCell(r.values[c.idx]); code != "" {
				codes = append(codes, code)
			}
		}
		if len(codes) == 0 {
			return nil, fmt.Errorf("%s, %s: council %s has no neighbours", t.where, r.ref, council)
		}
		return codes, nil
	}
	olds := make([]string, 0, len(councilOld))
	for o := range councilOld {
		olds = append(olds, o)
	}
	sort.Strings(olds)
	return nil, fmt.Errorf("council %s (DfE code %s) has no row in %s", council, strings.Join(olds, " / "), t.where)
}
