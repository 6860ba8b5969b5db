package collector

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQL over the rows of files and HTTP answers runs in SQLite, through
// modernc.org/sqlite: a pure-Go translation, so the binary stays static and
// needs no C library. Each run opens its own in-memory database, loads the
// tables it read, runs the collector's query and closes the database: nothing
// is left behind, and nothing is shared between runs or collectors.
//
// The tables hold what carewatch's reading rules make of the cells, never
// the raw text:
//
//   - an empty cell, a JSON null and a suppression symbol (x, c, z, u, low,
//     :, .. and [x]) are NULL, so SUM, AVG and COUNT(column) leave them out
//     and arithmetic with them is NULL: missing, never 0;
//   - a number (1234, -1,234.5, 1e3) is a REAL, so that number / total
//     divides as a spreadsheet would; a whole number written with a leading
//     zero (007, 0123) is a code and stays text;
//   - a date is ISO 8601 text, 2025-03-31 (2025-03-31 14:30:00 with a time),
//     whether the file wrote 2025-03-31 or 31/03/2025 or the workbook held a
//     date: dates compare with < and >, and julianday(a) - julianday(b) is
//     the number of days between them;
//   - a percentage written with % (12.5%) stays text, for the mapping's
//     percent to read; a workbook cell formatted as a percentage is its
//     ratio (0.125);
//   - everything else is text, with the spaces around it trimmed.
//
// Columns keep the names of the file's header; a column whose header is blank
// is left out.

// memoryDSN opens a private in-memory database. _dqs=0 makes a double-quoted
// name that is not a column an error, as in standard SQL, rather than a
// string: "la_code" must not quietly become the text 'la_code' in a file
// that lacks the column.
const memoryDSN = ":memory:?_dqs=0"

// queryPageLimit bounds the pages (4 KiB each) the engine may use for the
// loaded tables, and separately for its temporary b-trees (sorting, grouping,
// DISTINCT): 1 GiB each, well beyond what the source's max_file_size lets a
// run load, so that only a query that multiplies rows without end meets it.
const queryPageLimit = 1 << 18

// queryTables loads tables into a fresh in-memory SQLite database and runs
// query over them within ctx, returning its result as a table whose rows are
// named "row 1", "row 2"... A query still running when ctx ends is
// interrupted. Errors name the table or column at fault and quote the
// engine's message.
func queryTables(ctx context.Context, tables []*table, query string) (result *table, err error) {
	connector, err := sqlite.NewConnector(memoryDSN)
	if err != nil {
		return nil, fmt.Errorf("query engine: %w", err)
	}
	db := sql.OpenDB(connector)
	defer func() { _ = db.Close() }()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("query engine: %w", err)
	}
	defer func() { _ = conn.Close() }()

	for _, pragma := range []string{
		"PRAGMA main.max_page_count = " + strconv.Itoa(queryPageLimit),
		"PRAGMA temp_store = MEMORY",
		"PRAGMA temp.max_page_count = " + strconv.Itoa(queryPageLimit),
		// Sorting (GROUP BY, ORDER BY, DISTINCT) may use a second core.
		"PRAGMA threads = 2",
	} {
		if _, err := conn.ExecContext(ctx, pragma); err != nil {
			return nil, fmt.Errorf("query engine: %s: %w", pragma, err)
		}
	}
	if _, err := sqlite.Limit(conn, sqlite3.SQLITE_LIMIT_ATTACHED, 0); err != nil {
		return nil, fmt.Errorf("query engine: %w", err)
	}
	byName := map[string]*table{}
	var order []*table
	for _, t := range tables {
		if prev, ok := byName[t.name]; ok {
			if err := sameColumns(prev, t); err != nil {
				return nil, err
			}
		} else {
			byName[t.name] = t
			order = append(order, t)
		}
		if err := loadTable(ctx, conn, t, byName[t.name] != t, query); err != nil {
			return nil, err
		}
	}
	// From here on the connection reads: the query cannot change the tables,
	// attach a file or run a PRAGMA.
	if _, err := conn.ExecContext(ctx, "PRAGMA query_only = 1"); err != nil {
		return nil, fmt.Errorf("query engine: %w", err)
	}
	if err := conn.Raw(func(dc any) error {
		a, ok := dc.(sqlite.AuthorizerRegisterer)
		if !ok {
			return fmt.Errorf("the connection (%T) has no authorizer", dc)
		}
		return a.RegisterAuthorizer(readOnlyAuthorizer)
	}); err != nil {
		return nil, fmt.Errorf("query engine: %w", err)
	}

	if err := oneStatement(query); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return nil, queryError(ctx, err, order)
	}
	defer func() { _ = rows.Close() }()
	columns, err := rows.Columns()
	if err != nil {
		return nil, queryError(ctx, err, order)
	}
	result = &table{where: "the query's result", columns: columns}
	dest := make([]any, len(columns))
	for n := 1; rows.Next(); n++ {
		values := make([]any, len(columns))
		for i := range values {
			dest[i] = &values[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("query: row %d: %w", n, err)
		}
		result.rows = append(result.rows, tableRow{ref: "row " + strconv.Itoa(n), values: values})
	}
	if err := rows.Err(); err != nil {
		return nil, queryError(ctx, err, order)
	}
	return result, nil
}

