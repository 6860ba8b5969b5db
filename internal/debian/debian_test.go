package debian

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carewatch/carewatch/internal/filelock"
)

func TestEnsureFindsACommandInPath(t *testing.T) {
	p, err := Ensure(context.Background(), nil, "sh", "dash")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p) != "sh" || !isExecutable(p) {
		t.Errorf("Ensure(sh) = %q, want the path of an executable sh", p)
	}
}

func TestEnsureFindsACommandInTheHighestExtraDir(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "14", "15"} {
		writeExecutable(t, filepath.Join(root, v, "bin", "carewatch-test-tool"), "#!/bin/sh\n")
	}
	// Not executable: must be passed over.
	if err := os.WriteFile(filepath.Join(root, "plain"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		dirs []string
		want string
	}{
		{"found in a plain folder", []string{filepath.Join(root, "14", "bin")}, filepath.Join(root, "14", "bin", "carewatch-test-tool")},
		{"found in the highest-numbered match of a pattern", []string{filepath.Join(root, "*", "bin")}, filepath.Join(root, "15", "bin", "carewatch-test-tool")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := installer{euid: 1000}.ensure(context.Background(), nil, "carewatch-test-tool", "pkg", tc.dirs)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	t.Run("fails for a file that is not executable", func(t *testing.T) {
		if _, err := (installer{euid: 1000}).ensure(context.Background(), nil, "plain", "pkg", []string{root}); err == nil {
			t.Fatal("found a file that is not executable")
		}
	})
}

func TestEnsureMissingCommandFailsSayingWhatToInstall(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   installer
		want []string
	}{
		{"when not root", installer{euid: 1000, aptGet: "/usr/bin/apt-get"}, []string{`"carewatch-no-such-command"`, `Debian package "carewatch-no-such-package"`, "apt-get install carewatch-no-such-package"}},
		{"when there is no apt-get", installer{euid: 0}, []string{`"carewatch-no-such-command"`, "apt-get is not available", `"carewatch-no-such-package"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.in.ensure(context.Background(), nil, "carewatch-no-such-command", "carewatch-no-such-package", []string{"/nonexistent/*/bin"})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, "/nonexistent/*/bin") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestFindNeverInstallsAndSaysHowTo(t *testing.T) {
	if p, err := Find("sh", "dash"); err != nil || filepath.Base(p) != "sh" {
		t.Errorf("Find(sh) = %q, %v; want the path of sh", p, err)
	}
	_, err := Find("carewatch-no-such-command", "carewatch-no-such-package", "/nonexistent/*/bin")
	if err == nil {
		t.Fatal("no error for a missing command")
	}
	for _, w := range []string{`"carewatch-no-such-command"`, "sudo apt-get install carewatch-no-such-package", "/nonexistent/*/bin"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

// fakeApt is a stand-in apt-get: it records its calls and installs the
// command into bin, but knows the package only after an update (like a
// machine whose package lists are stale) unless known is set.
type fakeApt struct {
	in      installer
	bin     string
	callLog string
}

func newFakeApt(t *testing.T, known, listsEmpty, broken bool) fakeApt {
	t.Helper()
	dir := t.TempDir()
	f := fakeApt{bin: filepath.Join(dir, "bin"), callLog: filepath.Join(dir, "calls")}
	state := filepath.Join(dir, "updated")
	if known {
		writeExecutable(t, state, "")
	}
	lists := filepath.Join(dir, "lists")
	if err := os.MkdirAll(lists, 0o755); err != nil {
		t.Fatal(err)
	}
	if !listsEmpty {
		writeExecutable(t, filepath.Join(lists, "deb.example_dists_stable_main_binary-amd64_Packages.lz4"), "")
	}
	install := fmt.Sprintf(`[ -f %[1]s ] || { echo "E: Unable to locate package $pkg" >&2; exit 100; }
	sleep 0.2; mkdir -p %[2]s; printf '#!/bin/sh\n' > %[2]s/fake-tool; chmod 755 %[2]s/fake-tool`, state, f.bin)
	if broken {
		install = `echo "E: Unable to locate package $pkg" >&2; exit 100`
	}
	script := fmt.Sprintf(`#!/bin/sh
for a; do pkg=$a; done
[ "$DEBIAN_FRONTEND" = noninteractive ] || { echo "not noninteractive" >&2; exit 1; }
case " $* " in
*" update "*) echo update >> %[1]s; touch %[2]s ;;
*" install -y --no-install-recommends "*) echo "install $pkg" >> %[1]s; %[3]s ;;
*) echo "unexpected arguments: $*" >&2; exit 1 ;;
esac
`, f.callLog, state, install)
	aptGet := filepath.Join(dir, "apt-get")
	writeExecutable(t, aptGet, script)
	f.in = installer{euid: 0, aptGet: aptGet, lockPath: filepath.Join(dir, "lock"), listsDir: lists}
	return f
}

func (f fakeApt) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(f.callLog)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(string(b), "install ", "install:"))
}

func TestEnsureInstallsTheMissingPackage(t *testing.T) {
	for _, tc := range []struct {
		name              string
		known, listsEmpty bool
		wantCalls         string
	}{
		{"with one install when the package is known", true, false, "install:fake-pkg"},
		{"after an update when the install fails", false, false, "install:fake-pkg update install:fake-pkg"},
		{"after an update first when the package lists are empty", false, true, "update install:fake-pkg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeApt(t, tc.known, tc.listsEmpty, false)
			got, err := f.in.ensure(context.Background(), nil, "fake-tool", "fake-pkg", []string{f.bin})
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(f.bin, "fake-tool"); got != want {
				t.Errorf("path %s, want %s", got, want)
			}
			if calls := strings.Join(f.calls(t), " "); calls != tc.wantCalls {
				t.Errorf("apt-get calls %q, want %q", calls, tc.wantCalls)
			}
		})
	}
}

func TestEnsureFailedInstallSaysWhy(t *testing.T) {
	f := newFakeApt(t, false, false, true)
	_, err := f.in.ensure(context.Background(), nil, "fake-tool", "fake-pkg", []string{f.bin})
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{`"fake-pkg"`, "Unable to locate package fake-pkg", "apt-get install"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestEnsureInstallsOnceWhenCalledConcurrently(t *testing.T) {
	f := newFakeApt(t, true, false, false)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = f.in.ensure(context.Background(), nil, "fake-tool", "fake-pkg", []string{f.bin})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if calls := f.calls(t); len(calls) != 1 {
		t.Errorf("apt-get calls %q, want a single install", calls)
	}
}

func TestEnsureStopsWaitingForTheLockWhenTheContextEnds(t *testing.T) {
	f := newFakeApt(t, true, false, false)
	unlock, err := filelock.Lock(context.Background(), f.in.lockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = f.in.ensure(ctx, nil, "fake-tool", "fake-pkg", []string{f.bin})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for lock") {
		t.Fatalf("error %v, want one saying the wait for the lock timed out", err)
	}
	if calls := f.calls(t); len(calls) != 0 {
		t.Errorf("apt-get ran without the lock: %q", calls)
	}
}

func TestCompareNatural(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/15/bin", -1},
		{"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/15/bin", 0},
		{"v010", "v9", 1},
		{"a", "b", -1},
		{"a1", "a1x", -1},
	} {
		t.Run(fmt.Sprintf("%s vs %s is %d", tc.a, tc.b, tc.want), func(t *testing.T) {
			if got := compareNatural(tc.a, tc.b); got != tc.want {
				t.Errorf("got %d", got)
			}
			if got := compareNatural(tc.b, tc.a); got != -tc.want {
				t.Errorf("reversed: got %d, want %d", got, -tc.want)
			}
		})
	}
}

func writeExecutable(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}
