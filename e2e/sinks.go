package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carewatch/carewatch/internal/amwebhook"
)

// Post is one HTTP POST a Webhook received.
type Post struct {
	Path string
	Body []byte
	At   time.Time
}

// Webhook is an HTTP server that records every POST: it stands in for the
// receivers of Alertmanager's webhooks and for Teams.
type Webhook struct {
	URL string

	mu    sync.Mutex
	posts []Post
}

// StartWebhook starts a Webhook on 127.0.0.1; it answers every POST with
// 200 and stops when tb ends.
func StartWebhook(tb testing.TB) *Webhook {
	tb.Helper()
	w := &Webhook{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(rw, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.posts = append(w.posts, Post{Path: r.URL.Path, Body: body, At: time.Now()})
		w.mu.Unlock()
	}))
	tb.Cleanup(srv.Close)
	w.URL = srv.URL
	return w
}

// Posts returns what was posted so far, oldest first.
func (w *Webhook) Posts() []Post {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Post(nil), w.posts...)
}

// Notification is the JSON body of an Alertmanager webhook notification.
type Notification = amwebhook.Notification

// Alert is one alert of a Notification.
type Alert = amwebhook.Alert

// Notifications decodes every post as an Alertmanager notification.
func (w *Webhook) Notifications(tb testing.TB) []Notification {
	tb.Helper()
	var out []Notification
	for _, p := range w.Posts() {
		var n Notification
		if err := json.Unmarshal(p.Body, &n); err != nil {
			tb.Fatalf("e2e: a post to %s is not an Alertmanager notification: %v\n%s", p.Path, err, p.Body)
		}
		out = append(out, n)
	}
	return out
}

// WaitForAlert waits until a notification holds an alert that match
// accepts, and returns both.
func (w *Webhook) WaitForAlert(tb testing.TB, what string, within time.Duration, match func(Notification, Alert) bool) (Notification, Alert) {
	tb.Helper()
	var n Notification
	var a Alert
	Eventually(tb, what, within, func() (bool, string) {
		ns := w.Notifications(tb)
		for _, cand := range ns {
			for _, al := range cand.Alerts {
				if match(cand, al) {
					n, a = cand, al
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("%d notifications so far: %s", len(ns), summarise(ns))
	})
	return n, a
}

// WaitForPost waits until a post that match accepts arrives.
func (w *Webhook) WaitForPost(tb testing.TB, what string, within time.Duration, match func(Post) bool) Post {
	tb.Helper()
	var got Post
	Eventually(tb, what, within, func() (bool, string) {
		ps := w.Posts()
		for _, p := range ps {
			if match(p) {
				got = p
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d posts so far", len(ps))
	})
	return got
}

// summarise lists notifications briefly, for failure messages.
func summarise(ns []Notification) string {
	var b strings.Builder
	for _, n := range ns {
		fmt.Fprintf(&b, "\n  %s to %s:", n.Status, n.Receiver)
		for _, a := range n.Alerts {
			fmt.Fprintf(&b, " [%s %s kpi=%s team=%s collector=%s]", a.Status, a.Labels["alertname"], a.Labels["kpi"], a.Labels["team"], a.Labels["collector"])
		}
	}
	return b.String()
}

// Email is one message an SMTPSink received, decoded.
type Email struct {
	From    string
	To      []string
	Subject string
	// Text and HTML are the decoded text/plain and text/html parts.
	Text, HTML string
	Raw        []byte
}

// SMTPSink is a minimal SMTP server on 127.0.0.1 that accepts every
// message, without TLS or authentication: it stands in for a council's
// mail server.
type SMTPSink struct {
	Addr string

	mu     sync.Mutex
	emails []Email
	errs   []error
}

// StartSMTPSink starts an SMTPSink; it stops when tb ends.
func StartSMTPSink(tb testing.TB) *SMTPSink {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	mustf(tb, err, "SMTP sink")
	s := &SMTPSink{Addr: l.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(conn)
			}()
		}
	}()
	tb.Cleanup(func() {
		l.Close()
		wg.Wait()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, err := range s.errs {
			tb.Errorf("e2e: SMTP sink: %v", err)
		}
	})
	return s
}

// serve speaks just enough SMTP for Alertmanager's email notifier.
func (s *SMTPSink) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(conn)
	reply := func(code int, text string) { _ = tp.PrintfLine("%d %s", code, text) }
	reply(220, "carewatch-e2e ESMTP")
	var from string
	var to []string
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			reply(250, "carewatch-e2e")
		case "MAIL":
			from, to = pathArg(arg, "FROM:"), nil
			reply(250, "OK")
		case "RCPT":
			to = append(to, pathArg(arg, "TO:"))
			reply(250, "OK")
		case "DATA":
			reply(354, "end with <CRLF>.<CRLF>")
			raw, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			e, err := decodeEmail(raw)
			s.mu.Lock()
			if err != nil {
				s.errs = append(s.errs, err)
			} else {
				e.From, e.To = from, to
				s.emails = append(s.emails, e)
			}
			s.mu.Unlock()
			reply(250, "OK")
		case "RSET", "NOOP":
			reply(250, "OK")
		case "QUIT":
			reply(221, "bye")
			return
		default:
			reply(502, "not implemented")
		}
	}
}

