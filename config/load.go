package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // schedules must work in minimal containers without a zoneinfo database

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/carewatch/carewatch/kpi"
)

// Problem is one thing wrong with a configuration file: where it is and
// which rule it breaks.
type Problem struct {
	File string
	Line int
	// Path is the YAML path of the offending key, e.g. kpis[2].thresholds.red.
	Path string
	Msg  string
}

func (p Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteByte(':')
	}
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:", p.Line)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in a file, in the order of the file.
type Problems []Problem

func (ps Problems) Error() string {
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Error()
	}
	return strings.Join(msgs, "\n")
}

// Load reads, decodes and validates the configuration file at path. Any
// problem makes it fail; the returned error is a Problems listing them all.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes and validates a configuration; file names it in messages,
// and the relative paths in it (a file source's directory, an http source's
// secret and certificate files) are resolved against file's folder.
func Parse(data []byte, file string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{yamlProblem(file, &root, err)}
	}
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty file decodes to the zero config, which validation then refuses.
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			ps := make(Problems, 0, len(te.Errors))
			for _, e := range te.Errors {
				ps = append(ps, yamlProblem(file, &root, errors.New(e)))
			}
			return nil, ps
		}
		return nil, Problems{yamlProblem(file, &root, err)}
	}
	v := &validator{file: file, dir: filepath.Dir(file), root: &root}
	v.validate(cfg)
	if len(v.problems) > 0 {
		sort.SliceStable(v.problems, func(i, j int) bool { return v.problems[i].Line < v.problems[j].Line })
		return nil, v.problems
	}
	return cfg, nil
}

var (
	reLine         = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	reUnknownField = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	reCannot       = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (.+)$")
)

// yamlProblem turns a yaml.v3 message into a Problem with the YAML path.
func yamlProblem(file string, root *yaml.Node, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  ")
	m := reLine.FindStringSubmatch(msg)
	if m == nil {
		return Problem{File: file, Msg: "invalid YAML: " + msg}
	}
	line, _ := strconv.Atoi(m[1])
	p := Problem{File: file, Line: line, Msg: m[2]}
	if u := reUnknownField.FindStringSubmatch(m[2]); u != nil {
		p.Path = findKeyPath(root, line, u[1])
		p.Msg = fmt.Sprintf("unknown key %q", u[1])
		if p.Path != "" {
			if i := strings.LastIndex(p.Path, "."); i >= 0 {
				p.Path = p.Path[:i]
			} else {
				p.Path = ""
			}
			p.Msg += " (is it misspelt or in the wrong place?)"
		}
		return p
	}
	if c := reCannot.FindStringSubmatch(m[2]); c != nil {
		p.Path = findValuePath(root, line, c[2])
		p.Msg = fmt.Sprintf("%q is not a valid %s", c[2], friendlyType(c[3]))
	}
	return p
}

func friendlyType(goType string) string {
	switch {
	case strings.Contains(goType, "float"):
		return "number"
	case strings.Contains(goType, "int"):
		return "whole number"
	case strings.Contains(goType, "bool"):
		return "boolean (true or false)"
	case strings.Contains(goType, "ByteSize"):
		return "size (e.g. 512KiB, 10MB, 1GiB)"
	case strings.Contains(goType, "Duration"):
		return "duration (e.g. 30s, 5m, 36h, 7d)"
	case strings.HasPrefix(goType, "[]"):
		return "list"
	case strings.HasPrefix(goType, "map"), strings.HasPrefix(goType, "config."):
		return "mapping"
	}
	return goType
}

// walk calls fn for every node below n with its YAML path; for a mapping
// entry it passes the key node too.
func walk(n *yaml.Node, path string, fn func(path string, key, val *yaml.Node)) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walk(c, path, fn)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			fn(p, k, v)
			walk(v, p, fn)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			fn(p, nil, c)
			walk(c, p, fn)
		}
	}
}

func findKeyPath(root *yaml.Node, line int, key string) string {
	found := ""
	walk(root, "", func(p string, k, _ *yaml.Node) {
		if found == "" && k != nil && k.Line == line && k.Value == key {
			found = p
		}
	})
	return found
}

