// Package upstream builds the Prometheus and Alertmanager releases that
// the Compose stack ships from their Go modules, so that the end-to-end
// tests run on them as well as on Debian's packages.
//
// `go install module/cmd/prometheus@version` is refused because the
// module's go.mod has replace directives, so each release is built inside
// a throwaway module that requires it and copies those directives. The
// server is built without its web UI assets (no `builtinassets` tag),
// which the tests do not need. A build takes minutes, so it is kept in the
// user's cache folder, one folder per release, written under a file lock
// (go test runs several test binaries at once) and renamed into place when
// complete, and reused by every later run on the machine.
package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/carewatch/carewatch/internal/filelock"
	"github.com/carewatch/carewatch/internal/localserver"
)

// Program is an upstream program: its Go module and the commands built
// from it.
type Program struct {
	// Name names the program's cache folder, e.g. "prometheus".
	Name string
	// Module is its Go module path.
	Module string
	// Commands are the main packages built, relative to Module.
	Commands []string
	// ModuleVersion maps a release (e.g. "3.5.0") to the module version
	// that holds it.
	ModuleVersion func(release string) (string, error)
	// image finds the release in the repository: the file that names
	// the image Compose runs, and the image's name.
	imageFile, image string
}

// Prometheus is the Prometheus server and promtool.
var Prometheus = Program{
	Name:          "prometheus",
	Module:        "github.com/prometheus/prometheus",
	Commands:      []string{"cmd/prometheus", "cmd/promtool"},
	ModuleVersion: prometheusModuleVersion,
	imageFile:     "docker-compose.yml",
	image:         "prom/prometheus",
}

// Alertmanager is Alertmanager and amtool.
var Alertmanager = Program{
	Name:          "alertmanager",
	Module:        "github.com/prometheus/alertmanager",
	Commands:      []string{"cmd/alertmanager", "cmd/amtool"},
	ModuleVersion: func(release string) (string, error) { return "v" + release, nil },
	// Compose builds its Alertmanager from this image (adding the time
	// zone database).
	imageFile: "Dockerfile",
	image:     "prom/alertmanager",
}

// prometheusModuleVersion maps Prometheus 3.M.P to the module version
// v0.3MM.P its Go module tags it with (3.5.0 is v0.305.0).
func prometheusModuleVersion(release string) (string, error) {
	parts := strings.Split(release, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("prometheus release %q: want MAJOR.MINOR.PATCH", release)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return "", fmt.Errorf("prometheus release %q: want MAJOR.MINOR.PATCH", release)
		}
		n[i] = v
	}
	if n[0] != 3 || n[1] > 99 {
		return "", fmt.Errorf("prometheus release %q: only 3.x releases are mapped to their module version", release)
	}
	return fmt.Sprintf("v0.%d.%d", 300+n[1], n[2]), nil
}

// ComposeRelease returns the release of p the repository's Compose stack
// runs, read from the image tag in the file under root that names it.
func (p Program) ComposeRelease(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, p.imageFile))
	if err != nil {
		return "", fmt.Errorf("%s's release: %w", p.Name, err)
	}
	re := regexp.MustCompile(`(?m)\b` + regexp.QuoteMeta(p.image) + `:v(\d+\.\d+\.\d+)\b`)
	m := re.FindAllSubmatch(b, -1)
	if len(m) != 1 {
		return "", fmt.Errorf("%s's release: %s names %s:vX.Y.Z %d times, want once", p.Name, p.imageFile, p.image, len(m))
	}
	return string(m[0][1]), nil
}

// Build is a release of a program, built.
type Build struct {
	Program Program
	Release string
	// Dir holds one binary per command, named as the command's folder.
	Dir string
	// Built is how long the build took; zero if it was found in the cache.
	Built time.Duration
}

// Command returns the path of the built command name (e.g. "promtool").
func (b Build) Command(name string) string { return filepath.Join(b.Dir, name) }

// CacheRoot is where builds are kept: carewatch-test in the user's cache
// folder.
func CacheRoot() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("the cache folder for upstream builds: %w", err)
	}
	return filepath.Join(dir, "carewatch-test"), nil
}