// pathArg reads the address of "FROM:<a@b> SIZE=10" or "TO:<a@b>".
func pathArg(arg, prefix string) string {
	if len(arg) >= len(prefix) && strings.EqualFold(arg[:len(prefix)], prefix) {
		arg = arg[len(prefix):]
	}
	addr, _, _ := strings.Cut(strings.TrimSpace(arg), " ")
	return strings.Trim(addr, "<>")
}

// Emails returns the messages received so far.
func (s *SMTPSink) Emails() []Email {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Email(nil), s.emails...)
}

// WaitFor waits until an email that match accepts arrives.
func (s *SMTPSink) WaitFor(tb testing.TB, what string, within time.Duration, match func(Email) bool) Email {
	tb.Helper()
	var got Email
	Eventually(tb, what, within, func() (bool, string) {
		es := s.Emails()
		var subjects []string
		for _, e := range es {
			if match(e) {
				got = e
				return true, ""
			}
			subjects = append(subjects, e.Subject)
		}
		return false, fmt.Sprintf("%d emails so far: %q", len(es), subjects)
	})
	return got
}

// decodeEmail reads a MIME message's subject and its text and HTML parts.
func decodeEmail(raw []byte) (Email, error) {
	e := Email{Raw: raw}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return e, fmt.Errorf("reading a message: %w", err)
	}
	dec := new(mime.WordDecoder)
	if e.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return e, fmt.Errorf("decoding the subject: %w", err)
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return e, fmt.Errorf("content type: %w", err)
	}
	if !strings.HasPrefix(mediaType, "multipart/") {
		body, err := decodePart(msg.Body, msg.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return e, err
		}
		if mediaType == "text/html" {
			e.HTML = body
		} else {
			e.Text = body
		}
		return e, nil
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return e, nil
		}
		if err != nil {
			return e, fmt.Errorf("reading a part: %w", err)
		}
		body, err := decodePart(p, p.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return e, err
		}
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			e.Text = body
		case "text/html":
			e.HTML = body
		}
	}
}

func decodePart(r io.Reader, encoding string) (string, error) {
	if strings.EqualFold(encoding, "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(bufio.NewReader(r))
	if err != nil {
		return "", fmt.Errorf("decoding a part: %w", err)
	}
	return string(b), nil
}

// TeamsRelay is carewatch-teams running as a subprocess.
type TeamsRelay struct {
	*Process
	Addr, URL string
}

// StartTeamsRelay builds and runs carewatch-teams on a free 127.0.0.1
// port, with one channel per entry of channels (name to the webhook URL it
// posts to, written to a file as an operator would), and waits until it is
// ready. It is stopped when tb ends.
func StartTeamsRelay(tb testing.TB, channels map[string]string) *TeamsRelay {
	tb.Helper()
	bin := BuildCommand(tb, "./cmd/carewatch-teams")
	dir := tb.TempDir()
	addr := FreeAddr(tb)
	args := []string{"--web.listen-address=" + addr, "--log.level=debug", "--teams.retry-backoff=100ms"}
	for name, u := range channels {
		f := filepath.Join(dir, name+".url")
		mustf(tb, os.WriteFile(f, []byte(u+"\n"), 0o600), "writing %s", f)
		args = append(args, "--teams.webhook-url-file="+name+"="+f)
	}
	p := StartProcess(tb, "carewatch-teams", bin, nil, args...)
	r := &TeamsRelay{Process: p, Addr: addr, URL: "http://" + addr}
	p.WaitHTTP(tb, r.URL+"/-/ready")
	return r
}
