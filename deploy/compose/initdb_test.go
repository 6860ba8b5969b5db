package compose_test

import (
	"context"
	"errors"
	"net/url"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/store"
)

// runInitScripts runs the init scripts a PostgreSQL service mounts at
// /docker-entrypoint-initdb.d against srv, as the postgres image does when
// it initialises an empty volume: each *.sh in name order, as the
// superuser, with the service's environment.
func runInitScripts(t *testing.T, srv *pglocal.Server, s types.ServiceConfig) {
	t.Helper()
	dir := filepath.Join(root, mustHostFile(t, s, "/docker-entrypoint-initdb.d"))
	scripts, _ := filepath.Glob(filepath.Join(dir, "*.sh"))
	if len(scripts) == 0 {
		t.Fatalf("%s: no init script in %s", s.Name, dir)
	}
	sort.Strings(scripts)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatalf("psql (Debian's postgresql-client) is needed to run the init scripts: %v", err)
	}
	environ := []string{
		"PATH=" + filepath.Dir(psql) + ":/usr/bin:/bin",
		"PGHOST=127.0.0.1", "PGPORT=" + strconv.Itoa(srv.Port()),
		"POSTGRES_USER=" + imageSuperuser, "POSTGRES_DB=postgres",
	}
	for k, v := range s.Environment {
		if v != nil && k != "POSTGRES_USER" && k != "POSTGRES_DB" {
			environ = append(environ, k+"="+*v)
		}
	}
	for _, f := range scripts {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		cmd := exec.CommandContext(ctx, "sh", f)
		cmd.Env = environ
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: %s: %v\n%s", s.Name, filepath.Base(f), err, out)
		}
	}
}

// imageSuperuser is the superuser the postgres image creates when
// POSTGRES_USER is not set.
const imageSuperuser = "postgres"

// imageLikeServer starts a private PostgreSQL server whose superuser is
// the image's, postgres: the test servers' own superuser has the name of
// the role the init scripts create for carewatch, which they must be free
// to create.
func imageLikeServer(t *testing.T) *pglocal.Server {
	t.Helper()
	srv := pgtest.NewServer(t)
	boot := connectAs(t, srv, pglocal.Superuser, "postgres")
	if _, err := boot.ExecContext(t.Context(), `CREATE ROLE `+imageSuperuser+` SUPERUSER LOGIN`); err != nil {
		t.Fatal(err)
	}
	boot.Close()
	su := connectAs(t, srv, imageSuperuser, "postgres")
	if _, err := su.ExecContext(t.Context(), `ALTER ROLE `+pglocal.Superuser+` RENAME TO test_bootstrap`); err != nil {
		t.Fatal(err)
	}
	return srv
}

// roleDSN connects to database as role (the test server trusts its
// loopback, so no password is needed: what is checked is what each role
// may do).
func roleDSN(srv *pglocal.Server, role, database string) string {
	u, _ := url.Parse(srv.DSN(database))
	u.User = url.User(role)
	return u.String()
}

