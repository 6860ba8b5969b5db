package exporter

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
)

// A rendering is a snapshot with its exposition, kept only gzipped: as a
// series of gzip members, one for each family's HELP and TYPE lines and one
// for each chunk of up to chunkSize positions of a part. A gzip stream may
// be a series of members (RFC 1952), and Go's gzip reader, which Prometheus
// uses, reads them all; a plain scrape inflates them as it writes them.
// Kept plain, a million series would be over half a gigabyte; gzipped they
// are a twentieth of that.
//
// The chunks of each KPI's parts are kept with the entry they were rendered
// from, so that a snapshot updated by a run (Snapshot.with) renders again
// only the chunks whose lines changed: the cost of publishing a run follows
// the series it changed, not all the series.
type rendering struct {
	snap *Snapshot
	// members are the exposition's gzip members, in order; empty chunks
	// are left out.
	members   [][]byte
	plainSize int
	gzSize    int
	// families are the rendered family names, so that a self-metric family
	// of the same name can be left out instead of breaking the exposition.
	families map[string]struct{}
	// parts holds the chunks of every KPI part, and headers the HELP and
	// TYPE member of every family, for the next update to reuse.
	parts   map[partKey][]chunk
	headers map[string]header
}

type partKey struct {
	entry *kpiEntry
	kind  partKind
}

// chunk is the rendering of positions [lo, hi) of a part.
type chunk struct {
	lo, hi int
	gz     []byte
	plain  int
}

type header struct {
	text string
	gz   []byte
	size int
}

// defaultChunkSize bounds the positions of a part rendered as one member: a
// run that changes one series renders a few chunks of this size again.
const defaultChunkSize = 256

// gzipLevel trades a little size for speed: at level 3 klauspost/compress
// writes a million series in well under a second, and the repetitive text
// still shrinks about twentyfold.
const gzipLevel = 3

