// Package debian finds a command that a Debian package provides and, for
// the demo only, installs that package when it is missing.
//
// The demo provisions its own PostgreSQL on a fresh machine, so it may
// install Debian's postgresql package (Ensure). Tests never install: CI's
// .ci/run installs what they need, and a test that lacks a program fails
// with the command that installs it (Find).
package debian

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/carewatch/carewatch/internal/filelock"
)

// lockFileName is the name, inside os.TempDir(), of the file whose flock
// serialises installs across processes: go test runs several test binaries in
// parallel, and apt's own lock makes a second apt-get fail instead of wait.
const lockFileName = "carewatch-apt.lock"

// installer holds what Ensure takes from the machine, so that tests can point
// it at a stand-in apt-get and a private lock file.
type installer struct {
	euid     int
	aptGet   string // path of apt-get; empty when it is not installed
	lockPath string
	listsDir string // apt's package lists; empty ones mean "apt-get update first"
}

func defaultInstaller() installer {
	aptGet, _ := exec.LookPath("apt-get")
	return installer{
		euid:     os.Geteuid(),
		aptGet:   aptGet,
		lockPath: filepath.Join(os.TempDir(), lockFileName),
		listsDir: "/var/lib/apt/lists",
	}
}

// Ensure returns the path of command, looked up in PATH and then in
// extraDirs (each may be a glob pattern such as /usr/lib/postgresql/*/bin,
// as Debian keeps some programs outside PATH in versioned folders). If it is
// missing and we run as root on a machine with apt-get, Ensure installs the
// Debian package pkg non-interactively, running apt-get update first when
// the package lists are empty or the install fails, and looks again.
// Installs are serialised across processes with a lock file in os.TempDir().
// Otherwise it returns an error that names the package to install.
func Ensure(ctx context.Context, logger *slog.Logger, command, pkg string, extraDirs ...string) (string, error) {
	return defaultInstaller().ensure(ctx, logger, command, pkg, extraDirs)
}

func (in installer) ensure(ctx context.Context, logger *slog.Logger, command, pkg string, extraDirs []string) (string, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if p, ok := lookup(command, extraDirs); ok {
		return p, nil
	}
	where := searched(extraDirs)
	switch {
	case in.euid != 0:
		return "", notFound(command, pkg, extraDirs)
	case in.aptGet == "":
		return "", fmt.Errorf("command %q not found in %s and apt-get is not available to install %q: install it with your system's package manager", command, where, pkg)
	}

	unlock, err := filelock.Lock(ctx, in.lockPath)
	if err != nil {
		return "", fmt.Errorf("installing Debian package %q for %q: %w", pkg, command, err)
	}
	defer unlock()
	// Another process may have installed it while we waited for the lock.
	if p, ok := lookup(command, extraDirs); ok {
		return p, nil
	}

	logger.Info("installing Debian package", "package", pkg, "command", command)
	start := time.Now()
	installErr := errors.New("package lists are empty")
	if !in.listsEmpty() {
		installErr = in.apt(ctx, "install", "-y", "--no-install-recommends", pkg)
	}
	if installErr != nil {
		logger.Info("running apt-get update", "package", pkg, "reason", installErr)
		if err := in.apt(ctx, "update"); err != nil {
			return "", fmt.Errorf("installing Debian package %q for %q: %w", pkg, command, err)
		}
		if err := in.apt(ctx, "install", "-y", "--no-install-recommends", pkg); err != nil {
			return "", fmt.Errorf("installing Debian package %q for %q: %w", pkg, command, err)
		}
	}
	p, ok := lookup(command, extraDirs)
	if !ok {
		return "", fmt.Errorf("installed Debian package %q but command %q is still not found in %s", pkg, command, where)
	}
	logger.Info("installed Debian package", "package", pkg, "path", p, "duration", time.Since(start).Round(time.Millisecond))
	return p, nil
}

// Find returns the path of command, looked up in PATH and then in
// extraDirs as Ensure does, or an error that gives the command installing
// the Debian package pkg. It never installs anything.
func Find(command, pkg string, extraDirs ...string) (string, error) {
	if p, ok := lookup(command, extraDirs); ok {
		return p, nil
	}
	return "", notFound(command, pkg, extraDirs)
}

// notFound is the error for a command missing from PATH and dirs.
func notFound(command, pkg string, dirs []string) error {
	return fmt.Errorf("command %q not found in %s: install the Debian package %q (sudo apt-get install %s) or the equivalent for your system", command, searched(dirs), pkg, pkg)
}

// searched says where lookup looks.
func searched(dirs []string) string {
	if len(dirs) == 0 {
		return "PATH"
	}
	return "PATH or " + strings.Join(dirs, ", ")
}

// lookup finds command in PATH, then in dirs; a glob pattern in dirs is
// tried from its highest match down, comparing numbers as numbers so that
// /usr/lib/postgresql/15/bin comes before /usr/lib/postgresql/9.6/bin.
func lookup(command string, dirs []string) (string, bool) {
	if p, err := exec.LookPath(command); err == nil {
		return p, true
	}
	for _, d := range dirs {
		matches, err := filepath.Glob(d)
		if err != nil || len(matches) == 0 {
			matches = []string{d}
		}
		slices.SortFunc(matches, func(a, b string) int { return compareNatural(b, a) })
		for _, m := range matches {
			p := filepath.Join(m, command)
			if isExecutable(p) {
				return p, true
			}
		}
	}
	return "", false
}

// compareNatural compares a and b as strings, except that runs of digits
// compare by their numeric value.
func compareNatural(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

// digitRun returns the length of the run of ASCII digits that starts s.
func digitRun(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

func (in installer) listsEmpty() bool {
	m, err := filepath.Glob(filepath.Join(in.listsDir, "*_Packages*"))
	return err != nil || len(m) == 0
}

// apt runs apt-get non-interactively; on failure the error carries the tail
// of its output, which says why (unknown package, no network...).
func (in installer) apt(ctx context.Context, args ...string) error {
	// Wait for dpkg's lock rather than fail if something outside our lock
	// (unattended-upgrades, an operator) holds it.
	full := append([]string{"-q", "-o", "DPkg::Lock::Timeout=300"}, args...)
	cmd := exec.CommandContext(ctx, in.aptGet, full...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 15))
	}
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
