// Package pglocal runs a private PostgreSQL server from the server binaries,
// for the demo command and for tests that need a real database.
//
// The server listens on 127.0.0.1 only, trusts every local connection as the
// superuser "carewatch", and keeps its data, unix socket and log inside one
// data directory, so that it never touches a system cluster.
package pglocal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lib/pq"

	"github.com/carewatch/carewatch/internal/localserver"
)

// Superuser is the role initdb creates; every DSN of a Server uses it.
const Superuser = "carewatch"

// BinDirEnv names the environment variable that, when set, gives the folder
// of the PostgreSQL server binaries (initdb, postgres).
const BinDirEnv = "CAREWATCH_PG_BINDIR"

// LogFileName is the server's log file inside the data directory.
const LogFileName = "postgres.log"

// defaultStopTimeout bounds Stop when its context has no deadline.
const defaultStopTimeout = 30 * time.Second

// Options configures Start.
type Options struct {
	// DataDir is the data directory; initdb runs there when it holds no
	// cluster yet (no PG_VERSION file).
	DataDir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Fast turns off fsync, synchronous_commit and full_page_writes: a
	// crash may lose or corrupt data, which only tests can afford.
	Fast bool
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
}

// Server is a running PostgreSQL server started by Start.
type Server struct {
	dataDir    string
	port       int
	bindir     string
	sockDir    string
	ownSockDir bool // sockDir was made by us outside DataDir; removed by Stop
	logger     *slog.Logger

	proc *os.Process
	done chan struct{} // closed when the postmaster has exited
	werr error         // its exit status, valid after done is closed
}

// Start finds the PostgreSQL server binaries, creates the cluster in
// o.DataDir if there is none, starts the server and waits, within ctx, until
// it accepts connections.
//
// The binaries are looked up in $CAREWATCH_PG_BINDIR, then in the highest
// /usr/lib/postgresql/*/bin (Debian keeps them outside PATH), then in PATH.
// initdb and postgres refuse to run as root, so when we are root they run as
// the "postgres" system user (or "nobody" if there is none), who then owns
// the data directory and must be able to reach it.
func Start(ctx context.Context, o Options) (*Server, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.DataDir == "" {
		return nil, errors.New("pglocal: Options.DataDir is required")
	}
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, fmt.Errorf("pglocal: data dir %q: %w", o.DataDir, err)
	}
	bindir, err := findBinDir()
	if err != nil {
		return nil, fmt.Errorf("pglocal: %w", err)
	}
	cred, err := runAs()
	if err != nil {
		return nil, fmt.Errorf("pglocal: %w", err)
	}
	if err := prepareDataDir(dataDir, cred); err != nil {
		return nil, fmt.Errorf("pglocal: %w", err)
	}
	if err := checkNotRunning(dataDir); err != nil {
		return nil, fmt.Errorf("pglocal: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := initdb(ctx, logger, bindir, dataDir, cred, o.Fast); err != nil {
			return nil, fmt.Errorf("pglocal: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("pglocal: %w", err)
	}

	// A port we picked may be taken by another process before postgres binds
	// it (test binaries start in parallel): pick again a few times. After a
	// crash, the old server's children may hold its shared memory for a
	// moment after it died: wait for them a few seconds.
	portAttempts, shmAttempts := 1, 0
	if o.Port == 0 {
		portAttempts = 5
	}
	for {
		port := o.Port
		if port == 0 {
			if port, err = localserver.FreePort(); err != nil {
				return nil, fmt.Errorf("pglocal: %w", err)
			}
		}
		s, err := start(ctx, logger, bindir, dataDir, port, cred, o.Fast)
		switch {
		case err == nil:
			return s, nil
		case errors.Is(err, errPortInUse) && portAttempts > 1:
			portAttempts--
			logger.Info("port taken, trying another", "port", port)
		case errors.Is(err, errShmInUse) && shmAttempts < 50:
			shmAttempts++
			logger.Info("shared memory of a previous server still in use, waiting", "data_dir", dataDir)
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("pglocal: %w", err)
			case <-time.After(200 * time.Millisecond):
			}
		default:
			return nil, fmt.Errorf("pglocal: %w", err)
		}
	}
}

// errPortInUse and errShmInUse mark starts that failed for a passing reason.
var (
	errPortInUse = errors.New("port in use")
	errShmInUse  = errors.New("shared memory in use")
)

// ErrNoServer is the error Start returns, wrapped, when it finds no
// PostgreSQL server binaries; installing them is the caller's business.
var ErrNoServer = errors.New("no PostgreSQL server binaries (initdb, postgres) in $" + BinDirEnv + ", /usr/lib/postgresql/*/bin or PATH: install PostgreSQL (Debian: apt-get install postgresql)")

