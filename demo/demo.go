// Package demo is carewatch's demo council: a synthetic, London-sized
// borough's case-management reporting database and HR establishment,
// generated deterministically from a seed, whose clock can be moved on day
// by day while carewatch collects from it.
//
// The data live in PostgreSQL schemas shaped like a council's reporting
// warehouse: cms (teams, workers, children's cases and assessments, adults'
// assessment requests, and cms.reporting_date, the extract date that
// queries use instead of now()), hr (the social work establishment) and ref
// (England and Wales bank holidays); demo_sim keeps what only the
// simulation needs. Teams have functional names and workers are surrogate
// keys: there is no personal data, not even made-up names.
//
// The council opens with about 190 FTE children's social workers (agency
// included), about 2,400 open children's cases in twenty case-holding teams
// (one team red on caseload, one amber), London-like vacancy and agency
// rates, about 4,300 single assessments a year, and a few hundred adults
// waiting for a Care Act assessment with a tail beyond six months.
//
// BuildReturns and WriteReturns render the same council's statutory
// returns (Ofsted's Annex A workbook, DfE's SSDA903 files, the adults'
// Client Level Data) as councils' systems export them, and Returns.Figures
// computes their KPIs in Go, independently of the SQL of examples/annex-a,
// examples/ssda903 and examples/cld.
//
// Expected recomputes the demo configuration's KPIs in Go from the raw
// rows, independently of the SQL in examples/demo/carewatch.yml, for the
// tests that check carewatch end to end.
package demo

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
)

// The environment variables the demo configuration
// (examples/demo/carewatch.yml) reads its connection strings from: the
// store's and the demo council's reporting database's.
const (
	StoreDSNEnv  = "CAREWATCH_DATABASE_URL"
	SourceDSNEnv = "CAREWATCH_DEMO_SOURCE_URL"
	// SourceReaderDSNEnv, when set, is the demo council's database as a
	// read-only role: carewatch-demo creates the council through
	// SourceDSNEnv, as its owner, and carewatch reads it through this one.
	SourceReaderDSNEnv = "CAREWATCH_DEMO_SOURCE_READER_URL"
)

// Options say which council to build.
type Options struct {
	// Seed picks the council: the same seed and Today give the same data.
	Seed uint64
	// Today is the reporting date the demo starts at; only its calendar
	// date matters. The zero time means the current date in UTC.
	Today time.Time
}

// Setup creates the demo council in db, dropping any previous one (the
// schemas cms, hr, ref and demo_sim), in one transaction.
func Setup(ctx context.Context, db *sqlx.DB, o Options) error {
	today := o.Today
	if today.IsZero() {
		today = time.Now().UTC()
	}
	w := generate(o.Seed, dayOf(today))
	return inTx(ctx, db, "set-up", func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, schemaDDL); err != nil {
			return fmt.Errorf("schema: %w", err)
		}
		return w.save(ctx, tx, true)
	})
}

// Advance moves the reporting date on by days, simulating each day in
// turn: referrals and their assessments, assessments completing, cases
// opening, closing and moving between teams, workers leaving and starting
// (posts falling vacant, being filled or covered by agency staff), and
// adults' assessment requests arriving and being assessed. The outcome
// depends only on the seed and the data as they stand, so replaying the
// same history gives the same council. All the days are written in one
// transaction.
func Advance(ctx context.Context, db *sqlx.DB, days int) error {
	if days < 0 {
		return fmt.Errorf("demo: cannot advance by %d days", days)
	}
	return inTx(ctx, db, "advance", func(tx *sqlx.Tx) error {
		w, err := load(ctx, tx)
		if err != nil {
			return err
		}
		for range days {
			if err := ctx.Err(); err != nil {
				return err
			}
			w.step(w.today + 1)
		}
		return w.save(ctx, tx, false)
	})
}

