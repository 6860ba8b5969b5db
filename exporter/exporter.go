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

	"github.com/carewatch/carewatch/kpi"
)

// contentType is the text exposition format 0.0.4, with the name escaping
// that client_golang's own handler announces for it.
var contentType = string(expfmt.FmtText.WithEscapingScheme(model.UnderscoreEscaping))

// Exporter holds the current snapshot and its exposition, rendered once per
// snapshot, and serves it. Its methods are safe for concurrent use.
type Exporter struct {
	logger *slog.Logger
	// setMu serialises Set and Update, so that the snapshot of the last
	// one to start is the one that stays, however long each render takes;
	// scrapes never take it.
	setMu sync.Mutex
	cur   atomic.Pointer[rendering]
	// chunkSize is defaultChunkSize; tests make it small.
	chunkSize int
}

// New returns an exporter without a snapshot: it is not ready, and its
// handler serves the self-metrics only.
func New(logger *slog.Logger) *Exporter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Exporter{logger: logger, chunkSize: defaultChunkSize}
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
	r, err := render(s, e.chunkSize, nil, nil)
	if err != nil {
		return fmt.Errorf("exporter: rendering snapshot: %w", err)
	}
	e.cur.Store(r)
	return nil
}

// ErrNoSnapshot is returned by Update before the first Set.
var ErrNoSnapshot = errors.New("exporter: no snapshot to update")

// Update publishes what one run changed: series holds the latest states of
// the series the run wrote (as the store's Latest would return them), and
// health the health of every collector. The current snapshot's other
// series stay as they are, and only the parts of the exposition whose lines
// changed are rendered again, so an update costs what the run changed, not
// what the snapshot holds. A state of a period older than the one served
// for its series does not replace it: the latest period stays the latest,
// whatever order runs are published in. States of KPIs the snapshot does
// not export are left out and logged; a new catalogue needs a new snapshot
// (Set).
func (e *Exporter) Update(series []kpi.SeriesState, health []kpi.CollectorHealth) error {
	e.setMu.Lock()
	defer e.setMu.Unlock()
	prev := e.cur.Load()
	if prev == nil {
		return ErrNoSnapshot
	}
	s, diffs := prev.snap.with(series, health)
	for _, p := range s.problems[len(prev.snap.problems):] {
		e.logger.Warn("left out of /metrics", "problem", p)
	}
	r, err := render(s, e.chunkSize, prev, diffs)
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

// Handler serves the exposition: the current snapshot's, rendered by Set or
// Update, followed by the self-metrics gathered from self at each scrape
// (self may be nil). With Accept-Encoding: gzip the response is the
// snapshot's cached gzip members followed by a gzip member of the
// self-metrics; a gzip stream may be a series of members (RFC 1952), and
// Go's gzip reader, which Prometheus uses, reads them all. Without it, the
// cached members are inflated as they are written.
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
			var members [][]byte
			size := gzSelf.Len()
			if r != nil {
				members, size = r.members, size+r.gzSize
			}
			h.Set("Content-Encoding", "gzip")
			h.Set("Content-Length", strconv.Itoa(size))
			if req.Method == http.MethodHead {
				return
			}
			e.write(w, append(members[:len(members):len(members)], gzSelf.Bytes())...)
			return
		}
		size := selfBuf.Len()
		if r != nil {
			size += r.plainSize
		}
		h.Set("Content-Length", strconv.Itoa(size))
		if req.Method == http.MethodHead {
			return
		}
		if r != nil {
			if err := writePlain(w, r.members); err != nil {
				e.logger.Debug("writing metrics", "err", err)
				return
			}
		}
		e.write(w, selfBuf.Bytes())
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
