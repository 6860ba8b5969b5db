package collector

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// FileSource is a collector's file, or files, in a file source's folder:
// CSV and XLSX exports from HR and agency suppliers, and national statistics
// such as DfE's. It reads nothing outside the folder: paths are opened
// through an os.Root, which refuses "..", absolute paths and symbolic links
// that lead out. It implements kpi.Source.
type FileSource struct {
	collector   string
	source      string
	dir         string
	maxSize     int64
	input       config.FileInput
	namePattern *regexp.Regexp
	filters     []rowFilter
	bench       *benchmark
	query       string
	mapper      *Mapper
	truncation  kpi.Action
	// periodColumn is the collector's period column, which a backfill
	// looks for among the name pattern's groups.
	periodColumn string

	// mu guards findings, the warnings of the latest run's file checks.
	mu       sync.Mutex
	findings []kpi.CheckFailure
}

var _ kpi.Source = (*FileSource)(nil)

// NewFileSource returns the source of collector cc, reading the file source
// src and mapping its rows with m; both have been validated by package
// config. It does not touch the folder: a folder
// that is not there yet fails the collector's runs, not the daemon's start.
func NewFileSource(cc *config.CollectorConfig, src *config.SourceConfig, m *Mapper) (*FileSource, error) {
	switch {
	case cc == nil || src == nil || m == nil:
		return nil, errors.New("file source: no collector, source or mapper")
	case src.Type != config.SourceFile:
		return nil, fmt.Errorf("collector %q: source %q is a %s source, not a file source", cc.Name, src.Name, src.Type)
	case cc.File == nil:
		return nil, fmt.Errorf("collector %q: no file to read", cc.Name)
	}
	s := &FileSource{
		collector:    cc.Name,
		source:       src.Name,
		dir:          src.Directory,
		maxSize:      src.EffectiveMaxFileSize(),
		input:        *cc.File,
		filters:      newFilters(cc.Filters),
		query:        cc.Query,
		mapper:       m,
		truncation:   cc.EffectiveTruncation(),
		periodColumn: cc.PeriodColumn,
	}
	s.namePattern = s.input.NameRegexp
	if cc.Benchmark != nil {
		s.bench = newBenchmark(cc.Benchmark)
	}
	return s, nil
}

// Describe returns the source's name and what it reads, for the run record.
func (s *FileSource) Describe() (source, query string) {
	var b strings.Builder
	if s.input.Path != "" {
		b.WriteString(filepath.Join(s.dir, filepath.FromSlash(s.input.Path)))
	} else {
		fmt.Fprintf(&b, "%s (%s match)", filepath.Join(s.dir, filepath.FromSlash(s.input.Glob)), s.input.Select)
	}
	if s.input.Sheet != "" {
		fmt.Fprintf(&b, ", sheet %q", s.input.Sheet)
	}
	if s.bench != nil {
		fmt.Fprintf(&b, "; benchmark of council %s with the neighbours in %s", s.bench.council, s.bench.neighboursFile)
	}
	return s.source, b.String()
}

// Collect reads the collector's file or files within ctx, filters their
// rows, and maps them. A file that cannot be read as configured (too large,
// not a table, a column missing, a cell that is not a number) fails the run
// at once with a Permanent error naming the file, the row and the cause;
// a folder or a file that is not there yet may be retried.
func (s *FileSource) Collect(ctx context.Context, run kpi.RunInfo) ([]kpi.Observation, error) {
	s.mu.Lock()
	s.findings = nil
	s.mu.Unlock()
	obs, err := s.collect(ctx, run)
	if err != nil {
		if CheckFailures(err) != nil {
			return nil, err
		}
		return nil, sourceError(ctx, s.collector, s.source, err, nil)
	}
	return obs, nil
}

// Findings returns the file checks the latest run failed with a warning
// (a rejection is Collect's error).
func (s *FileSource) Findings() []kpi.CheckFailure {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.findings)
}

// checkTruncation applies the truncation check to file name, which why
// says looks cut short ("" when it does not): the run is rejected, or
// carries a warning, as the collector's truncation check says.
func (s *FileSource) checkTruncation(name, why string) error {
	if s.truncation == kpi.Off || why == "" {
		return nil
	}
	f := kpi.CheckFailure{Check: "truncation", Action: s.truncation, Failures: 1, Message: fmt.Sprintf(
		"collector %q: check truncation: file %q: %s", s.collector, name, why)}
	if s.truncation == kpi.Reject {
		return Rejected([]kpi.CheckFailure{f})
	}
	s.mu.Lock()
	s.findings = append(s.findings, f)
	s.mu.Unlock()
	return nil
}

