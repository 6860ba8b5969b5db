// Package mariadblocal runs a private MariaDB server from Debian's
// mariadb-server binaries, for tests that need a real MySQL-family
// database, as package pglocal does for PostgreSQL.
//
// The server listens on 127.0.0.1 only, keeps its data, socket and log in
// one data directory, and lets root in without a password from this machine
// only: it is for tests, never for data that matters.
package mariadblocal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/carewatch/carewatch/internal/debian"
	"github.com/carewatch/carewatch/internal/localserver"
)

// LogFileName is the server's error log inside the data directory.
const LogFileName = "error.log"

// defaultStopTimeout bounds Stop when its context has no deadline.
const defaultStopTimeout = 30 * time.Second

// Options configures Start.
type Options struct {
	// DataDir is the data directory; mariadb-install-db runs there when it
	// holds no server yet (no mysql folder).
	DataDir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
}

// Server is a running MariaDB server started by Start.
type Server struct {
	dataDir string
	port    int
	logger  *slog.Logger

	proc *os.Process
	done chan struct{} // closed when mariadbd has exited
	werr error         // its exit status, valid after done is closed
}

// Start finds the server binaries (installing them if allowed), creates the
// server's system tables in o.DataDir if there are none, starts mariadbd and
// waits, within ctx, until it accepts connections. As root, the server runs
// as the mysql system user, who then owns the data directory and must be
// able to reach it.
func Start(ctx context.Context, o Options) (*Server, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.DataDir == "" {
		return nil, errors.New("mariadblocal: Options.DataDir is required")
	}
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, fmt.Errorf("mariadblocal: data dir %q: %w", o.DataDir, err)
	}
	mariadbd, installDB, err := findBinaries()
	if err != nil {
		return nil, fmt.Errorf("mariadblocal: %w", err)
	}
	var userArgs []string
	if os.Geteuid() == 0 {
		name := "mysql"
		if _, err := user.Lookup(name); err != nil {
			return nil, fmt.Errorf("mariadblocal: running as root, and there is no %s user to run the server as: %w", name, err)
		}
		userArgs = []string{"--user=" + name}
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("mariadblocal: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "mysql")); errors.Is(err, os.ErrNotExist) {
		args := append([]string{"--no-defaults", "--datadir=" + dataDir, "--auth-root-authentication-method=normal",
			"--skip-test-db", "--innodb-log-file-size=8M"}, userArgs...)
		logger.Info("creating MariaDB system tables", "data_dir", dataDir)
		cmd := exec.CommandContext(ctx, installDB, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("mariadblocal: %s: %w\n%s", filepath.Base(installDB), err, localserver.Tail(string(out), 20))
		}
	} else if err != nil {
		return nil, fmt.Errorf("mariadblocal: %w", err)
	}

	attempts := 1
	if o.Port == 0 {
		attempts = 5
	}
	for {
		port := o.Port
		if port == 0 {
			if port, err = localserver.FreePort(); err != nil {
				return nil, fmt.Errorf("mariadblocal: %w", err)
			}
		}
		s, err := start(ctx, logger, mariadbd, dataDir, port, userArgs)
		if err == nil {
			return s, nil
		}
		if attempts--; attempts == 0 || !strings.Contains(err.Error(), "Address already in use") {
			return nil, fmt.Errorf("mariadblocal: %w", err)
		}
		logger.Info("port taken, trying another", "port", port)
	}
}

// findBinaries returns the paths of mariadbd and mariadb-install-db, which
// Debian keeps in /usr/sbin and /usr/bin. It installs nothing (.ci/run
// does); a missing one is an error that says how to install it.
func findBinaries() (mariadbd, installDB string, err error) {
	find := func(name string) (string, error) {
		return debian.Find(name, "mariadb-server", "/usr/sbin", "/usr/bin")
	}
	if mariadbd, err = find("mariadbd"); err != nil {
		return "", "", err
	}
	if installDB, err = find("mariadb-install-db"); err != nil {
		return "", "", err
	}
	return mariadbd, installDB, nil
}

func (s *Server) socket() string { return filepath.Join(s.dataDir, "mysqld.sock") }