// connectAs opens database as role, failing t if it cannot.
func connectAs(t *testing.T, srv *pglocal.Server, role, database string) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("postgres", roleDSN(srv, role, database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(t.Context()); err != nil {
		t.Fatalf("connecting to %s as %s: %v", database, role, err)
	}
	return db
}

// notSuperuser fails t if db's role is a superuser or may create roles or
// databases.
func notSuperuser(t *testing.T, db *sqlx.DB) {
	t.Helper()
	var r struct {
		Name        string `db:"rolname"`
		Super       bool   `db:"rolsuper"`
		CreateRole  bool   `db:"rolcreaterole"`
		CreateDB    bool   `db:"rolcreatedb"`
		BypassRLS   bool   `db:"rolbypassrls"`
		Replication bool   `db:"rolreplication"`
	}
	if err := db.GetContext(t.Context(), &r, `SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication FROM pg_roles WHERE rolname = current_user`); err != nil {
		t.Fatal(err)
	}
	if r.Super || r.CreateRole || r.CreateDB || r.BypassRLS || r.Replication {
		t.Errorf("role %s: %+v, want no superuser, role or database creation, RLS bypass or replication", r.Name, r)
	}
}

// refused fails t unless db refuses statement for want of privilege (or
// because the role's sessions are read-only).
func refused(t *testing.T, db *sqlx.DB, statement string) {
	t.Helper()
	_, err := db.ExecContext(t.Context(), statement)
	var pqErr *pq.Error
	switch {
	case err == nil:
		t.Errorf("%s: allowed, want it refused", statement)
	case errors.As(err, &pqErr) && (pqErr.Code == "42501" || pqErr.Code == "25006"):
		// insufficient_privilege, read_only_sql_transaction
	default:
		t.Errorf("%s: %v, want it refused for want of privilege", statement, err)
	}
}

// The init scripts, run as the postgres image runs them, give carewatch a
// role that owns its store and can migrate and write it without being a
// superuser, Grafana a role that reads the store and cannot write it, and
// the demo council an owner that creates it and a reader, carewatch's
// collectors' role, that reads it and cannot write it.
func TestComposeInitScriptsGiveEachRoleLeastPrivilege(t *testing.T) {
	p := mustLoad(t)
	srv := imageLikeServer(t)
	st, src := service(t, p, storeService), service(t, p, demoSourceService)
	runInitScripts(t, srv, st)
	runInitScripts(t, srv, src)

	t.Run("carewatch owns its store: it migrates and records runs, and is no superuser", func(t *testing.T) {
		role, database := env(st, ownerUserEnv), env(st, ownerDatabaseEnv)
		notSuperuser(t, connectAs(t, srv, role, database))
		s, err := store.Open(t.Context(), roleDSN(srv, role, database), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatalf("migrating the store as %s: %v", role, err)
		}
		now := time.Now()
		if _, err := s.SaveRun(t.Context(), kpi.Run{Collector: "caseload", StartedAt: now, FinishedAt: now, Err: errors.New("source down")}, nil); err != nil {
			t.Fatalf("recording a run as %s: %v", role, err)
		}
		if h, err := s.Health(t.Context()); err != nil || len(h) != 1 {
			t.Fatalf("reading collector health as %s: %v %v", role, h, err)
		}
		var owner string
		if err := s.DB().GetContext(t.Context(), &owner, `SELECT tableowner FROM pg_tables WHERE tablename = 'runs'`); err != nil || owner != role {
			t.Errorf("runs is owned by %q (%v), want %s", owner, err, role)
		}
	})

	t.Run("grafana's role reads the store and cannot write it", func(t *testing.T) {
		db := connectAs(t, srv, env(st, readerUserEnv), env(st, ownerDatabaseEnv))
		notSuperuser(t, db)
		var n int
		if err := db.GetContext(t.Context(), &n, `SELECT count(*) FROM runs`); err != nil || n != 1 {
			t.Errorf("reading runs: %d, %v; want the 1 run recorded", n, err)
		}
		refused(t, db, `DELETE FROM runs`)
		refused(t, db, `CREATE TABLE public.grafana_was_here (x int)`)
	})

	t.Run("the demo council is created by its owner and read, not written, by carewatch's collectors' role", func(t *testing.T) {
		database := env(src, ownerDatabaseEnv)
		owner := connectAs(t, srv, env(src, ownerUserEnv), database)
		notSuperuser(t, owner)
		if err := demo.Setup(t.Context(), owner, demo.Options{Seed: 1}); err != nil {
			t.Fatalf("creating the demo council as %s: %v", env(src, ownerUserEnv), err)
		}
		reader := connectAs(t, srv, env(src, readerUserEnv), database)
		notSuperuser(t, reader)
		for _, table := range []string{"cms.child_case", "cms.worker", "hr.establishment", "ref.bank_holiday"} {
			var n int
			if err := reader.GetContext(t.Context(), &n, `SELECT count(*) FROM `+table); err != nil {
				t.Errorf("the reader cannot read %s: %v", table, err)
			}
		}
		refused(t, reader, `UPDATE cms.reporting_date SET today = today + 1`)
		refused(t, reader, `CREATE TABLE cms.reader_was_here (x int)`)
		// The store's database is not the demo's to enter.
		if db, err := sqlx.Open("postgres", roleDSN(srv, env(src, readerUserEnv), env(st, ownerDatabaseEnv))); err == nil {
			if err := db.PingContext(t.Context()); err == nil {
				t.Errorf("the demo's reader connects to the store's database")
			}
			db.Close()
		}
	})
}
