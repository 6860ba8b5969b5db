package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLockKey is the advisory lock key that serialises migrations of one
// database by several processes ("carewatch migrate" in ASCII).
const migrateLockKey int64 = 0x63_77_6d_69_67_72_61_74

// migration is one numbered schema change: SQL, or for a change SQL cannot
// express, a Go function run in the migration's transaction.
type migration struct {
	version int
	name    string
	sql     string
	apply   func(ctx context.Context, tx *sqlx.Tx) error
}

// goMigrations are the migrations written in Go, numbered among the SQL
// files.
var goMigrations = []migration{
	{version: 7, name: "0007_series_ids_by_sorted_labels", apply: rehashSeriesIDs},
}

// migrations reads the embedded migration files. Their names start with
// their version number: 0001_init.sql.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("store: reading migrations: %w", err)
	}
	var ms []migration
	seen := make(map[int]string)
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration %q: name must start with a positive version number and '_'", name)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("store: migrations %q and %q have the same version %d", other, name, v)
		}
		seen[v] = name
		b, err := fs.ReadFile(migrationFiles, path.Join("migrations", name))
		if err != nil {
			return nil, fmt.Errorf("store: reading migration %q: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	for _, m := range goMigrations {
		if other, dup := seen[m.version]; dup {
			return nil, fmt.Errorf("store: migrations %q and %q have the same version %d", other, m.name, m.version)
		}
		seen[m.version] = m.name
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// Migrate brings the database schema up to date by applying, in order, the
// embedded migrations it has not applied yet, each in its own transaction
// and recorded in schema_migrations. Every transaction first takes an
// advisory lock, so processes migrating the same database at once apply
// each migration exactly once, one after the other.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	// The bookkeeping table is made under the same lock: two sessions
	// running CREATE TABLE IF NOT EXISTS at once can both try to create it.
	if err := s.inMigrateTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`)
		return err
	}); err != nil {
		return fmt.Errorf("store: migrate: schema_migrations: %w", err)
	}
	for _, m := range ms {
		applied := false
		err := s.inMigrateTx(ctx, func(tx *sqlx.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if m.apply != nil {
				if err := m.apply(ctx, tx); err != nil {
					return err
				}
			} else if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			applied = true
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration %s: %w", m.name, err)
		}
		if applied {
			s.logger.Info("applied database migration", "migration", m.name)
		}
	}
	// A newer carewatch may have migrated the database further; this one
	// carries on, as a rolling upgrade needs, but says so.
	var newest int
	if err := s.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if len(ms) > 0 && newest > ms[len(ms)-1].version {
		s.logger.Warn("the database schema is newer than this carewatch knows",
			"schema_version", newest, "known_version", ms[len(ms)-1].version)
	}
	return nil
}

// inMigrateTx runs fn in a transaction holding the migration lock.
func (s *Store) inMigrateTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// PendingMigrations returns the names of the embedded migrations the
// database has not applied, reading only: an empty database has them all
// pending. It changes nothing, for checks that must leave the store as they
// found it.
func (s *Store) PendingMigrations(ctx context.Context) ([]string, error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	var exists bool
	if err := s.db.QueryRowContext(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("store: reading the schema version: %w", err)
	}
	applied := map[int]bool{}
	if exists {
		var versions []int
		if err := s.db.SelectContext(ctx, &versions, `SELECT version FROM schema_migrations`); err != nil {
			return nil, fmt.Errorf("store: reading the schema version: %w", err)
		}
		for _, v := range versions {
			applied[v] = true
		}
	}
	var pending []string
	for _, m := range ms {
		if !applied[m.version] {
			pending = append(pending, m.name)
		}
	}
	return pending, nil
}
