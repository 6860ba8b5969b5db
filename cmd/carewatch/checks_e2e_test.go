package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

const dfeExampleDir = "../../examples/dfe"

// dfeCopy copies the DfE example (its configuration and data files) to a
// folder of its own, so that a test may cut the workforce file short, and
// returns the configuration file and the workforce file's path.
func dfeCopy(t *testing.T) (configFile, workforce string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"benchmarking.yml", "data/csww_indicators_2017_to_2025.csv", "data/sn_model_2025_wide.csv"} {
		b, err := os.ReadFile(filepath.Join(dfeExampleDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "benchmarking.yml"), filepath.Join(dir, "data", "csww_indicators_2017_to_2025.csv")
}

// A real DfE file cut short is refused, whether it was cut at a line end
// (46% of its rows lost) or inside its last row's value: the run is
// recorded as failed with the check named, and the last good values stay.
func TestADfEFileCutShortIsRefusedAndTheLastGoodValuesStay(t *testing.T) {
	storeDSN := pgtest.NewDatabase(t)
	t.Setenv(demo.StoreDSNEnv, storeDSN)
	store := sqlx.MustOpen("postgres", storeDSN)
	t.Cleanup(func() { store.Close() })
	configFile, workforce := dfeCopy(t)
	logger := slog.New(slog.DiscardHandler)
	var out bytes.Buffer
	if err := runCollect(t.Context(), configFile, "dfe_workforce", false, &out, logger); err != nil {
		t.Fatalf("collecting the whole file: %v", err)
	}
	good := count(t, store, "SELECT count(*) FROM observations")
	latest := func() string {
		var s string
		if err := store.GetContext(t.Context(), &s, `SELECT string_agg(series_id || ':' || period || ':' || coalesce(value::text, 'null'), ',' ORDER BY series_id, period) FROM observations`); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := latest()

	whole, err := os.ReadFile(workforce)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(whole, []byte("\n"))
	for _, tc := range []struct {
		name  string
		text  []byte
		check string
		says  string
	}{
		{"cut at a line end, 46% of its rows lost", bytes.Join(lines[:len(lines)*54/100], nil), "rows", "fewer than the"},
		{"cut inside its last row's value", whole[:len(whole)-2], "truncation", `its last value reads "2."`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(workforce, tc.text, 0o644); err != nil {
				t.Fatal(err)
			}
			err := runCollect(t.Context(), configFile, "dfe_workforce", false, &out, logger)
			if err == nil || !strings.Contains(err.Error(), `collector "dfe_workforce": check `+tc.check) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("collect = %v, want the %s check to refuse the run", err, tc.check)
			}
			var status, checks string
			if err := store.QueryRowxContext(t.Context(), `SELECT status, checks::text FROM runs ORDER BY id DESC LIMIT 1`).Scan(&status, &checks); err != nil {
				t.Fatal(err)
			}
			if status != "failed" || !strings.Contains(checks, `"check": "`+tc.check+`"`) || !strings.Contains(checks, `"action": "reject"`) {
				t.Errorf("the run is recorded %s with checks %s", status, checks)
			}
			if n := count(t, store, "SELECT count(*) FROM observations"); n != good || latest() != before {
				t.Errorf("the refused run changed the stored values (%d observations, %d before)", n, good)
			}
		})
	}
}
