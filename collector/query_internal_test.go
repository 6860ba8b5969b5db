package collector

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"modernc.org/sqlite"
)

// A column's memo gives every cell exactly what sqlCell gives it, for
// columns that repeat a few texts and for one whose every text differs, which
// stops being remembered.
func TestColumnCellsGiveWhatEachCellReads(t *testing.T) {
	repeated := []any{"north", " north ", "x", "[low]", "", "  ", nil, "007", "12", "1,234", "-0.5",
		"31/03/2025", "2025-03-31", "31/02/2025", "12.5%", true, time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC), 3.5}
	var few, many columnCells
	for i := range 3 * cellMemo {
		v := repeated[i%len(repeated)]
		if got, want := few.value(v), sqlCell(v); fmt.Sprintf("%T %v", got, got) != fmt.Sprintf("%T %v", want, want) {
			t.Fatalf("cell %#v: %T %v, want %T %v", v, got, got, want, want)
		}
		distinct := any(fmt.Sprintf("C%07d", i))
		if i%3 == 0 {
			distinct = fmt.Sprint(i) // a number
		}
		if got, want := many.value(distinct), sqlCell(distinct); got != want {
			t.Fatalf("cell %#v: %#v, want %#v", distinct, got, want)
		}
	}
	if few.off || len(few.seen) == 0 {
		t.Errorf("a column of %d texts stopped being remembered", len(repeated))
	}
	if !many.off || many.seen != nil {
		t.Errorf("a column of distinct texts is still remembered (%d texts)", len(many.seen))
	}
}

// Loading stops at the run's deadline, says so, and leaves no row behind.
func TestLoadingStopsAtTheRunsDeadline(t *testing.T) {
	conn := memoryConn(t)
	if _, err := conn.ExecContext(t.Context(), `CREATE TABLE people (team)`); err != nil {
		t.Fatal(err)
	}
	tbl := &table{where: `file "people.csv"`, name: "people", columns: []string{"team"}}
	for i := range 2000 {
		tbl.rows = append(tbl.rows, tableRow{ref: fmt.Sprintf("row %d", i+2), values: []any{"north"}})
	}
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	err := conn.Raw(func(dc any) error { return insertRows(ctx, dc, tbl, []int{0}) })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `file "people.csv": loading table people: interrupted at the run's deadline`) {
		t.Fatalf("error %v, want the deadline, naming the file and table", err)
	}
	var n int
	if err := conn.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM people`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows left behind (%v)", n, err)
	}
	// The same rows load under a live context: the connection is still usable.
	if err := conn.Raw(func(dc any) error { return insertRows(t.Context(), dc, tbl, []int{0}) }); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM people`).Scan(&n); err != nil || n != len(tbl.rows) {
		t.Errorf("%d rows loaded, want %d (%v)", n, len(tbl.rows), err)
	}
}

// A batch the engine refuses fails the load naming the file, the rows and
// the table, and the engine's reason; what went in before it is rolled back.
func TestLoadingFailsNamingTheRowsTheEngineRefused(t *testing.T) {
	conn := memoryConn(t)
	if _, err := conn.ExecContext(t.Context(), `CREATE TABLE people (team CHECK (team <> 'nowhere'))`); err != nil {
		t.Fatal(err)
	}
	tbl := &table{where: `file "people.csv"`, name: "people", columns: []string{"team"}}
	for i := range 2000 {
		team := "north"
		if i == 1234 {
			team = "nowhere"
		}
		tbl.rows = append(tbl.rows, tableRow{ref: fmt.Sprintf("row %d", i+2), values: []any{team}})
	}
	err := conn.Raw(func(dc any) error { return insertRows(t.Context(), dc, tbl, []int{0}) })
	if err == nil || !strings.Contains(err.Error(), `file "people.csv", rows row 1002 to row 1501: table people: constraint failed: CHECK constraint failed`) {
		t.Fatalf("error %v, want the rows and the engine's reason", err)
	}
	var n int
	if err := conn.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM people`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows left behind (%v)", n, err)
	}
}

// memoryConn opens a connection to a fresh in-memory database, closed when
// the test ends.
func memoryConn(t *testing.T) *sql.Conn {
	t.Helper()
	connector, err := sqlite.NewConnector(memoryDSN)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { _ = db.Close() })
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