// render renders s. With prev, the rendering of the snapshot s was derived
// from, and diffs, what changed in each entry s does not share with it
// (see Snapshot.with), chunks whose lines did not change are reused.
func render(s *Snapshot, chunkSize int, prev *rendering, diffs map[*kpiEntry]*entryDiff) (*rendering, error) {
	r := &rendering{
		snap:     s,
		families: make(map[string]struct{}),
		parts:    make(map[partKey][]chunk),
		headers:  make(map[string]header),
	}
	// A job renders chunk c of part p; with old, the chunk it replaces,
	// whose positions other than changed kept their lines, it renders only
	// the lines of changed and copies the others from old (see splice).
	type job struct {
		p       part
		c       *chunk
		old     *chunk
		from    *kpiEntry
		changed []int
	}
	type famChunks struct {
		f      family
		chunks [][]chunk
	}
	var (
		jobs []job
		plan []famChunks
	)
	for _, f := range s.families() {
		fc := famChunks{f: f}
		for _, p := range f.parts {
			old, from, changed := reusable(p, prev, diffs)
			chunks := make([]chunk, 0, (p.n+chunkSize-1)/chunkSize)
			// Jobs point into chunks once it stops growing.
			var pending []job
			at := []int(nil)
			for lo := 0; lo < p.n; lo += chunkSize {
				hi := min(lo+chunkSize, p.n)
				k := len(chunks)
				j := job{p: p}
				if k < len(old) && old[k].lo == lo && old[k].hi == hi {
					a, _ := slices.BinarySearch(changed, lo)
					b, _ := slices.BinarySearch(changed, hi)
					if a == b {
						chunks = append(chunks, old[k])
						continue
					}
					if from != nil {
						j.old, j.from, j.changed = &old[k], from, changed[a:b]
					}
				}
				chunks = append(chunks, chunk{lo: lo, hi: hi})
				pending = append(pending, j)
				at = append(at, k)
			}
			for i, j := range pending {
				j.c = &chunks[at[i]]
				jobs = append(jobs, j)
			}
			if p.entry != nil {
				r.parts[partKey{p.entry, p.kind}] = chunks
			}
			fc.chunks = append(fc.chunks, chunks)
		}
		plan = append(plan, fc)
	}

	// The chunks are compressed on every core: at start-up they are all
	// of them, and compression is most of the cost.
	workers := min(runtime.GOMAXPROCS(0), (len(jobs)+7)/8)
	var (
		wg     sync.WaitGroup
		next   = make(chan job)
		errMu  sync.Mutex
		jobErr error
	)
	for range workers {
		wg.Go(func() {
			c := newCompressor()
			for j := range next {
				if j.old != nil {
					c.buf = c.splice(c.buf[:0], j.p, j.old, j.from, j.changed)
				} else {
					c.buf = j.p.text(c.buf[:0], j.c.lo, j.c.hi)
				}
				j.c.plain = len(c.buf)
				j.c.gz = c.compress(c.buf)
			}
			errMu.Lock()
			jobErr = cmp.Or(jobErr, c.err)
			errMu.Unlock()
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	if jobErr != nil {
		return nil, jobErr
	}

	c := newCompressor()
	for _, fc := range plan {
		size := 0
		for _, chunks := range fc.chunks {
			for _, ch := range chunks {
				size += ch.plain
			}
		}
		if size == 0 {
			// A registry leaves out a family without metrics.
			continue
		}
		h, ok := prev.header(fc.f.name)
		text := string(appendHeader(nil, fc.f.name, fc.f.help, fc.f.typ))
		if !ok || h.text != text {
			h = header{text: text, gz: c.compress([]byte(text)), size: len(text)}
		}
		r.headers[fc.f.name] = h
		r.add(h.gz, h.size)
		for _, chunks := range fc.chunks {
			for _, ch := range chunks {
				if ch.plain > 0 {
					r.add(ch.gz, ch.plain)
				}
			}
		}
		r.families[fc.f.name] = struct{}{}
	}
	if c.err != nil {
		return nil, c.err
	}
	return r, nil
}

func (r *rendering) add(gz []byte, plain int) {
	r.members = append(r.members, gz)
	r.gzSize += len(gz)
	r.plainSize += plain
}

func (r *rendering) header(name string) (header, bool) {
	if r == nil {
		return header{}, false
	}
	h, ok := r.headers[name]
	return h, ok
}

// reusable returns the chunks of prev that p may reuse, and the positions
// whose lines changed (sorted); a chunk without them is reused as it is.
// With from, the entry the chunks were rendered from, a chunk with them
// may be spliced (see compressor.splice); without it, it is rendered again.
func reusable(p part, prev *rendering, diffs map[*kpiEntry]*entryDiff) (old []chunk, from *kpiEntry, changed []int) {
	if prev == nil || p.entry == nil {
		return nil, nil, nil
	}
	if old, ok := prev.parts[partKey{p.entry, p.kind}]; ok {
		return old, nil, nil
	}
	d := diffs[p.entry]
	if d == nil {
		return nil, nil, nil
	}
	old, ok := prev.parts[partKey{d.old, p.kind}]
	if !ok {
		return nil, nil, nil
	}
	positions, all := d.changed(p.kind)
	if all {
		return nil, nil, nil
	}
	switch p.kind {
	case partValues, partStatus, partPeriods:
		return old, d.old, positions
	}
	return old, nil, positions
}

// splice writes the lines of chunk old's positions as p (a part of one KPI
// entry's values, status or periods) has them, where only the positions
// changed have lines other than those of from, the entry old was rendered
// from: it inflates old, copies its lines of the other positions and renders
// those of changed only. Those families have at most one line per position,
// and a position that did not change has the same line, or none, in both.
func (c *compressor) splice(dst []byte, p part, old *chunk, from *kpiEntry, changed []int) []byte {
	plain := c.inflate(old.gz)
	if c.err != nil {
		return dst
	}
	pos, next := 0, old.lo
	// skip returns the offset in plain after n more lines from pos.
	skip := func(n int) int {
		end := pos
		for ; n > 0; n-- {
			k := bytes.IndexByte(plain[end:], '\n')
			if k < 0 {
				c.err = errors.New("splicing the exposition: a chunk has fewer lines than its positions")
				return end
			}
			end += k + 1
		}
		return end
	}
	for _, i := range changed {
		n := 0
		for ; next < i; next++ {
			if hasLine(p.kind, p.entry.series.at(next)) {
				n++
			}
		}
		end := skip(n)
		dst = append(dst, plain[pos:end]...)
		pos = end
		if hasLine(p.kind, from.series.at(i)) {
			pos = skip(1)
		}
		dst = p.text(dst, i, i+1)
		next = i + 1
	}
	return append(dst, plain[pos:]...)
}

// compressor writes gzip members, and inflates those it splices.
type compressor struct {
	buf []byte
	out bytes.Buffer
	zw  *gzip.Writer
	err error
	in  inflater
}

// inflate returns the text of gzip member m, valid until the next call.
func (c *compressor) inflate(m []byte) []byte {
	if c.err != nil {
		return nil
	}
	c.in.text.Reset()
	if err := c.in.add(m); err != nil {
		c.err = fmt.Errorf("inflating the exposition: %w", err)
		return nil
	}
	return c.in.text.Bytes()
}

func newCompressor() *compressor {
	zw, err := gzip.NewWriterLevel(nil, gzipLevel)
	return &compressor{zw: zw, err: err}
}

// compress returns p as one gzip member.
func (c *compressor) compress(p []byte) []byte {
	if c.err != nil {
		return nil
	}
	c.out.Reset()
	c.zw.Reset(&c.out)
	if _, err := c.zw.Write(p); err != nil {
		c.err = fmt.Errorf("compressing the exposition: %w", err)
		return nil
	}
	if err := c.zw.Close(); err != nil {
		c.err = fmt.Errorf("compressing the exposition: %w", err)
		return nil
	}
	return bytes.Clone(c.out.Bytes())
}

// inflater inflates gzip members with one reader, into one buffer.
type inflater struct {
	zr   *gzip.Reader
	br   bytes.Reader
	text bytes.Buffer
}

// add appends the text of gzip member m to in.text.
func (in *inflater) add(m []byte) error {
	in.br.Reset(m)
	var err error
	if in.zr == nil {
		in.zr, err = gzip.NewReader(&in.br)
	} else {
		err = in.zr.Reset(&in.br)
	}
	if err != nil {
		return err
	}
	in.zr.Multistream(false)
	_, err = in.text.ReadFrom(in.zr)
	return err
}

// inflateAll returns the text of members, valid until in is used again.
func (in *inflater) inflateAll(members [][]byte) ([]byte, error) {
	in.text.Reset()
	size := 0
	for _, m := range members {
		size += plainLen(m)
	}
	in.text.Grow(size)
	for _, m := range members {
		if err := in.add(m); err != nil {
			return nil, err
		}
	}
	return in.text.Bytes(), nil
}

// plainLen is the length of gzip member m's text, as its trailer says
// (modulo 2^32, which a member of a chunk never reaches).
func plainLen(m []byte) int {
	if len(m) < 18 {
		return 0
	}
	return int(binary.LittleEndian.Uint32(m[len(m)-4:]))
}

var inflaters = sync.Pool{New: func() any { return new(inflater) }}

// plainBatch is about how much text a plain scrape inflates at a time.
const plainBatch = 1 << 20

// writePlain inflates the members to w, in order. Inflating is most of a
// plain scrape's cost, and the members are independent: batches of about
// plainBatch of text are inflated on every core while the batches before
// them are written, with at most two batches a core (and eight in all)
// inflated ahead.
func writePlain(w io.Writer, members [][]byte) error {
	batches := splitMembers(members, plainBatch)
	if len(batches) <= 1 {
		in := inflaters.Get().(*inflater)
		text, err := in.inflateAll(members)
		if err == nil {
			_, err = w.Write(text)
		}
		inflaters.Put(in)
		return err
	}
	type inflated struct {
		in   *inflater
		text []byte
		err  error
	}
	done := make([]chan inflated, len(batches))
	for i := range done {
		done[i] = make(chan inflated, 1)
	}
	ahead := make(chan struct{}, min(2*runtime.GOMAXPROCS(0), 8))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i, batch := range batches {
			select {
			case ahead <- struct{}{}:
			case <-stop:
				return
			}
			go func() {
				in := inflaters.Get().(*inflater)
				text, err := in.inflateAll(batch)
				done[i] <- inflated{in, text, err}
			}()
		}
	}()
	for i := range batches {
		// Every batch is inflated once the batches before it are
		// written: inflating is bounded work on memory.
		r := <-done[i]
		if r.err != nil {
			return r.err
		}
		if _, err := w.Write(r.text); err != nil {
			return err
		}
		inflaters.Put(r.in)
		<-ahead
	}
	return nil
}

// splitMembers cuts members into runs of about size bytes of text each.
func splitMembers(members [][]byte, size int) [][][]byte {
	var batches [][][]byte
	lo, n := 0, 0
	for i, m := range members {
		if n += plainLen(m); n >= size {
			batches = append(batches, members[lo:i+1])
			lo, n = i+1, 0
		}
	}
	if lo < len(members) {
		batches = append(batches, members[lo:])
	}
	return batches
}
