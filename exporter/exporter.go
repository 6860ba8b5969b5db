package exporter

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// contentType is the text exposition format 0.0.4, with the name escaping
// that client_golang's own handler announces for it.
var contentType = string(expfmt.FmtText.WithEscapingScheme(model.UnderscoreEscaping))

// Exporter holds the current snapshot and its exposition, rendered once per
// snapshot, and serves it. Its methods are safe for concurrent use.
type Exporter struct {
	logger *slog.Logger
	// setMu serialises Set, so that the snapshot of the last Set to start is
	// the one that stays, however long each render takes; scrapes never
	// take it.
	setMu sync.Mutex
	cur   atomic.Pointer[rendering]
	// pieceSize is defaultPieceSize; tests make it small.
	pieceSize int
}

// rendering is a snapshot with its exposition.
type rendering struct {
	snap *Snapshot
	// plain is the text exposition, one chunk per rendered piece, so that a
	// large snapshot needs no single buffer of its whole size, nor the slack
	// of a buffer grown by doubling.
	plain [][]byte
	size  int
	// gz is the same exposition as one gzip member.
	gz []byte
	// families are the rendered family names, so that a self-metric family
	// of the same name can be left out instead of breaking the exposition.
	families map[string]struct{}
}

// New returns an exporter without a snapshot: it is not ready, and its
// handler serves the self-metrics only.
func New(logger *slog.Logger) *Exporter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Exporter{logger: logger, pieceSize: defaultPieceSize}
}

// Set renders s and makes it the current snapshot. Scrapes in flight keep
// the previous exposition; the following ones get the new one. On an error
// the previous snapshot stays current.
func (e *Exporter) Set(s *Snapshot) error {
	if s == nil {
		return errors.New("exporter: nil snapshot")
	}
	e.setMu.Lock()
	defer e.setMu.Unlock()
	r, err := render(s, e.pieceSize)
	if err != nil {
		return fmt.Errorf("exporter: rendering snapshot: %w", err)
	}
	e.cur.Store(r)
	return nil
}

// Current returns the current snapshot, or nil before the first Set.
func (e *Exporter) Current() *Snapshot {
	if r := e.cur.Load(); r != nil {
		return r.snap
	}
	return nil
}

// Ready reports whether a snapshot has been set.
func (e *Exporter) Ready() bool { return e.cur.Load() != nil }

// defaultPieceSize bounds the metrics gathered at once while rendering: a
// few megabytes of protobuf form instead of hundreds for a large snapshot.
const defaultPieceSize = 10_000

