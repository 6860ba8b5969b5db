// Package e2e runs carewatch end to end with the real programs: the
// carewatch binary built from this checkout, PostgreSQL (through pgtest),
// and Debian's Prometheus and Alertmanager, each started by the test on
// 127.0.0.1 with its state in a temporary folder and stopped when the test
// ends.
//
// Its exported helpers are the harness for any test that needs the whole
// chain: StartCarewatch, StartPrometheus (with a query helper),
// StartAlertmanager, StartTeamsRelay, and the sinks that stand in for the
// world outside (a webhook receiver, an SMTP server, a Teams webhook).
// Tests that use them need pgtest's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/carewatch/carewatch/internal/debian"
)

// startTimeout bounds how long a program may take to be ready.
const startTimeout = 60 * time.Second

// stopTimeout bounds a graceful stop before the process is killed.
const stopTimeout = 15 * time.Second

// RepoRoot returns the root of the carewatch checkout the test runs in: the
// nearest folder above the working directory that holds go.mod.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("e2e: no go.mod above the working directory")
		}
		dir = parent
	}
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago. The programs under test take their address on the command line and
// cannot report a port 0 back, so a port is picked and released first.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}

// BuildCommand builds the main package pkg of this module (e.g.
// "./cmd/carewatch") into a temporary folder and returns the binary's path.
func BuildCommand(tb testing.TB, pkg string) string {
	tb.Helper()
	// go test puts its own GOROOT/bin first on the tests' PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		tb.Fatalf("e2e: %v", err)
	}
	out := filepath.Join(tb.TempDir(), filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", out, pkg)
	cmd.Dir = RepoRoot(tb)
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("e2e: go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// Process is a program the test started. Its output goes to a log file in
// a temporary folder, whose tail is shown if the test fails.
type Process struct {
	Name string
	cmd  *exec.Cmd
	log  *logFile
	done chan struct{}
	err  error
	once sync.Once
}

// logFile is a process's output, kept in memory and shared with the test.
type logFile struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logFile) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartProcess starts a program with args and extra environment variables
// (NAME=value); it is stopped when tb ends. It does not wait for the
// program to be ready: see WaitHTTP.
func StartProcess(tb testing.TB, name, binary string, env []string, args ...string) *Process {
	tb.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &Process{Name: name, cmd: cmd, log: &logFile{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		tb.Fatalf("e2e: starting %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.Stop(tb)
		if tb.Failed() {
			tb.Logf("--- %s output (last 60 lines)\n%s", name, tail(p.log.String(), 60))
		}
	})
	return p
}

// Output returns what the process has written so far.
func (p *Process) Output() string { return p.log.String() }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop asks the process to end (SIGTERM), and kills it if it has not
// within stopTimeout. It is safe to call more than once.
func (p *Process) Stop(tb testing.TB) {
	tb.Helper()
	p.once.Do(func() {
		if p.Exited() {
			return
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			tb.Errorf("e2e: stopping %s: %v", p.Name, err)
		}
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			tb.Errorf("e2e: %s did not stop within %v of SIGTERM; killing it", p.Name, stopTimeout)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// WaitHTTP waits until GET url answers 200, failing tb if the process
// exits first or startTimeout passes.
func (p *Process) WaitHTTP(tb testing.TB, url string) {
	tb.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if p.Exited() {
			tb.Fatalf("e2e: %s exited before %s answered (%v):\n%s", p.Name, url, p.err, tail(p.Output(), 40))
		}
		if time.Now().After(deadline) {
			tb.Fatalf("e2e: %s: %s not ready within %v (last: %s)", p.Name, url, startTimeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Eventually calls cond every quarter second until it returns true,
// failing tb with what it waited for if within passes first. cond's message says what
// it saw last, for the failure.
func Eventually(tb testing.TB, what string, within time.Duration, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("e2e: waited %v for %s; last: %s", within, what, msg)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// WriteFile writes text to a file named name in a temporary folder and
// returns its path.
func WriteFile(tb testing.TB, name, text string) string {
	tb.Helper()
	f := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	return f
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// debianCommand finds a program from a Debian package (.ci/run installs
// it), failing tb with the command that installs it when it is missing.
func debianCommand(tb testing.TB, command, pkg string) string {
	tb.Helper()
	p, err := debian.Find(command, pkg)
	if err != nil {
		tb.Fatalf("e2e: %v", err)
	}
	return p
}

// Signal sends sig to the process.
func (p *Process) Signal(tb testing.TB, sig os.Signal) {
	tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("e2e: signalling %s: %v", p.Name, err)
	}
}

// WaitExit waits up to d for the process to end, and reports whether it
// did and with what error (nil for exit status 0).
func (p *Process) WaitExit(d time.Duration) (exited bool, err error) {
	select {
	case <-p.done:
		return true, p.err
	case <-time.After(d):
		return false, nil
	}
}