// readOnlyAuthorizer lets a query read tables and call functions, and
// nothing else: no writes, no schema changes, no PRAGMA, no ATTACH.
func readOnlyAuthorizer(action sqlite.AuthorizerActionCode, _, _, _, _ string) sqlite.AuthorizerReturnCode {
	switch action {
	case sqlite.AuthSelect, sqlite.AuthRead, sqlite.AuthFunction, sqlite.AuthRecursive:
		return sqlite.AuthorizerOK
	}
	return sqlite.AuthorizerDeny
}

// sameColumns checks that t, going into the table that first holds, has
// the same columns.
func sameColumns(first, t *table) error {
	a, b := sqlColumns(first), sqlColumns(t)
	same := len(a) == len(b)
	for i := 0; same && i < len(a); i++ {
		same = first.columns[a[i]] == t.columns[b[i]]
	}
	if same {
		return nil
	}
	names := func(t *table, idx []int) []string {
		out := make([]string, len(idx))
		for i, j := range idx {
			out[i] = t.columns[j]
		}
		return out
	}
	return fmt.Errorf("%s goes into table %s after %s, but its columns differ: %s, not %s",
		t.where, t.name, first.where, columnList(names(t, b)), columnList(names(first, a)))
}

// sqlColumns are the positions of t's columns that go into the engine:
// those whose header is not blank.
func sqlColumns(t *table) []int {
	out := make([]int, 0, len(t.columns))
	for i, c := range t.columns {
		if strings.TrimSpace(c) != "" {
			out = append(out, i)
		}
	}
	return out
}

// quoteIdent quotes a table or column name for SQLite.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// loadTable creates t's table (unless appending to one of the same name)
// and inserts its rows, converted by sqlCell. Only the columns that query
// may name go in: a file's other columns cost nothing.
func loadTable(ctx context.Context, conn *sql.Conn, t *table, appending bool, query string) error {
	named := sqlColumns(t)
	if len(named) == 0 {
		return fmt.Errorf("%s has no named column for table %s", t.where, t.name)
	}
	seen := map[string]bool{}
	for _, c := range named {
		name := strings.ToLower(t.columns[c])
		if seen[name] {
			return fmt.Errorf("%s: column %q appears twice in the header, so table %s cannot tell them apart", t.where, t.columns[c], t.name)
		}
		seen[name] = true
	}
	cols := usedColumns(query, t, named)
	if !appending {
		quoted := make([]string, len(cols))
		for i, c := range cols {
			quoted[i] = quoteIdent(t.columns[c])
		}
		// The columns have no declared type, so each value keeps the type
		// sqlCell gave it.
		create := "CREATE TABLE " + quoteIdent(t.name) + " (" + strings.Join(quoted, ", ") + ")"
		if _, err := conn.ExecContext(ctx, create); err != nil {
			return fmt.Errorf("%s: table %s: %w", t.where, t.name, err)
		}
	}
	return conn.Raw(func(dc any) error { return insertRows(ctx, dc, t, cols) })
}