// AddCases opens n children's cases in the named team on the reporting date
// (referrals with their assessments, for an assessment team) and allocates
// them to its social workers, least loaded first: a way to push a team over
// its caseload threshold through the demo's own data. The cases are dated
// the reporting date even when it is a weekend or a bank holiday, as an
// out-of-hours referral would be.
func AddCases(ctx context.Context, db *sqlx.DB, teamName string, n int) error {
	if n <= 0 {
		return fmt.Errorf("demo: cannot add %d cases", n)
	}
	return inTx(ctx, db, "add cases", func(tx *sqlx.Tx) error {
		w, t, err := loadTeam(ctx, tx, teamName)
		if err != nil {
			return err
		}
		rng := rand.New(rand.NewPCG(w.seed, 0xadd0_0000_0000_0000|uint64(w.lastID.cas)))
		d := w.today
		if w.leastLoaded(t.id, d, false, nil) == nil {
			return fmt.Errorf("team %q has no social worker to allocate cases to", teamName)
		}
		for range n {
			if t.kind == typeAssessment {
				w.refer(t, d, assessmentDays(rng, t.prof.lateShare), rng)
				continue
			}
			c := w.newCase(t, t.mainCaseType(), d)
			w.assign(c, w.leastLoaded(t.id, d, false, nil))
		}
		return w.save(ctx, tx, false)
	})
}

// CloseCases closes, on the reporting date, the n most recently opened
// open cases of the named team (completing their assessment, for an
// assessment team); after AddCases with the same n, those are exactly the
// cases it added. It fails, changing nothing, if the team has fewer than n
// open cases.
func CloseCases(ctx context.Context, db *sqlx.DB, teamName string, n int) error {
	if n <= 0 {
		return fmt.Errorf("demo: cannot close %d cases", n)
	}
	return inTx(ctx, db, "close cases", func(tx *sqlx.Tx) error {
		w, t, err := loadTeam(ctx, tx, teamName)
		if err != nil {
			return err
		}
		var open []*childCase
		for i := len(w.cases) - 1; i >= 0; i-- {
			if c := w.cases[i]; c.team == t.id && c.open() {
				open = append(open, c)
			}
		}
		if len(open) < n {
			return fmt.Errorf("team %q has %d open cases, fewer than the %d to close", teamName, len(open), n)
		}
		// Most recently opened first; among cases opened the same day, the
		// latest recorded (highest id) first.
		slices.SortStableFunc(open, func(a, b *childCase) int {
			if a.opened != b.opened {
				return cmp.Compare(b.opened, a.opened)
			}
			return cmp.Compare(b.id, a.id)
		})
		closing := map[*childCase]bool{}
		for _, c := range open[:n] {
			w.close(c, w.today)
			closing[c] = true
		}
		for _, a := range w.assessments {
			if closing[a.cas] {
				a.completed = w.today
				a.dirty = true
			}
		}
		return w.save(ctx, tx, false)
	})
}

func loadTeam(ctx context.Context, tx *sqlx.Tx, name string) (*world, *team, error) {
	w, err := load(ctx, tx)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range w.teams {
		if t.name == name {
			if !t.holdsChildrenCases() {
				return nil, nil, fmt.Errorf("team %q holds no children's cases", name)
			}
			return w, t, nil
		}
	}
	return nil, nil, fmt.Errorf("no team is called %q", name)
}

// ReportingDate returns the demo's current reporting date (midnight UTC).
func ReportingDate(ctx context.Context, db *sqlx.DB) (time.Time, error) {
	var today time.Time
	if err := db.GetContext(ctx, &today, `SELECT today FROM cms.reporting_date`); err != nil {
		return time.Time{}, fmt.Errorf("demo: reporting date: %w", err)
	}
	return dayOf(today).time(), nil
}

func inTx(ctx context.Context, db *sqlx.DB, what string, fn func(*sqlx.Tx) error) (err error) {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("demo %s: %w", what, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("demo %s: %w", what, err), rollback(tx))
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func rollback(tx *sqlx.Tx) error {
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return err
	}
	return nil
}
