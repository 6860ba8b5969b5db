package collector

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	promconfig "github.com/prometheus/common/config"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// UserAgent is what carewatch calls itself in HTTP requests.
const UserAgent = "carewatch"

// HTTPSource is a collector's request to an HTTP API answering JSON or CSV:
// national statistics APIs, inspection registers, a supplier's portal. Its
// client is built from the source's Prometheus HTTP client configuration
// (bearer token, basic auth, OAuth2 client credentials, TLS). It implements
// kpi.Source.
type HTTPSource struct {
	collector string
	source    string
	url       string
	method    string
	body      string
	headers   http.Header
	format    string
	table     config.TableOptions
	rows      *config.JSONPath
	fields    []jsonField
	filters   []rowFilter
	tableName string
	query     string
	maxBody   int64
	client    *http.Client
	mapper    *Mapper
}

var _ kpi.Source = (*HTTPSource)(nil)

// NewHTTPSource returns the source of collector cc, requesting from the http
// source src and mapping the answer's rows with m. It makes no request: an
// API that is down fails the collector's runs, not the daemon's start.
func NewHTTPSource(cc *config.CollectorConfig, src *config.SourceConfig, m *Mapper) (*HTTPSource, error) {
	switch {
	case cc == nil || src == nil || m == nil:
		return nil, errors.New("http source: no collector, source or mapper")
	case src.Type != config.SourceHTTP:
		return nil, fmt.Errorf("collector %q: source %q is a %s source, not an http source", cc.Name, src.Name, src.Type)
	case cc.HTTP == nil:
		return nil, fmt.Errorf("collector %q: http: no request", cc.Name)
	}
	h := cc.HTTP
	u, err := src.ResolveURL(h.URL)
	if err != nil {
		return nil, fmt.Errorf("collector %q: http.url: %w", cc.Name, err)
	}
	s := &HTTPSource{
		collector: cc.Name,
		source:    src.Name,
		url:       u.String(),
		method:    strings.ToUpper(firstNonEmpty(h.Method, http.MethodGet)),
		body:      h.Body,
		headers:   http.Header{},
		format:    firstNonEmpty(h.Format, config.FormatJSON),
		table:     h.TableOptions,
		filters:   newFilters(cc.Filters),
		tableName: firstNonEmpty(h.Table, config.DefaultHTTPTable),
		query:     cc.Query,
		maxBody:   src.EffectiveMaxBodySize(),
		mapper:    m,
	}
	for k, v := range h.Headers {
		s.headers.Set(k, v)
	}
	if s.headers.Get("Accept") == "" {
		if s.format == config.FormatCSV {
			s.headers.Set("Accept", "text/csv, text/plain;q=0.5")
		} else {
			s.headers.Set("Accept", "application/json")
		}
	}
	if s.body != "" && s.headers.Get("Content-Type") == "" {
		s.headers.Set("Content-Type", "application/json")
	}
	s.headers.Set("User-Agent", UserAgent)
	if s.format == config.FormatJSON {
		s.rows = h.RowsPath
		names := make([]string, 0, len(h.FieldPaths))
		for name := range h.FieldPaths {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			s.fields = append(s.fields, jsonField{name: name, path: h.FieldPaths[name]})
		}
	}
	hc := promconfig.DefaultHTTPClientConfig
	if src.HTTPConfig != nil {
		hc = src.HTTPConfig.HTTPClientConfig
	}
	if s.client, err = promconfig.NewClientFromConfig(hc, "carewatch_"+src.Name); err != nil {
		return nil, fmt.Errorf("collector %q: source %q: http_config: %w", cc.Name, src.Name, err)
	}
	// The client's credentials go with every request it sends, redirects
	// included: a redirect to another scheme, host or port is refused,
	// so they never follow one there.
	follow := s.client.CheckRedirect
	s.client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if from := via[0].URL; req.URL.Scheme != from.Scheme || req.URL.Host != from.Host {
			return fmt.Errorf("a redirect from %s://%s to %s://%s was refused: the source's credentials are for %s://%s only",
				from.Scheme, from.Host, req.URL.Scheme, req.URL.Host, from.Scheme, from.Host)
		}
		if follow != nil {
			return follow(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return s, nil
}

// Close releases the source's idle connections when a reload replaces it.
func (s *HTTPSource) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// Describe returns the source's name and the request, for the run record.
func (s *HTTPSource) Describe() (source, query string) {
	q := s.method + " " + s.url
	if s.body != "" {
		q += "\n" + s.body
	}
	return s.source, q
}

// Collect sends the request within ctx and maps the rows of the answer. An
// answer that retrying cannot mend (a 4xx other than 408 and 429, HTML or
// anything else where JSON was expected, a body past max_body_size, rows that
// do not map) fails the run at once with a Permanent error naming the URL,
// the path or row, and the cause; a 5xx, a 429 or a timeout may be retried.
func (s *HTTPSource) Collect(ctx context.Context, run kpi.RunInfo) ([]kpi.Observation, error) {
	obs, err := s.collect(ctx, run)
	if err != nil {
		return nil, sourceError(ctx, s.collector, s.source, err, nil)
	}
	return obs, nil
}

func (s *HTTPSource) collect(ctx context.Context, run kpi.RunInfo) ([]kpi.Observation, error) {
	where := s.method + " " + s.url
	var body io.Reader
	if s.body != "" {
		body = strings.NewReader(s.body)
	}
	req, err := http.NewRequestWithContext(ctx, s.method, s.url, body)
	if err != nil {
		return nil, Permanent(fmt.Errorf("%s: %w", where, err))
	}
	req.Header = s.headers.Clone()
	resp, err := s.client.Do(req)
	if err != nil {
		// url.Error repeats the method and URL that where already says.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		msg := fmt.Sprintf("%s: HTTP %s", where, resp.Status)
		if q := quoteSnippet(snippet); q != "" {
			msg += ": " + q
		}
		err := errors.New(msg)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout {
			return nil, Permanent(err)
		}
		return nil, err
	}
	if resp.ContentLength > s.maxBody {
		return nil, Permanent(fmt.Errorf("%s: the answer is %s, more than the source's max_body_size (%s)", where, config.ByteSize(resp.ContentLength), config.ByteSize(s.maxBody)))
	}
	data, err := readAllBounded(ctx, resp.Body, s.maxBody)
	if errors.Is(err, errTooLarge) {
		return nil, Permanent(fmt.Errorf("%s: the answer is larger than the source's max_body_size (%s)", where, config.ByteSize(s.maxBody)))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %w", where, err)
	}
	sum := sha256.Sum256(data)
	run.Provenance.Add(kpi.Read{Kind: kpi.ReadHTTP, Name: resp.Request.URL.Redacted(), Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	contentType := resp.Header.Get("Content-Type")
	mediaType, _, _ := mime.ParseMediaType(contentType)
	if contentType == "" {
		contentType = "no content type"
	}
	want := "JSON"
	if s.format == config.FormatCSV {
		want = "CSV"
	}
	if looksLikeHTML(mediaType, data) {
		return nil, Permanent(fmt.Errorf("%s answered %s, not %s (a login, error or maintenance page?); it begins %s", where, contentType, want, quoteSnippet(data)))
	}

	var t *table
	switch s.format {
	case config.FormatCSV:
		if t, err = readCSV(ctx, data, s.table); err != nil {
			return nil, Permanent(fmt.Errorf("%s (%s): %w", where, contentType, err))
		}
	default:
		doc, err := decodeJSON(data)
		if err != nil {
			return nil, Permanent(fmt.Errorf("%s answered %s that is not JSON: %w", where, contentType, err))
		}
		if t, err = jsonTable(doc, s.rows, s.fields); err != nil {
			return nil, Permanent(fmt.Errorf("%s: %w", where, err))
		}
	}
	t.where, t.name = where, s.tableName
	if err := filter(t, s.filters); err != nil {
		return nil, Permanent(err)
	}
	if s.query != "" {
		if t, err = queryTables(ctx, []*table{t}, s.query); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, Permanent(err)
		}
	}
	obs, err := mapTables(s.mapper, []*table{t}, run)
	if err != nil {
		return nil, &mappingError{err}
	}
	return obs, nil
}

// decodeJSON decodes one JSON document, keeping numbers as their text.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%v at byte %d", se, se.Offset)
		}
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the answer is empty")
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("the answer ends in the middle of the document (cut short?)")
		}
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("there is more after the document, at byte %d", dec.InputOffset())
	}
	return doc, nil
}

// looksLikeHTML reports whether an answer is a web page.
func looksLikeHTML(mediaType string, data []byte) bool {
	switch mediaType {
	case "text/html", "application/xhtml+xml":
		return true
	}
	t := bytes.TrimSpace(bytes.TrimPrefix(data, utf8BOM))
	return bytes.HasPrefix(t, []byte("<"))
}

// quoteSnippet quotes the start of a body for an error message.
func quoteSnippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	const limit = 120
	cut := len(b) > limit
	if cut {
		b = b[:limit]
		for len(b) > 0 && !utf8.Valid(b) {
			b = b[:len(b)-1]
		}
	}
	s := strconv.Quote(string(b))
	if cut {
		s += "…"
	}
	return s
}