// csvCut looks for the mark of a CSV file cut short: a last line with no
// line end. Every well-formed export (Excel, DfE's statistics, databases'
// CSV writers) ends its last row with one; a file cut while it was copied
// or written stops in the middle of a row, where a number may read as
// another (0.082 as 0.08). It returns why the file looks cut, or "".
func csvCut(data []byte, t *table) string {
	if len(t.rows) == 0 {
		return ""
	}
	end := bytes.TrimRight(data, " \t\x1a")
	if len(end) == 0 || end[len(end)-1] == '\n' || end[len(end)-1] == '\r' {
		return ""
	}
	last := t.rows[len(t.rows)-1]
	cell := ""
	if n := len(last.values); n > 0 {
		cell = fmt.Sprint(last.values[n-1])
	}
	return fmt.Sprintf("its last line (%s) has no line end, so the file looks cut short inside that row; its last value reads %q", last.ref, cell)
}

// zipEnd is the size of a zip archive's end-of-central-directory record,
// without its comment.
const zipEnd = 22

// workbookCut looks for the mark of an XLSX workbook cut short. A workbook
// is a zip archive, which begins with a local file header and ends with
// its end-of-central-directory record (22 bytes and a comment of at most
// 65,535): a file that begins as a zip archive but has no such record at
// its end was cut. A file that is no zip archive at all (an old .xls, a
// web page) is the reader's to refuse. It returns why the file looks cut,
// or "".
func workbookCut(data []byte) string {
	if !bytes.HasPrefix(data, []byte("PK\x03\x04")) {
		return ""
	}
	for i := len(data) - zipEnd; i >= max(0, len(data)-zipEnd-0xffff); i-- {
		if bytes.HasPrefix(data[i:], []byte("PK\x05\x06")) && i+zipEnd+int(binary.LittleEndian.Uint16(data[i+20:])) <= len(data) {
			return ""
		}
	}
	return fmt.Sprintf("the workbook (%d bytes) does not end with the directory that closes every XLSX file (a zip archive), so it looks cut short", len(data))
}

func (s *FileSource) collect(ctx context.Context, run kpi.RunInfo) ([]kpi.Observation, error) {
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", s.dir, err)
	}
	defer func() { _ = root.Close() }()
	names, err := s.files(root, run)
	if err != nil {
		return nil, err
	}
	tables := make([]*table, 0, len(names))
	for _, name := range names {
		read, err := s.readFile(ctx, root, name, run.Provenance)
		if err != nil {
			return nil, err
		}
		for _, t := range read {
			// A list in a workbook of several may well be empty this time;
			// a file whose only table is empty was most likely cut short.
			if len(t.rows) == 0 && s.input.Sheets == nil {
				return nil, Permanent(fmt.Errorf("%s has no rows below its header (row %d): is it cut short?", t.where, max(s.input.HeaderRow, 1)))
			}
			if s.namePattern != nil {
				if err := s.nameColumns(t, name); err != nil {
					return nil, Permanent(err)
				}
			}
			if err := filter(t, s.filters); err != nil {
				return nil, Permanent(err)
			}
			tables = append(tables, t)
		}
	}
	if s.bench != nil {
		neighbours, err := s.readNeighbours(ctx, root, run.Provenance)
		if err != nil {
			return nil, err
		}
		if err := s.bench.apply(tables, neighbours); err != nil {
			return nil, Permanent(err)
		}
	}
	if s.query != "" {
		result, err := queryTables(ctx, tables, s.query)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, Permanent(err)
		}
		tables = []*table{result}
	}
	obs, err := mapTables(s.mapper, tables, run)
	if err != nil {
		return nil, &mappingError{err}
	}
	return obs, nil
}