// findBinDir returns the folder holding initdb and postgres.
func findBinDir() (string, error) {
	if d := os.Getenv(BinDirEnv); d != "" {
		if !hasServerBinaries(d) {
			return "", fmt.Errorf("$%s=%s holds no initdb and postgres", BinDirEnv, d)
		}
		return d, nil
	}
	if d := debianBinDir(); d != "" {
		return d, nil
	}
	if p, err := exec.LookPath("postgres"); err == nil && hasServerBinaries(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", ErrNoServer
}

// debianBinDir returns the highest-versioned /usr/lib/postgresql/N/bin that
// holds the server binaries, or "".
func debianBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int {
		va, vb := version(a), version(b)
		switch {
		case va < vb:
			return 1
		case va > vb:
			return -1
		}
		return 0
	})
	for _, d := range dirs {
		if hasServerBinaries(d) {
			return d
		}
	}
	return ""
}

func hasServerBinaries(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// credential is the user the server runs as; nil means ourselves.
type credential struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32
}

// runAs chooses an unprivileged user when we are root.
func runAs() (*credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("running as root, and neither a postgres nor a nobody user exists to run the server as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user %s: %w", u.Username, err)
	}
	c := &credential{name: u.Username, uid: uint32(uid), gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				c.groups = append(c.groups, uint32(g))
			}
		}
	}
	return c, nil
}

func (c *credential) sysProcAttr() *syscall.SysProcAttr {
	// Setpgid keeps a terminal's Ctrl-C from reaching the server directly:
	// the owner stops it in order. Pdeathsig (SIGQUIT: immediate shutdown)
	// takes it down if we die without stopping it, e.g. a test timeout.
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if c != nil {
		a.Credential = &syscall.Credential{Uid: c.uid, Gid: c.gid, Groups: c.groups}
	}
	return a
}

// prepareDataDir creates the data directory and, when the server runs as
// another user, hands it over and checks that the user can reach it.
func prepareDataDir(dataDir string, c *credential) error {
	// Parents we create must stay enterable by the server's user; the data
	// directory itself is private, as postgres requires.
	if err := os.MkdirAll(filepath.Dir(dataDir), 0o755); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	if err := os.Mkdir(dataDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating data dir: %w", err)
	}
	if c == nil {
		return nil
	}
	if err := canTraverse(filepath.Dir(dataDir), c); err != nil {
		return fmt.Errorf("the server runs as user %s (initdb and postgres refuse root), who cannot reach data dir %s: %w; choose a data dir under a folder that others may enter (e.g. chmod 0755)", c.name, dataDir, err)
	}
	return filepath.WalkDir(dataDir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, int(c.uid), int(c.gid)); err != nil {
			return fmt.Errorf("handing data dir to user %s: %w", c.name, err)
		}
		return nil
	})
}

// canTraverse checks that user c may search every folder from / down to dir.
func canTraverse(dir string, c *credential) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		perm := fi.Mode().Perm()
		var bit os.FileMode
		switch {
		case st.Uid == c.uid:
			bit = 0o100
		case st.Gid == c.gid || slices.Contains(c.groups, st.Gid):
			bit = 0o010
		default:
			bit = 0o001
		}
		if perm&bit == 0 {
			return fmt.Errorf("%s has mode %s", d, perm)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// checkNotRunning refuses a data directory whose postmaster.pid names a live
// postgres. A pid file left by a dead server is removed here when its pid
// has been reused by another program (postgres would take that program for
// a running server); a pid that is gone postgres handles itself.
func checkNotRunning(dataDir string) error {
	pidFile := filepath.Join(dataDir, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return nil // postgres reports a malformed file itself
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return nil
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.HasPrefix(string(comm), "postgres") {
		return fmt.Errorf("a PostgreSQL server (pid %d) is already running on data dir %s", pid, dataDir)
	}
	if err := os.Remove(pidFile); err != nil {
		return fmt.Errorf("removing stale %s: %w", pidFile, err)
	}
	return nil
}

func initdb(ctx context.Context, logger *slog.Logger, bindir, dataDir string, c *credential, fast bool) error {
	args := []string{"-D", dataDir, "-U", Superuser, "--auth=trust", "--encoding=UTF8", "--no-locale"}
	if fast {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bindir, "initdb"), args...)
	cmd.Dir = "/"
	cmd.Env = serverEnv()
	cmd.SysProcAttr = c.sysProcAttr()
	logger.Info("creating PostgreSQL cluster", "data_dir", dataDir, "bindir", bindir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb in %s: %w\n%s", dataDir, err, localserver.Tail(string(out), 20))
	}
	return nil
}

// serverEnv is our environment without PG* variables, which would change
// how initdb and postgres behave, and with the C locale, which keeps the
// server's messages in English: start recognises some of them in its log.
func serverEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=")
	})
	return append(env, "LANG=C", "LC_ALL=C")
}

// maxSocketPath is the longest unix socket path the kernel accepts
// (sun_path is 108 bytes with the terminating NUL).
const maxSocketPath = 107