// findValuePath returns the path of the value on line that reads value:
// on a line such as `thresholds: {amber: 15, red: lots}` the bad value, not
// its neighbour, is blamed. Without such a scalar, the line's first node.
func findValuePath(root *yaml.Node, line int, value string) string {
	first, found := "", ""
	walk(root, "", func(p string, _, v *yaml.Node) {
		if v.Line != line {
			return
		}
		if first == "" {
			first = p
		}
		if found == "" && v.Kind == yaml.ScalarNode && v.Value == value {
			found = p
		}
	})
	if found == "" {
		return first
	}
	return found
}

// lineOf returns the line of the key (or item) at path, or of its nearest
// ancestor present in the file.
func lineOf(root *yaml.Node, path string) int {
	best, bestLen := 0, -1
	walk(root, "", func(p string, k, v *yaml.Node) {
		if (p == path || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[")) && len(p) > bestLen {
			bestLen = len(p)
			if k != nil {
				best = k.Line
			} else {
				best = v.Line
			}
		}
	})
	return best
}

type validator struct {
	file string
	// dir is the configuration file's folder, against which relative paths
	// in it are resolved.
	dir      string
	root     *yaml.Node
	problems Problems
}

func (v *validator) addf(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{File: v.file, Line: lineOf(v.root, path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// reName is the form of the names carewatch gives things in its
// configuration (collectors, tables).
var reName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// SourceTypes are the source kinds carewatch can read.
var SourceTypes = map[string]bool{
	SourcePostgres: true, SourceMySQL: true, SourceMariaDB: true, SourceSQLServer: true,
	SourceFile: true, SourceHTTP: true,
}

func (v *validator) validate(c *Config) {
	v.global(c)
	v.store(&c.Store)
	c.Catalogue = v.kpis(c.KPIs, c.Location)
	v.sources(c.Sources)
	v.collectors(c)
	v.report(c)
}

func (v *validator) global(c *Config) {
	g := &c.Global
	if g.Timezone == "" {
		g.Timezone = DefaultTimezone
	}
	loc, err := time.LoadLocation(g.Timezone)
	if err != nil {
		v.addf("global.timezone", "unknown time zone %q", g.Timezone)
		loc = time.UTC
	}
	c.Location = loc
	if g.DefaultTimeout == 0 {
		g.DefaultTimeout = DefaultTimeout
	}
	if g.DefaultTimeout < 0 {
		v.addf("global.default_timeout", "must be positive")
	}
	if g.DefaultRetries != nil && *g.DefaultRetries < 0 {
		v.addf("global.default_retries", "must not be negative")
	}
	if g.DefaultRetryBackoff == 0 {
		g.DefaultRetryBackoff = DefaultRetryBackoff
	}
	if g.DefaultMaxSeries == 0 {
		g.DefaultMaxSeries = DefaultMaxSeries
	}
	if g.DefaultMaxSeries < 0 {
		v.addf("global.default_max_series", "must be positive")
	}
}

func (v *validator) store(s *StoreConfig) {
	if s.DSNEnv != "" && s.DSNFile != "" {
		v.addf("store.dsn_file", "give dsn_env or dsn_file, not both")
	}
	if s.DSNEnv != "" && !validEnvName(s.DSNEnv) {
		v.addf("store.dsn_env", errNotEnvName)
	}
	if s.DSNEnv == "" && s.DSNFile == "" {
		s.DSNEnv = DefaultStoreDSNEnv
	}
	if s.MaxOpenConns < 0 {
		v.addf("store.max_open_conns", "must not be negative")
	}
	if s.Timeout < 0 {
		v.addf("store.timeout", "must not be negative")
	}
	if s.RunsRetention < 0 {
		v.addf("store.runs_retention", "must not be negative")
	}
}

func (v *validator) kpis(ks []KPIConfig, loc *time.Location) kpi.Catalogue {
	cat := kpi.Catalogue{}
	if len(ks) == 0 {
		v.addf("kpis", "at least one KPI is required")
	}
	first := map[string]int{}
	for i := range ks {
		kc := &ks[i]
		p := fmt.Sprintf("kpis[%d]", i)
		k := &kpi.KPI{Name: kc.Name, Help: strings.TrimSpace(kc.Help), Unit: kc.Unit, Labels: kc.Labels, MaxAge: time.Duration(kc.MaxAge)}
		nameOK := true
		for _, pr := range k.NameProblems() {
			v.addf(p+"."+pr.Field, "%s", pr.Message)
			nameOK = nameOK && pr.Field != "name"
		}
		if nameOK {
			if j, dup := first[kc.Name]; dup {
				v.addf(p+".name", "duplicate KPI name %q (first defined at kpis[%d])", kc.Name, j)
			} else {
				first[kc.Name] = i
			}
		}
		if k.Help == "" {
			v.addf(p+".help", "is required: it becomes the metric's HELP text")
		}
		if kc.Direction == "" {
			v.addf(p+".direction", "is required: lower_is_better or higher_is_better")
		} else if d, err := kpi.ParseDirection(kc.Direction); err != nil {
			v.addf(p+".direction", "%v", err)
		} else {
			k.Direction = d
		}
		seen := map[string]bool{}
		for _, l := range kc.Labels {
			seen[l] = true
		}
		if kc.MaxAge < 0 {
			v.addf(p+".max_age", "must not be negative")
		}
		k.Thresholds = v.thresholds(p+".thresholds", kc.Thresholds, k, kc.Name, kpi.Thresholds{})
		k.Trajectory = v.trajectory(p+".trajectory", kc.Trajectory, k, kc.Name, k.Thresholds, loc)
		for j, o := range kc.Overrides {
			op := fmt.Sprintf("%s.overrides[%d]", p, j)
			if len(o.Match) == 0 {
				v.addf(op+".match", "is required: the labels the override applies to")
			}
			for _, l := range sortedKeys(o.Match) {
				if !seen[l] {
					v.addf(op+".match", "label %q is not one of the KPI's labels %v", l, kc.Labels)
				}
			}
			if o.Thresholds.Amber == nil && o.Thresholds.Red == nil && len(o.Trajectory) == 0 {
				v.addf(op+".thresholds", "an override must set amber, red or both, or a trajectory")
			}
			t := v.thresholds(op+".thresholds", o.Thresholds, k, kc.Name, k.Thresholds)
			steps := v.trajectory(op+".trajectory", o.Trajectory, k, kc.Name, k.Thresholds.With(t), loc)
			k.Overrides = append(k.Overrides, kpi.Override{Match: o.Match, Thresholds: t, Trajectory: steps})
		}
		k.OwnSeries = v.ownSeries(p+".own_series", kc.OwnSeries, kc.Labels, seen)
		k.Expect = v.kpiExpect(p+".expect", kc.Expect, k, seen)
		if kc.Name != "" {
			if _, dup := cat[kc.Name]; !dup {
				cat[kc.Name] = k
			}
		}
	}
	return cat
}

// thresholds converts and checks one thresholds block; inherit fills the
// boundaries it leaves unset when checking their order.
func (v *validator) thresholds(p string, tc ThresholdsConfig, k *kpi.KPI, name string, inherit kpi.Thresholds) kpi.Thresholds {
	var t kpi.Thresholds
	for _, b := range []struct {
		key string
		val *float64
		dst *kpi.Threshold
	}{{"amber", tc.Amber, &t.Amber}, {"red", tc.Red, &t.Red}} {
		if b.val == nil {
			continue
		}
		x := *b.val
		switch {
		case math.IsNaN(x) || math.IsInf(x, 0):
			v.addf(p+"."+b.key, "must be a finite number")
			continue
		case strings.HasSuffix(name, "_ratio") && (x < 0 || x > 1):
			v.addf(p+"."+b.key, "%g is outside 0–1, but %s is a ratio (write 12%% as 0.12)", x, name)
		}
		*b.dst = kpi.At(x)
	}
	eff := t
	if !eff.Amber.Set {
		eff.Amber = inherit.Amber
	}
	if !eff.Red.Set {
		eff.Red = inherit.Red
	}
	if eff.Amber.Set && eff.Red.Set && k.Direction != 0 {
		a, r := eff.Amber.Value, eff.Red.Value
		if k.Direction == kpi.LowerIsBetter && r < a {
			v.addf(p+".red", "red %g is below amber %g, but %s is lower_is_better: red must be the higher boundary", r, a, name)
		}
		if k.Direction == kpi.HigherIsBetter && r > a {
			v.addf(p+".red", "red %g is above amber %g, but %s is higher_is_better: red must be the lower boundary", r, a, name)
		}
		if r == a {
			v.addf(p+".red", "red and amber are both %g, so no value could ever be amber: set amber on the good side of red, or leave amber out", r)
		}
	}
	return t
}

// trajectory converts and checks the steps of a trajectory: dates in
// order, each step's boundaries valid on their own and, with those carried
// on from before, on the right sides of each other.
func (v *validator) trajectory(p string, steps []StepConfig, k *kpi.KPI, name string, start kpi.Thresholds, loc *time.Location) []kpi.Step {
	var out []kpi.Step
	inForce := start
	for i, sc := range steps {
		sp := fmt.Sprintf("%s[%d]", p, i)
		from, err := time.ParseInLocation(time.DateOnly, strings.TrimSpace(sc.From), loc)
		switch {
		case sc.From == "":
			v.addf(sp+".from", "is required: the date (YYYY-MM-DD) from which the step's thresholds apply")
		case err != nil:
			v.addf(sp+".from", "%q is not a date written YYYY-MM-DD", sc.From)
		case len(out) > 0 && !from.After(out[len(out)-1].From):
			v.addf(sp+".from", "%s is not after the previous step's date %s: list the steps in date order", sc.From, out[len(out)-1].From.Format(time.DateOnly))
		}
		if sc.Thresholds.Amber == nil && sc.Thresholds.Red == nil {
			v.addf(sp+".thresholds", "a step must set amber, red or both")
		}
		t := v.thresholds(sp+".thresholds", sc.Thresholds, k, name, inForce)
		inForce = inForce.With(t)
		out = append(out, kpi.Step{From: from, Thresholds: t})
	}
	return out
}

// ownSeries checks the labels that mark a KPI's own series apart from its
// benchmarks.
func (v *validator) ownSeries(p string, own map[string]string, labels []string, known map[string]bool) map[string]string {
	if own == nil {
		return nil
	}
	if len(own) == 0 {
		v.addf(p, "must name at least one label and its value for the council's own series, e.g. {scope: council}")
	}
	for _, l := range sortedKeys(own) {
		switch {
		case !known[l]:
			v.addf(p, "label %q is not one of the KPI's labels %v", l, labels)
		case strings.TrimSpace(own[l]) == "":
			v.addf(p+"."+l, "must not be empty: it is the value of the council's own series")
		}
	}
	return own
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var scheduleParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a five-field cron expression or a descriptor such as
// @daily or @every 15m.
func ParseSchedule(spec string) (cron.Schedule, error) {
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, errors.New("set the time zone under global.timezone, not in the schedule")
	}
	// cron silently rounds an @every below a second up to one; refuse it instead.
	if d, ok := strings.CutPrefix(spec, "@every "); ok {
		if every, err := time.ParseDuration(strings.TrimSpace(d)); err == nil && every < time.Second {
			return nil, fmt.Errorf("@every needs at least 1s, not %v", every)
		}
	}
	return scheduleParser.Parse(spec)
}

// DSN returns the store's connection string from its environment variable or file.
func (s *StoreConfig) DSN() (string, error) { return secret("store", s.DSNEnv, s.DSNFile) }

// DSN returns the source's connection string from its environment variable or file.
func (s *SourceConfig) DSN() (string, error) {
	return secret(fmt.Sprintf("source %q", s.Name), s.DSNEnv, s.DSNFile)
}

// errNotEnvName is the error for a dsn_env that is not a variable's name,
// such as a connection string pasted in: its text, which may hold a
// password, is never repeated.
const errNotEnvName = "must be the name of an environment variable (letters, digits and _), not a connection string; its value is not shown"

// validEnvName reports whether name is a portable environment variable name.
func validEnvName(name string) bool {
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for _, r := range name {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func secret(what, env, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: reading dsn_file: %w", what, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s: dsn_file %s is empty", what, file)
		}
		return v, nil
	}
	if !validEnvName(env) {
		return "", fmt.Errorf("%s: dsn_env %s", what, errNotEnvName)
	}
	v := strings.TrimSpace(os.Getenv(env))
	if v == "" {
		return "", fmt.Errorf("%s: environment variable %s is not set", what, env)
	}
	return v, nil
}