// files lists the files a run reads, relative to the folder.
func (s *FileSource) files(root *os.Root, run kpi.RunInfo) ([]string, error) {
	if s.input.Path != "" {
		return []string{s.input.Path}, nil
	}
	if run.Backfill() {
		return s.backfillFiles(root, run)
	}
	matches, err := fs.Glob(root.FS(), s.input.Glob)
	if err != nil {
		return nil, Permanent(fmt.Errorf("glob %q: %w", s.input.Glob, err))
	}
	type found struct {
		name string
		info fs.FileInfo
	}
	var files []found
	for _, m := range matches {
		info, err := root.Stat(filepath.FromSlash(m))
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		files = append(files, found{m, info})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no file in %s matches %q", s.dir, s.input.Glob)
	}
	if s.input.Select == config.SelectAll {
		names := make([]string, len(files))
		for i, f := range files {
			names[i] = f.name
		}
		sort.Strings(names)
		return names, nil
	}
	newest := files[0]
	for _, f := range files[1:] {
		if f.info.ModTime().After(newest.info.ModTime()) || (f.info.ModTime().Equal(newest.info.ModTime()) && f.name > newest.name) {
			newest = f
		}
	}
	return []string{newest.name}, nil
}

// backfillFiles lists the files of a glob whose name-pattern period falls
// within the backfill's range: file.name_pattern must have a group named
// as the collector's period_column, e.g. (?P<month>\d{4}-\d{2}).
func (s *FileSource) backfillFiles(root *os.Root, run kpi.RunInfo) ([]string, error) {
	group := -1
	if s.namePattern != nil && s.periodColumn != "" {
		group = s.namePattern.SubexpIndex(s.periodColumn)
	}
	if group < 0 {
		return nil, Permanent(fmt.Errorf("collector %q: a backfill takes the files whose name says their period: give file.name_pattern a group named as period_column (%q), e.g. (?P<%s>\\d{4}-\\d{2})",
			s.collector, s.periodColumn, firstNonEmpty(s.periodColumn, "month")))
	}
	matches, err := fs.Glob(root.FS(), s.input.Glob)
	if err != nil {
		return nil, Permanent(fmt.Errorf("glob %q: %w", s.input.Glob, err))
	}
	var names []string
	for _, m := range matches {
		sub := s.namePattern.FindStringSubmatch(path.Base(m))
		if sub == nil {
			continue
		}
		p, err := s.mapper.periodOf(sub[group], run.Location)
		if err != nil || p.Before(run.PeriodStart) || p.After(run.PeriodEnd) {
			continue
		}
		if info, err := root.Stat(filepath.FromSlash(m)); err == nil && info.Mode().IsRegular() {
			names = append(names, m)
		}
	}
	if len(names) == 0 {
		return nil, Permanent(fmt.Errorf("no file in %s matching %q has a period from %s to %s in its name", s.dir, s.input.Glob,
			run.PeriodStart.Format(time.DateOnly), run.PeriodEnd.Format(time.DateOnly)))
	}
	sort.Strings(names)
	return names, nil
}

// readFile reads one file of the folder as a table, or as one table for
// each of the worksheets file.sheets names. Each is named for a query: by
// file.table, by its sheet, or by the file's name.
func (s *FileSource) readFile(ctx context.Context, root *os.Root, name string, prov *kpi.Provenance) ([]*table, error) {
	where := fmt.Sprintf("file %q", name)
	data, err := readBounded(ctx, root, name, s.maxSize, prov)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	failed := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		return Permanent(fmt.Errorf("%s: %w", where, err))
	}
	if s.input.Format == config.FormatXLSX || s.input.Sheets != nil {
		if err := s.checkTruncation(name, workbookCut(data)); err != nil {
			return nil, err
		}
	}
	if s.input.Sheets != nil {
		tables := make([]*table, 0, len(s.input.Sheets))
		for _, sheet := range s.input.Sheets {
			opts := s.input.TableOptions
			opts.Sheet = sheet
			t, err := readXLSX(ctx, data, opts, s.maxSize)
			if err != nil {
				return nil, failed(err)
			}
			t.where, t.name = where, config.TableName(sheet)
			tables = append(tables, t)
		}
		return tables, nil
	}
	var t *table
	if s.input.Format == config.FormatXLSX {
		t, err = readXLSX(ctx, data, s.input.TableOptions, s.maxSize)
	} else {
		t, err = readCSV(ctx, data, s.input.TableOptions)
	}
	if err != nil {
		return nil, failed(err)
	}
	if s.input.Format != config.FormatXLSX {
		if err := s.checkTruncation(name, csvCut(data, t)); err != nil {
			return nil, err
		}
	}
	t.where, t.name = where, firstNonEmpty(s.input.Table, config.FileTableName(name))
	return []*table{t}, nil
}