// insertRows inserts t's rows, columns cols, into its table through the
// driver's own connection dc: database/sql would check and copy every
// argument of every statement again, and the arguments of a batch are
// thousands of cells.
func insertRows(ctx context.Context, dc any, t *table, cols []int) error {
	conn, ok := dc.(interface {
		driver.ConnPrepareContext
		driver.ConnBeginTx
	})
	if !ok {
		return fmt.Errorf("query engine: the connection (%T) cannot prepare statements", dc)
	}
	// The rows are inserted under a context that is never cancelled: the
	// driver watches a cancellable one with a goroutine per statement. The
	// loop looks at ctx itself instead.
	quiet := context.WithoutCancel(ctx)
	tx, err := conn.BeginTx(quiet, driver.TxOptions{})
	if err != nil {
		return fmt.Errorf("query engine: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit, an error nobody needs
	// Rows go in by batches, each batch one INSERT of many rows: a statement
	// per row costs more in the driver than SQLite spends storing the row.
	batch := max(1, min(insertBatch, maxInsertArgs/len(cols)))
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	prepare := func(rows int) (driver.StmtExecContext, func(), error) {
		insert := "INSERT INTO " + quoteIdent(t.name) + " VALUES " + strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
		stmt, err := conn.PrepareContext(quiet, insert)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: table %s: %w", t.where, t.name, err)
		}
		exec, ok := stmt.(driver.StmtExecContext)
		if !ok {
			_ = stmt.Close()
			return nil, nil, fmt.Errorf("query engine: the statement (%T) cannot execute with a context", stmt)
		}
		return exec, func() { _ = stmt.Close() }, nil
	}
	full, closeFull, err := prepare(batch)
	if err != nil {
		return err
	}
	defer closeFull()
	// A second goroutine turns the cells of the next batch into arguments
	// while the engine inserts this one.
	type filled struct {
		args []driver.NamedValue
		rows []tableRow
	}
	ready := make(chan filled, 1)
	free := make(chan []driver.NamedValue, 3)
	for range cap(free) {
		args := make([]driver.NamedValue, batch*len(cols))
		for i := range args {
			args[i].Ordinal = i + 1
		}
		free <- args
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer close(ready)
		cells := make([]columnCells, len(cols))
		for start := 0; start < len(t.rows); start += batch {
			var args []driver.NamedValue
			select {
			case args = <-free:
			case <-stop:
				return
			}
			rows := t.rows[start:min(start+batch, len(t.rows))]
			n := 0
			for _, r := range rows {
				for i, c := range cols {
					args[n].Value = cells[i].value(r.values[c])
					n++
				}
			}
			select {
			case ready <- filled{args[:n], rows}:
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		close(stop)
		<-done
	}()
	for b := range ready {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: loading table %s: interrupted at the run's deadline: %w", t.where, t.name, err)
		}
		stmt := full
		if len(b.rows) < batch {
			last, closeLast, err := prepare(len(b.rows))
			if err != nil {
				return err
			}
			defer closeLast()
			stmt = last
		}
		if _, err := stmt.ExecContext(quiet, b.args); err != nil {
			return fmt.Errorf("%s, rows %s to %s: table %s: %w", t.where, b.rows[0].ref, b.rows[len(b.rows)-1].ref, t.name, err)
		}
		free <- b.args[:cap(b.args)]
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: loading table %s: interrupted at the run's deadline: %w", t.where, t.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: table %s: %w", t.where, t.name, err)
	}
	return nil
}

// insertBatch rows go in one INSERT, within maxInsertArgs values (SQLite
// allows 32,766 parameters to a statement).
const (
	insertBatch   = 500
	maxInsertArgs = 30000
)

// columnCells turns the cells of one column into what the engine holds,
// remembering what each distinct text became: the columns a query groups
// and counts by (teams, bands, dates, small counts) repeat a few hundred
// texts across a million rows, so most cells cost one map lookup and no
// allocation. A column of distinct texts (a reference per person) stops
// being remembered once it has filled the memo and missed as often again.
type columnCells struct {
	seen   map[string]driver.Value
	misses int
	off    bool
}

// cellMemo bounds the texts a column remembers.
const cellMemo = 4096

func (c *columnCells) value(v any) driver.Value {
	s, ok := v.(string)
	if !ok || c.off {
		return sqlCell(v)
	}
	if x, ok := c.seen[s]; ok {
		return x
	}
	x := sqlCell(v)
	switch {
	case c.seen == nil:
		c.seen = make(map[string]driver.Value, 64)
		c.seen[s] = x
	case len(c.seen) < cellMemo:
		c.seen[s] = x
	default:
		c.misses++
		if c.misses >= cellMemo {
			c.seen, c.off = nil, true
		}
	}
	return x
}

// usedColumns returns those of t's columns cols that query may read: whose
// name appears in the query's text at all, ignoring case (a column's name
// must be written to be read), or all of them when the query holds a * that
// selects every column (SELECT *, t.*) or a NATURAL JOIN. A table keeps at
// least one column.
func usedColumns(query string, t *table, cols []int) []int {
	lower := strings.ToLower(query)
	if selectsAll.MatchString(lower) {
		return cols
	}
	var used []int
	for _, c := range cols {
		if strings.Contains(lower, strings.ToLower(t.columns[c])) {
			used = append(used, c)
		}
	}
	if len(used) == 0 {
		used = cols[:1]
	}
	return used
}

// selectsAll matches a * that stands for every column (after SELECT,
// DISTINCT, a comma or a table name's dot, not a multiplication or
// COUNT(*)), and a NATURAL JOIN, which joins on columns it does not name.
var selectsAll = regexp.MustCompile(`(select|distinct|all|,|\.)\s*\*|natural\s+(left\s+|inner\s+|cross\s+)?(outer\s+)?join`)

// queryError gives an error of the query its context: the deadline when that
// is what ended it, and the tables and their columns when the query names
// one that is not there.
func queryError(ctx context.Context, err error, tables []*table) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("query: interrupted at the run's deadline: %w", ctxErr)
	}
	msg := err.Error()
	var se *sqlite.Error
	if errors.As(err, &se) {
		// The driver appends the result code's name, "(1)", to the message.
		msg = strings.TrimSpace(strings.TrimSuffix(msg, fmt.Sprintf("(%d)", se.Code())))
		if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "SQL logic error") {
			msg = msg[i+2:]
		}
	}
	if strings.Contains(msg, "no such column") || strings.Contains(msg, "no such table") || strings.Contains(msg, "has no column") {
		var b strings.Builder
		for i, t := range tables {
			if i > 0 {
				b.WriteString("; ")
			}
			names := make([]string, 0, len(t.columns))
			for _, c := range sqlColumns(t) {
				names = append(names, t.columns[c])
			}
			fmt.Fprintf(&b, "table %s (from %s) has columns %s", t.name, t.where, columnList(names))
		}
		if len(tables) == 0 {
			b.WriteString("no table was read")
		}
		return fmt.Errorf("query: %s; %s", msg, b.String())
	}
	return fmt.Errorf("query: %s", msg)
}