// render writes s's exposition a piece at a time, each piece through its own
// private registry: the registry's checks, ordering and escaping apply,
// while the transient protobuf form of the metrics stays bounded.
func render(s *Snapshot, pieceSize int) (*rendering, error) {
	r := &rendering{snap: s, families: make(map[string]struct{})}
	var gzBuf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gzBuf, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for _, f := range s.families() {
		for _, p := range f.parts {
			for lo := 0; lo < p.n; lo += pieceSize {
				buf.Reset()
				hi := min(lo+pieceSize, p.n)
				if err := renderPiece(&buf, f.name, func(ch chan<- prometheus.Metric) { p.emit(ch, lo, hi) }, r.families); err != nil {
					return nil, fmt.Errorf("family %s: %w", f.name, err)
				}
				if buf.Len() == 0 {
					continue
				}
				chunk := bytes.Clone(buf.Bytes())
				r.plain = append(r.plain, chunk)
				r.size += len(chunk)
				if _, err := zw.Write(chunk); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	r.gz = bytes.Clone(gzBuf.Bytes())
	return r, nil
}

// renderPiece gathers what collect sends, which must all belong to the
// family name, and encodes it to w. The family's HELP and TYPE lines are
// written only with its first metrics: seen records the families begun.
func renderPiece(w *bytes.Buffer, name string, collect familyCollector, seen map[string]struct{}) error {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collect); err != nil {
		return err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			return fmt.Errorf("piece has metrics of family %s", mf.GetName())
		}
		_, begun := seen[name]
		if begun {
			mf.Help = nil
		}
		start := w.Len()
		if err := expfmt.NewEncoder(w, expfmt.Format(contentType)).Encode(mf); err != nil {
			return err
		}
		if begun {
			// Without Help, the text format begins with the TYPE line,
			// which a continued family must not repeat.
			b := w.Bytes()[start:]
			typeLine := bytes.IndexByte(b, '\n') + 1
			n := copy(b, b[typeLine:])
			w.Truncate(start + n)
		}
		seen[name] = struct{}{}
	}
	return nil
}

// familyCollector is an unchecked collector of one family.
type familyCollector func(ch chan<- prometheus.Metric)

func (familyCollector) Describe(chan<- *prometheus.Desc)      {}
func (f familyCollector) Collect(ch chan<- prometheus.Metric) { f(ch) }

// Handler serves the exposition: the current snapshot's, rendered by Set,
// followed by the self-metrics gathered from self at each scrape (self may be
// nil). With Accept-Encoding: gzip the response is the snapshot's cached gzip
// member followed by a gzip member of the self-metrics; a gzip stream may be
// a series of members (RFC 1952), and Go's gzip reader, which Prometheus
// uses, reads them all.
func (e *Exporter) Handler(self prometheus.Gatherer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		r := e.cur.Load()

		selfBuf := bufPool.Get().(*bytes.Buffer)
		defer putBuf(selfBuf)
		selfBuf.Reset()
		e.writeSelf(selfBuf, self, r)

		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Add("Vary", "Accept-Encoding")
		if gzipAccepted(req.Header.Get("Accept-Encoding")) {
			gzSelf := bufPool.Get().(*bytes.Buffer)
			defer putBuf(gzSelf)
			gzSelf.Reset()
			if err := gzipInto(gzSelf, selfBuf.Bytes()); err != nil {
				e.logger.Error("compressing self-metrics", "err", err)
				http.Error(w, "compressing self-metrics: "+err.Error(), http.StatusInternalServerError)
				return
			}
			var cached []byte
			if r != nil {
				cached = r.gz
			}
			h.Set("Content-Encoding", "gzip")
			h.Set("Content-Length", strconv.Itoa(len(cached)+gzSelf.Len()))
			if req.Method == http.MethodHead {
				return
			}
			e.write(w, cached, gzSelf.Bytes())
			return
		}
		size := selfBuf.Len()
		var chunks [][]byte
		if r != nil {
			chunks, size = r.plain, size+r.size
		}
		h.Set("Content-Length", strconv.Itoa(size))
		if req.Method == http.MethodHead {
			return
		}
		e.write(w, append(chunks[:len(chunks):len(chunks)], selfBuf.Bytes())...)
	})
}

// write copies parts to w; an error means the scraper went away, which is
// worth a debug line and nothing more.
func (e *Exporter) write(w io.Writer, parts ...[]byte) {
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			e.logger.Debug("writing metrics", "err", err)
			return
		}
	}
}

// writeSelf encodes the self-metrics. Like client_golang's handler with
// ContinueOnError, a gather error is logged and what was gathered is served:
// the KPIs matter more than a broken self-metric.
func (e *Exporter) writeSelf(w *bytes.Buffer, self prometheus.Gatherer, r *rendering) {
	if self == nil {
		return
	}
	mfs, err := self.Gather()
	if err != nil {
		e.logger.Error("gathering self-metrics", "err", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.Format(contentType))
	for _, mf := range mfs {
		if r != nil {
			if _, dup := r.families[mf.GetName()]; dup {
				e.logger.Error("self-metric family has the name of a snapshot family; left out", "family", mf.GetName())
				continue
			}
		}
		start := w.Len()
		if err := enc.Encode(mf); err != nil {
			// A half-written family would break the whole exposition.
			w.Truncate(start)
			e.logger.Error("encoding self-metrics; family left out", "family", mf.GetName(), "err", err)
		}
	}
}

// gzipAccepted reports whether an Accept-Encoding header value allows gzip
// (RFC 9110 §12.5.3): listed, or covered by "*", with a non-zero weight.
func gzipAccepted(header string) bool {
	gz, star := -1.0, -1.0
	for part := range strings.SplitSeq(header, ",") {
		name, params, _ := strings.Cut(part, ";")
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "gzip", "x-gzip":
			gz = q
		case "*":
			star = q
		}
	}
	if gz >= 0 {
		return gz > 0
	}
	return star > 0
}

var (
	bufPool  = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	gzipPool = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}
)

// putBuf returns b to the pool unless an unusual scrape grew it large.
func putBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		bufPool.Put(b)
	}
}

// gzipInto writes p to w as one gzip member.
func gzipInto(w io.Writer, p []byte) error {
	zw := gzipPool.Get().(*gzip.Writer)
	defer gzipPool.Put(zw)
	zw.Reset(w)
	if _, err := zw.Write(p); err != nil {
		return err
	}
	return zw.Close()
}
