package pglocal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Pause stops the server and all its processes with SIGSTOP: the kernel
// still accepts connections on its port, but nothing answers them, nor any
// session already open. This is how a server behind a failed network path,
// or one swapping hard, looks to its clients; tests use it to show that no
// wait on the database is unbounded. Resume undoes it. Linux only.
func (s *Server) Pause() error {
	if s.exited() {
		return errors.New("pglocal: the server is not running")
	}
	// The postmaster first, so that it forks no new session meanwhile.
	if err := s.proc.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pglocal: pausing the server: %w", err)
	}
	return s.signalChildren(syscall.SIGSTOP)
}

// Resume continues a server stopped by Pause.
func (s *Server) Resume() error {
	if s.exited() {
		return errors.New("pglocal: the server is not running")
	}
	if err := s.signalChildren(syscall.SIGCONT); err != nil {
		return err
	}
	if err := s.proc.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("pglocal: resuming the server: %w", err)
	}
	return nil
}

// signalChildren signals the postmaster's children (each session and
// auxiliary process). They leave its process group, so they are found by
// their parent.
func (s *Server) signalChildren(sig syscall.Signal) error {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return fmt.Errorf("pglocal: listing processes: %w", err)
	}
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err != nil || ppid != s.proc.Pid {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if err != nil {
			continue
		}
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pglocal: %s to server process %d: %w", sig, pid, err)
		}
	}
	return nil
}