func start(ctx context.Context, logger *slog.Logger, bindir, dataDir string, port int, c *credential, fast bool) (*Server, error) {
	s := &Server{dataDir: dataDir, port: port, bindir: bindir, sockDir: dataDir, logger: logger, done: make(chan struct{})}
	if len(filepath.Join(dataDir, ".s.PGSQL.65535.lock")) > maxSocketPath {
		d, err := os.MkdirTemp("", "pgsock")
		if err != nil {
			return nil, fmt.Errorf("socket dir: %w", err)
		}
		if c != nil {
			if err := os.Chown(d, int(c.uid), int(c.gid)); err != nil {
				_ = os.RemoveAll(d)
				return nil, fmt.Errorf("socket dir: %w", err)
			}
		}
		s.sockDir, s.ownSockDir = d, true
	}

	logPath := filepath.Join(dataDir, LogFileName)
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		s.cleanup()
		return nil, fmt.Errorf("server log: %w", err)
	}
	defer logFile.Close() // the server holds its own descriptor
	if c != nil {
		_ = logFile.Chown(int(c.uid), int(c.gid))
	}
	logStart, _ := logFile.Seek(0, 2)

	args := []string{
		"-D", dataDir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + s.sockDir,
		"-c", "logging_collector=off",
	}
	if fast {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(bindir, "postgres"), args...)
	cmd.Dir = dataDir
	cmd.Env = serverEnv()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = c.sysProcAttr()

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
		s.cleanup()
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	logger.Info("starting PostgreSQL", "data_dir", dataDir, "port", port, "pid", s.proc.Pid)

	if err := s.waitReady(ctx); err != nil {
		if s.exited() {
			err = fmt.Errorf("postgres exited: %w", s.werr)
		} else {
			_ = s.Stop(context.Background())
		}
		logTail := localserver.ReadTail(logPath, logStart, 20)
		switch {
		case strings.Contains(logTail, "Address already in use"):
			err = fmt.Errorf("%w (%w)", err, errPortInUse)
		case strings.Contains(logTail, "pre-existing shared memory block"):
			err = fmt.Errorf("%w (%w)", err, errShmInUse)
		}
		s.cleanup()
		return nil, fmt.Errorf("%w; server log %s:\n%s", err, logPath, logTail)
	}
	logger.Info("PostgreSQL ready", "port", port)
	return s, nil
}

// waitReady polls until the server accepts connections, exits, or ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	// connect_timeout, because lib/pq ignores the context during the
	// start-up exchange: something else that accepts on the port and never
	// answers must not hang us.
	db, err := sql.Open("postgres", s.DSN("postgres")+"&connect_timeout=2")
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		if s.exited() {
			return errors.New("server exited during start-up")
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
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
		case <-time.After(50 * time.Millisecond):
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

func (s *Server) cleanup() {
	if s.ownSockDir {
		_ = os.RemoveAll(s.sockDir)
	}
}

// DSN returns the URL that connects to database dbname as the superuser,
// over TCP on 127.0.0.1 without TLS.
func (s *Server) DSN(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(Superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port returns the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// CreateDatabase creates database name unless it exists already.
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	db, err := sql.Open("postgres", s.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("pglocal: create database %q: %w", name, err)
	}
	defer db.Close()
	if err := CreateDatabase(ctx, db, name); err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	return nil
}

// CreateDatabase creates database name through db (a connection to any
// database of the server, as a role allowed to create databases) unless it
// exists already; a concurrent creation of the same name is not an error.
func CreateDatabase(ctx context.Context, db *sql.DB, name string) error {
	var exists bool
	if err := db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		var pqErr *pq.Error
		if errors.As(err, &pqErr) && pqErr.Code == "42P04" { // duplicate_database
			return nil
		}
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// Stop shuts the server down (fast shutdown: open sessions are ended,
// committed data is kept) and waits for it to exit. When ctx ends first, or
// after 30 seconds if ctx has no deadline, the server is killed (an
// immediate shutdown, then SIGKILL 5 seconds later) and Stop returns an
// error. Stopping a stopped server does nothing.
func (s *Server) Stop(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStopTimeout)
		defer cancel()
	}
	defer s.cleanup()
	if s.exited() {
		return nil
	}
	// A server stopped by Pause would take no signal.
	_ = s.Resume()
	if ctx.Err() == nil {
		if err := s.proc.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("pglocal: stopping server: %w", err)
		}
		select {
		case <-s.done:
			s.logger.Info("PostgreSQL stopped", "port", s.port)
			return nil
		case <-ctx.Done():
		}
	}
	s.kill()
	return fmt.Errorf("pglocal: server did not stop in time and was killed: %w", ctx.Err())
}

// killGrace bounds an immediate shutdown before the postmaster is killed.
const killGrace = 5 * time.Second

// kill ends the server without a clean shutdown. SIGQUIT first: the
// postmaster then ends its children, whereas after a SIGKILL they live on
// for a moment, holding the shared memory that a new server on the data
// directory needs.
func (s *Server) kill() {
	_ = s.proc.Signal(syscall.SIGQUIT)
	select {
	case <-s.done:
	case <-time.After(killGrace):
		_ = s.proc.Kill()
		<-s.done
	}
}
