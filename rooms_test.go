package carewatch_test

import (
	"errors"
	"fmt"
	"go/build"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// module is this repository's module path.
const module = "github.com/carewatch/carewatch"

// room is what a folder of the repository may import: other rooms of this
// module, and modules from outside it. The standard library is always
// allowed. Tests of a room may also use the rooms in testSupport.
type room struct {
	rooms    []string // this module's rooms, by folder
	external []string // import path prefixes outside the module; "*" is any
	dataOnly bool     // no Go code but tests, which may import anything
	testsMay []string // rooms and external prefixes its tests may import besides
}

// rooms are the import rules of the design: arrows point down, so that
// collector never imports store or exporter, and they meet in cmd through
// the contracts kpi defines. A subfolder belongs to the room above it.
var rooms = map[string]room{
	// The domain: the standard library only.
	"kpi": {},
	// The schema and its validation. prometheus/common brings the HTTP
	// client settings and durations Prometheus's own configs use.
	"config": {rooms: []string{"kpi"}, external: []string{
		"gopkg.in/yaml.v3", "github.com/robfig/cron/v3", "github.com/prometheus/common/config", "github.com/prometheus/common/model",
	}},
	// Sources: drivers, parsers and the embedded engine are theirs to choose.
	"collector": {rooms: []string{"kpi", "config", "internal/pgbound", "internal/sqlbound"}, external: []string{"*"}},
	"store":     {rooms: []string{"kpi", "internal/pgbound"}, external: []string{"github.com/jmoiron/sqlx", "github.com/lib/pq"}},
	"exporter": {rooms: []string{"kpi"}, external: []string{
		"github.com/prometheus/client_golang", "github.com/prometheus/client_model", "github.com/prometheus/common",
		"github.com/prometheus/exporter-toolkit",
		// The gzip client_golang itself uses, for the cached exposition.
		"github.com/klauspost/compress",
	}},
	// Its tests build packs from a real store.
	"report": {rooms: []string{"kpi"}, testsMay: []string{"store"}},
	// The synthetic council the demo runs on, and the local PostgreSQL the
	// demo and the tests start.
	// It writes its council in the formats councils' systems export.
	"demo": {rooms: []string{"kpi"}, external: []string{"*"},
		testsMay: []string{"config", "collector", "gopkg.in/yaml.v3"}},
	"pglocal": {rooms: []string{"internal"}, external: []string{"github.com/lib/pq"}},
	// The local MariaDB the MySQL/MariaDB source tests start.
	"mariadblocal": {rooms: []string{"internal"}, external: []string{"github.com/go-sql-driver/mysql"}},
	// Shared helpers below every room.
	"internal": {},
	// The command-line conventions the binaries share.
	"internal/cli": {external: []string{"github.com/alecthomas/kingpin/v2", "github.com/prometheus/exporter-toolkit", "github.com/prometheus/common"}},
	// database/sql connections whose every wait is bounded, whatever the
	// driver, for the store and the SQL sources.
	"internal/sqlbound": {external: []string{"golang.org/x/sys"}},
	// sqlbound's rule for lib/pq, the store's and the PostgreSQL sources'.
	"internal/pgbound": {rooms: []string{"internal/sqlbound"}, external: []string{"github.com/lib/pq"}},
	// The end-to-end harness: starts the real programs.
	"e2e": {rooms: []string{"internal", "demo"}, external: []string{"*"}},
	// Binaries: the only places that see every room.
	"cmd": {rooms: []string{"*"}, external: []string{"*"}},
	// Data, with tests that check it against the rest.
	// The dashboards and their generator, which builds them from the
	// catalogue with Grafana's Foundation SDK (go generate ./dashboards).
	// Its tests check the dashboards against the real parts: carewatch's
	// metrics as a scrape decodes them, Prometheus's parser, the store's
	// schema.
	"dashboards": {rooms: []string{"kpi", "config"}, external: []string{"github.com/grafana/grafana-foundation-sdk/go"},
		testsMay: []string{"exporter", "store", "report", "github.com/jmoiron/sqlx", "github.com/lib/pq", "github.com/prometheus/common/model",
			"github.com/prometheus/client_model/go", "github.com/prometheus/prometheus/promql/parser", "gopkg.in/yaml.v3"}},
	"deploy":   {dataOnly: true},
	"examples": {dataOnly: true},
	"scripts":  {dataOnly: true},
	// The module root holds only this test.
	".": {dataOnly: true},
}

// testSupport are the rooms any test may use besides its own room's
// imports: the local servers, the end-to-end harness, the demo's data.
var testSupport = []string{"pglocal", "mariadblocal", "e2e", "demo", "internal"}

func TestRoomsImportOnlyWhatTheDesignAllows(t *testing.T) {
	found := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != "." && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "node_modules") {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(path, 0)
		if err != nil {
			var none *build.NoGoError
			if errors.As(err, &none) {
				return nil
			}
			return fmt.Errorf("%s: %w", path, err)
		}
		found++
		dir := filepath.ToSlash(path)
		roomName, r, ok := roomOf(dir)
		if !ok {
			t.Errorf("%s: a package in no room of the design; add its folder to rooms with what it may import", dir)
			return nil
		}
		if r.dataOnly && len(pkg.GoFiles) > 0 {
			t.Errorf("%s: room %s holds data only, but %s is code", dir, roomName, pkg.GoFiles[0])
		}
		for _, imp := range pkg.Imports {
			if why := r.refuses(roomName, imp); why != "" {
				t.Errorf("%s imports %s: %s", dir, imp, why)
			}
		}
		for _, imp := range slices.Concat(pkg.TestImports, pkg.XTestImports) {
			if r.dataOnly || isRoom(imp, testSupport) || r.testsMayImport(imp) {
				continue
			}
			if why := r.refuses(roomName, imp); why != "" {
				t.Errorf("%s's tests import %s: %s", dir, imp, why)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 8 {
		t.Fatalf("found only %d packages: is the test running from the module root?", found)
	}
}

// roomOf finds the room a folder belongs to: its own entry, or its top
// folder's.
func roomOf(dir string) (string, room, bool) {
	if r, ok := rooms[dir]; ok {
		return dir, r, true
	}
	top, _, _ := strings.Cut(dir, "/")
	r, ok := rooms[top]
	return top, r, ok
}

// refuses says why room name, whose rules are r, may not import imp, or
// "" when it may.
func (r room) refuses(name, imp string) string {
	first, _, _ := strings.Cut(imp, "/")
	if !strings.Contains(first, ".") {
		return "" // the standard library
	}
	if rest, ok := strings.CutPrefix(imp, module+"/"); ok {
		target, _, _ := roomOf(rest)
		if target == name || slices.Contains(r.rooms, "*") || slices.Contains(r.rooms, target) {
			return ""
		}
		return fmt.Sprintf("room %s may import only %s of this module", name, listOr(r.rooms))
	}
	for _, p := range r.external {
		if p == "*" || imp == p || strings.HasPrefix(imp, p+"/") {
			return ""
		}
	}
	return fmt.Sprintf("room %s may import only %s from outside the module", name, listOr(r.external))
}

// testsMayImport says whether imp is one of the room's allowances for its
// tests.
func (r room) testsMayImport(imp string) bool {
	for _, p := range r.testsMay {
		if isRoom(imp, []string{p}) || imp == p || strings.HasPrefix(imp, p+"/") {
			return true
		}
	}
	return false
}

// isRoom says whether imp is a package of one of these rooms.
func isRoom(imp string, names []string) bool {
	rest, ok := strings.CutPrefix(imp, module+"/")
	if !ok {
		return false
	}
	target, _, _ := roomOf(rest)
	return slices.Contains(names, target)
}

func listOr(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

// TestTheRoomRulesCanFail shows the rules refuse what the design forbids.
func TestTheRoomRulesCanFail(t *testing.T) {
	for _, c := range []struct{ from, imp string }{
		{"collector", module + "/store"},
		{"collector", module + "/exporter"},
		{"kpi", module + "/config"},
		{"kpi", "gopkg.in/yaml.v3"},
		{"store", module + "/config"},
		{"exporter", module + "/store"},
		{"exporter", "github.com/lib/pq"},
		{"config", module + "/collector"},
		{"report", module + "/store"},
	} {
		if rooms[c.from].refuses(c.from, c.imp) == "" {
			t.Errorf("%s may import %s; the design forbids it", c.from, c.imp)
		}
	}
}

// The daemon is a daemon: the demo generator, the local PostgreSQL and the
// package installer live in carewatch-demo, never in what runs in
// production.
func TestTheDaemonLinksNeitherTheDemoNorAnInstaller(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", "./cmd/carewatch").Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/carewatch: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, module+"/store") {
		t.Fatalf("go list -deps ./cmd/carewatch does not list the store: %q", deps)
	}
	for _, banned := range []string{"demo", "pglocal", "internal/debian"} {
		if slices.Contains(deps, module+"/"+banned) {
			t.Errorf("carewatch links %s", banned)
		}
	}
}