// Get returns the build of release from the cache under cacheRoot,
// building it first if it is not there. Concurrent callers, in this
// process or others, build it once: the others wait for the first.
func (p Program) Get(ctx context.Context, cacheRoot, release string) (Build, error) {
	b := Build{Program: p, Release: release, Dir: filepath.Join(cacheRoot, p.Name+"-"+release)}
	if p.complete(b.Dir) {
		return b, nil
	}
	if err := os.MkdirAll(cacheRoot, 0o755); err != nil {
		return b, fmt.Errorf("building %s %s: %w", p.Name, release, err)
	}
	unlock, err := filelock.Lock(ctx, b.Dir+".lock")
	if err != nil {
		return b, fmt.Errorf("building %s %s: %w", p.Name, release, err)
	}
	defer unlock()
	if p.complete(b.Dir) {
		return b, nil
	}
	start := time.Now()
	if err := p.build(ctx, b.Dir, release); err != nil {
		return b, fmt.Errorf("building %s %s from its Go module: %w", p.Name, release, err)
	}
	b.Built = time.Since(start)
	return b, nil
}

// complete says whether dir holds every command. A folder is only ever
// renamed into place whole, so a partial one is never seen.
func (p Program) complete(dir string) bool {
	for _, c := range p.Commands {
		if fi, err := os.Stat(filepath.Join(dir, filepath.Base(c))); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// build builds release into dir through a throwaway module beside it,
// and renames the finished build into place.
func (p Program) build(ctx context.Context, dir, release string) error {
	version, err := p.ModuleVersion(release)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+"-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	goTool, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	gocmd := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, goTool, args...)
		cmd.Dir = work
		// A plain static build, whatever the tests were run with: no
		// -race or other flags from GOFLAGS, no cgo, no workspace.
		cmd.Env = append(os.Environ(), "GOFLAGS=", "CGO_ENABLED=0", "GOWORK=off", "GO111MODULE=on")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, localserver.Tail(stderr.String()+stdout.String(), 30))
		}
		return stdout.Bytes(), nil
	}

	if _, err := gocmd("mod", "init", "carewatch.test/upstream-"+p.Name); err != nil {
		return err
	}
	out, err := gocmd("mod", "download", "-json", p.Module+"@"+version)
	if err != nil {
		return err
	}
	var mod struct{ Dir, GoMod, Error string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return fmt.Errorf("go mod download: %w", err)
	}
	if mod.Error != "" {
		return fmt.Errorf("go mod download %s@%s: %s", p.Module, version, mod.Error)
	}
	// The module's own VERSION file says which release the module
	// version holds, so a wrong mapping fails here rather than testing
	// another release.
	if v, err := os.ReadFile(filepath.Join(mod.Dir, "VERSION")); err != nil {
		return fmt.Errorf("%s@%s: %w", p.Module, version, err)
	} else if got := strings.TrimSpace(string(v)); got != release {
		return fmt.Errorf("%s@%s holds release %s, not %s", p.Module, version, got, release)
	}
	if err := p.copyReplaces(gocmd, mod.GoMod); err != nil {
		return err
	}
	pkgs := make([]string, len(p.Commands))
	for i, c := range p.Commands {
		pkgs[i] = p.Module + "/" + c
	}
	get := []string{"get"}
	for _, pkg := range pkgs {
		get = append(get, pkg+"@"+version)
	}
	if _, err := gocmd(get...); err != nil {
		return err
	}
	bin := filepath.Join(work, "bin")
	build := append([]string{"build", "-trimpath",
		"-ldflags=-X github.com/prometheus/common/version.Version=" + release,
		"-o", bin + string(filepath.Separator)}, pkgs...)
	if _, err := gocmd(build...); err != nil {
		return err
	}
	// What is left of an incomplete folder (a binary deleted by hand)
	// would keep the complete one out.
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Rename(bin, dir); err != nil {
		return fmt.Errorf("moving the build into the cache: %w", err)
	}
	return nil
}

// copyReplaces gives the throwaway module the replace directives of the
// module's go.mod, which go install refuses and go build needs.
func (p Program) copyReplaces(gocmd func(...string) ([]byte, error), goMod string) error {
	out, err := gocmd("mod", "edit", "-json", goMod)
	if err != nil {
		return err
	}
	var mf struct {
		Replace []struct {
			Old, New struct{ Path, Version string }
		}
	}
	if err := json.Unmarshal(out, &mf); err != nil {
		return fmt.Errorf("%s's go.mod: %w", p.Module, err)
	}
	for _, r := range mf.Replace {
		if r.New.Version == "" {
			return fmt.Errorf("%s's go.mod replaces %s with the folder %s, which a module that requires it cannot copy", p.Module, r.Old.Path, r.New.Path)
		}
		old := r.Old.Path
		if r.Old.Version != "" {
			old += "@" + r.Old.Version
		}
		if _, err := gocmd("mod", "edit", "-replace", old+"="+r.New.Path+"@"+r.New.Version); err != nil {
			return err
		}
	}
	return nil
}