// readBounded reads a regular file of root, refusing one larger than limit
// (before reading it, and while reading it, should it grow meanwhile), and
// records what it read in prov: name, size, modification time, SHA-256.
func readBounded(ctx context.Context, root *os.Root, name string, limit int64, prov *kpi.Provenance) ([]byte, error) {
	osName := filepath.FromSlash(name)
	info, err := root.Stat(osName)
	if err != nil {
		if isEscape(err) {
			return nil, Permanent(fmt.Errorf("refused: the path leads outside the source's directory (%w)", err))
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("there is no such file in %s (not delivered yet?): %w", root.Name(), fs.ErrNotExist)
		}
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, Permanent(fmt.Errorf("is not a regular file (%s)", info.Mode().Type()))
	}
	if info.Size() > limit {
		return nil, Permanent(fmt.Errorf("is %s, more than the source's max_file_size (%s)", config.ByteSize(info.Size()), config.ByteSize(limit)))
	}
	f, err := root.Open(osName)
	if err != nil {
		if isEscape(err) {
			return nil, Permanent(fmt.Errorf("refused: the path leads outside the source's directory (%w)", err))
		}
		return nil, err
	}
	defer func() { _ = f.Close() }()
	data, err := readAllBounded(ctx, f, limit)
	if errors.Is(err, errTooLarge) {
		return nil, Permanent(fmt.Errorf("grew past the source's max_file_size (%s) while being read", config.ByteSize(limit)))
	}
	if err != nil {
		return nil, err
	}
	// The time and size are the open file's, which may differ from the
	// Stat above if the file was replaced meanwhile.
	if fi, err := f.Stat(); err == nil {
		info = fi
	}
	sum := sha256.Sum256(data)
	prov.Add(kpi.Read{Kind: kpi.ReadFile, Name: name, Size: int64(len(data)), ModTime: info.ModTime().UTC(), SHA256: hex.EncodeToString(sum[:])})
	return data, nil
}

// isEscape reports whether err is os.Root refusing a path that leaves it.
func isEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

var errTooLarge = errors.New("larger than the limit")

// readAllBounded reads r to its end, within ctx, failing with errTooLarge
// past limit bytes.
func readAllBounded(ctx context.Context, r io.Reader, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	chunk := make([]byte, 64<<10)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := r.Read(chunk)
		buf.Write(chunk[:n])
		if int64(buf.Len()) > limit {
			return nil, errTooLarge
		}
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// nameColumns adds the named groups of the name pattern, matched against
// the file's name, as columns.
func (s *FileSource) nameColumns(t *table, name string) error {
	base := path.Base(name)
	m := s.namePattern.FindStringSubmatch(base)
	if m == nil {
		return fmt.Errorf("%s: the name does not match file.name_pattern %q", t.where, s.namePattern.String())
	}
	for i, group := range s.namePattern.SubexpNames() {
		if group == "" {
			continue
		}
		value := m[i]
		if err := t.addColumn(group, func(*tableRow) any { return value }); err != nil {
			return fmt.Errorf("%w: file.name_pattern's group %q would hide it", err, group)
		}
	}
	return nil
}

// readNeighbours reads the benchmark's statistical neighbour file.
func (s *FileSource) readNeighbours(ctx context.Context, root *os.Root, prov *kpi.Provenance) (*table, error) {
	name := s.bench.neighboursFile
	where := fmt.Sprintf("file %q (benchmark.neighbours_file)", name)
	data, err := readBounded(ctx, root, name, s.maxSize, prov)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	opts := config.TableOptions{Format: config.FormatOf(name), Encoding: config.EncodingUTF8, Delimiter: ",", HeaderRow: 1}
	var t *table
	if opts.Format == config.FormatXLSX {
		t, err = readXLSX(ctx, data, opts, s.maxSize)
	} else {
		t, err = readCSV(ctx, data, opts)
	}
	if err != nil {
		return nil, Permanent(fmt.Errorf("%s: %w", where, err))
	}
	t.where = where
	return t, nil
}