// sqlCell is a cell as the engine holds it; see the comment at the top of
// this file.
func sqlCell(v any) driver.Value {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return sqlText(x, v)
	case []byte:
		return sqlText(string(x), nil)
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	case time.Time:
		return sqlTime(x)
	case workbookPercent:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
		return f
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	case int64:
		return float64(x)
	}
	return cellText(v)
}

// sqlTime writes a time as SQLite's date functions read it.
func sqlTime(t time.Time) string {
	h, mi, s := t.Clock()
	if h == 0 && mi == 0 && s == 0 && t.Nanosecond() == 0 {
		return t.Format("2006-01-02")
	}
	return t.Format("2006-01-02 15:04:05")
}

// sqlText reads text; boxed, when not nil, is s as the table held it,
// returned as it is when the text stays as it was.
func sqlText(s string, boxed any) driver.Value {
	t := strings.TrimSpace(s)
	if t == "" || isSuppressed(t) {
		return nil
	}
	if f, ok := numberText(t); ok {
		return f
	}
	if d, ok := textDate(t); ok {
		return d
	}
	if boxed != nil && len(t) == len(s) {
		return boxed
	}
	return t
}

// numberText reads text that is a number and nothing else: digits, an
// optional sign, thousands separators, a decimal point and an exponent. A
// whole number with a leading zero is a code, not a number.
func numberText(t string) (float64, bool) {
	if len(t) > maxNumberText {
		return 0, false
	}
	digits := strings.TrimLeft(t, "+-")
	if len(digits) > 1 && digits[0] == '0' && digits[1] >= '0' && digits[1] <= '9' {
		return 0, false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if (c < '0' || c > '9') && !strings.ContainsRune("+-.,eE", rune(c)) {
			return 0, false
		}
	}
	u, ok := ungroup(t)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(u, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// textDate reads a date written as text in one of the forms a period cell
// may take (2025-03-31, 31/03/2025), as ISO 8601 text. It is on the path of
// every cell of a file a query reads, hence written out by hand.
func textDate(t string) (string, bool) {
	if len(t) != 10 {
		return "", false
	}
	var y, m, d string
	iso := t[4] == '-' && t[7] == '-'
	switch {
	case iso:
		y, m, d = t[0:4], t[5:7], t[8:10]
	case t[2] == '/' && t[5] == '/':
		d, m, y = t[0:2], t[3:5], t[6:10]
	default:
		return "", false
	}
	yy, ok1 := digits(y)
	mm, ok2 := digits(m)
	dd, ok3 := digits(d)
	if !ok1 || !ok2 || !ok3 || mm < 1 || mm > 12 || dd < 1 || dd > time.Date(yy, time.Month(mm)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return "", false
	}
	if iso {
		return t, true
	}
	return y + "-" + m + "-" + d, true
}

// digits reads a string of ASCII digits.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// oneStatement refuses SQL holding more than one statement: the engine would
// run them all and return the last one's rows, hiding the first ones.
func oneStatement(q string) error {
	end := -1 // where the first statement ended with a ;
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			continue
		case strings.HasPrefix(q[i:], "--"):
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				return nil
			}
			i += j
			continue
		case strings.HasPrefix(q[i:], "/*"):
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return nil
			}
			i += j + 3
			continue
		}
		if end >= 0 && c != ';' {
			return fmt.Errorf("give one statement: there is more after the ; at byte %d (%s)", end, quoteShort(strings.TrimSpace(q[end+1:])))
		}
		switch c {
		case ';':
			if end < 0 {
				end = i
			}
		case '\'', '"', '`', '[':
			closing := c
			if c == '[' {
				closing = ']'
			}
			j := strings.IndexByte(q[i+1:], closing)
			if j < 0 {
				return nil // the engine reports the open quote
			}
			i += j + 1
		}
	}
	return nil
}