func start(ctx context.Context, logger *slog.Logger, mariadbd, dataDir string, port int, userArgs []string) (*Server, error) {
	s := &Server{dataDir: dataDir, port: port, logger: logger, done: make(chan struct{})}
	logPath := filepath.Join(dataDir, LogFileName)
	var logStart int64
	if fi, err := os.Stat(logPath); err == nil {
		logStart = fi.Size()
	}
	args := append([]string{
		"--no-defaults",
		"--datadir=" + dataDir,
		"--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--socket=" + s.socket(),
		"--pid-file=" + filepath.Join(dataDir, "mysqld.pid"),
		"--log-error=" + logPath,
		"--skip-log-bin",
		"--innodb-buffer-pool-size=32M",
		"--innodb-log-file-size=8M",
		"--innodb-flush-log-at-trx-commit=0",
		// performance_schema shows each session's connection attributes,
		// where a client's program_name is.
		"--performance-schema=ON",
	}, userArgs...)
	cmd := exec.Command(mariadbd, args...)
	cmd.Dir = dataDir
	// The server dies with the process that started it (a test binary that
	// is killed must not leave it running).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}

	// Pdeathsig fires when the thread that started the child exits, not the
	// process; so start and wait on a goroutine that keeps its thread.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(s.done)
			return
		}
		s.proc = cmd.Process
		started <- nil
		s.werr = cmd.Wait()
		close(s.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting mariadbd: %w", err)
	}
	logger.Info("starting MariaDB", "data_dir", dataDir, "port", port, "pid", s.proc.Pid)
	if err := s.waitReady(ctx); err != nil {
		if s.exited() {
			err = fmt.Errorf("mariadbd exited: %w", s.werr)
		} else {
			_ = s.Stop(context.Background())
		}
		return nil, fmt.Errorf("%w; server log %s:\n%s", err, logPath, localserver.ReadTail(logPath, logStart, 20))
	}
	logger.Info("MariaDB ready", "port", port)
	return s, nil
}

// waitReady polls until the server accepts connections, exits, or ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.Timeout = "root", "tcp", s.Addr(), 2*time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the server to accept connections: %w (last error: %v)", ctx.Err(), err)
		case <-s.done:
			return errors.New("server exited during start-up")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Addr is the server's TCP address, 127.0.0.1:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// AdminDSN returns the go-sql-driver/mysql DSN that connects to database
// dbname (none if empty) as root, over TCP on 127.0.0.1.
func (s *Server) AdminDSN(dbname string) string {
	return "root@tcp(" + s.Addr() + ")/" + dbname
}

// Stop shuts the server down cleanly (SIGTERM), waiting within ctx (30
// seconds if it has no deadline); past that it kills the server.
func (s *Server) Stop(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStopTimeout)
		defer cancel()
	}
	if s.exited() {
		return nil
	}
	if ctx.Err() == nil {
		if err := s.proc.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("mariadblocal: stopping server: %w", err)
		}
		select {
		case <-s.done:
			s.logger.Info("MariaDB stopped", "port", s.port)
			return nil
		case <-ctx.Done():
		}
	}
	_ = s.proc.Kill()
	<-s.done
	return fmt.Errorf("mariadblocal: server did not stop in time and was killed: %w", ctx.Err())
}

// Pause stops the server with SIGSTOP: the kernel still accepts connections
// on its port, but nothing answers them, nor any session already open. This
// is how a server behind a failed network path, or one swapping hard, looks
// to its clients; tests use it to show that no wait on the database is
// unbounded. mariadbd is one process, so one signal stops every session.
// Resume undoes it. Linux only.
func (s *Server) Pause() error {
	if s.exited() {
		return errors.New("mariadblocal: the server is not running")
	}
	if err := s.proc.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("mariadblocal: pausing the server: %w", err)
	}
	return nil
}

// Resume continues a server stopped by Pause.
func (s *Server) Resume() error {
	if s.exited() {
		return errors.New("mariadblocal: the server is not running")
	}
	if err := s.proc.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("mariadblocal: resuming the server: %w", err)
	}
	return nil
}
