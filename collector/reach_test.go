package collector_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
)

func TestReachFileAndHTTPSources(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		src  config.SourceConfig
		want string
	}{
		{"a folder that exists is reachable", config.SourceConfig{Name: "hr", Type: "file", Directory: dir}, ""},
		{"a folder that does not exist is not", config.SourceConfig{Name: "hr", Type: "file", Directory: filepath.Join(dir, "gone")}, `source "hr": directory ` + filepath.Join(dir, "gone")},
		{"an API that answers, even 404, is reachable", config.SourceConfig{Name: "api", Type: "http", BaseURL: srv.URL + "/v1/"}, ""},
		{"an API that does not answer is not", config.SourceConfig{Name: "api", Type: "http", BaseURL: "http://127.0.0.1:1/"}, `source "api": cannot reach http://127.0.0.1:1/: dial tcp 127.0.0.1:1: connect: connection refused`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := collector.Reach(t.Context(), &tc.src)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
		})
	}
}
