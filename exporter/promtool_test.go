package exporter_test

import (
	"bytes"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/carewatch/carewatch/exporter"
	"github.com/carewatch/carewatch/internal/debian"
)

// TestPromtoolAcceptsTheRealExposition runs `promtool check metrics` (its
// lint rules included) on what /metrics serves with the daemon's real
// self-metrics, plain and gzip-decoded.
func TestPromtoolAcceptsTheRealExposition(t *testing.T) {
	ctx := t.Context()
	promtool, err := debian.Find("promtool", "prometheus")
	if err != nil {
		t.Fatal(err)
	}

	self := exporter.NewSelfRegistry()
	reload, err := exporter.NewReloadMetrics(self)
	if err != nil {
		t.Fatal(err)
	}
	reload.Succeeded(time.Now())
	e := exporter.New(nil)
	mustSet(t, e, newFixture().snapshot())
	srv := newServer(t, e, self)

	for _, enc := range []string{"", "gzip"} {
		t.Run("Accept-Encoding "+enc, func(t *testing.T) {
			_, body := get(t, http.MethodGet, srv.URL, enc)
			if enc == "gzip" {
				body = gunzip(t, body, true)
			}
			cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
			cmd.Stdin = bytes.NewReader(body)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("promtool check metrics: %v\n%s\n--- exposition\n%s", err, out, body)
			}
		})
	}
}
