package pglocal

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCanTraverse(t *testing.T) {
	parent, err := os.MkdirTemp("", "carewatch-traverse-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	dir := filepath.Join(parent, "a", "b")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A user that owns nothing here and is in none of its groups.
	stranger := &credential{name: "stranger", uid: 4000000001, gid: 4000000001}

	if err := os.Chmod(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Run("fails naming the private folder", func(t *testing.T) {
		err := canTraverse(dir, stranger)
		if err == nil || !strings.Contains(err.Error(), parent) {
			t.Fatalf("error %v, want one naming %s", err, parent)
		}
	})
	if err := os.Chmod(parent, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Run("succeeds when others may search every folder", func(t *testing.T) {
		if err := canTraverse(dir, stranger); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLongDataDirGetsItsSocketInAShortFolder(t *testing.T) {
	t.Parallel()
	parent, err := os.MkdirTemp("", "carewatch-pglocal-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(parent, strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(filepath.Dir(dataDir), 0o755); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{DataDir: dataDir, Fast: true, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !s.ownSockDir || strings.HasPrefix(s.sockDir, dataDir) {
		t.Errorf("socket dir %s for a %d-byte data dir, want a short folder of its own", s.sockDir, len(dataDir))
	}
	if err := s.CreateDatabase(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.sockDir); !os.IsNotExist(err) {
		t.Errorf("socket dir %s still there after Stop (%v)", s.sockDir, err)
	}
}

func TestStartAfterACrashDespiteStalePidFileAndLingeringChildren(t *testing.T) {
	t.Parallel()
	parent, err := os.MkdirTemp("", "carewatch-pglocal-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(parent, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	s, err := Start(ctx, Options{DataDir: dataDir, Fast: true, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	// A crash: the postmaster dies at once, leaving postmaster.pid behind and
	// its children, which hold the shared memory, for a moment. A stopped
	// child makes that moment last until we kill it.
	children := childrenOf(t, s.proc.Pid)
	if len(children) == 0 {
		t.Fatal("server has no child processes")
	}
	if err := syscall.Kill(children[0], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := s.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
	if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); err != nil {
		t.Fatalf("killed server left no postmaster.pid (%v): the test no longer covers a stale pid file", err)
	}
	time.AfterFunc(time.Second, func() { _ = syscall.Kill(children[0], syscall.SIGKILL) })

	var logs strings.Builder
	s, err = Start(ctx, Options{DataDir: dataDir, Fast: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Log(logs.String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "shared memory") {
		t.Error("Start did not wait for the shared memory of the crashed server: the test no longer covers that")
	}
	if err := s.CreateDatabase(ctx, "after_crash"); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var kids []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			kids = append(kids, child)
		}
	}
	return kids
}
