package upstream_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carewatch/carewatch/e2e"
	"github.com/carewatch/carewatch/e2e/upstream"
)

func TestPrometheusReleasesMapToTheModuleVersionsThatHoldThem(t *testing.T) {
	for release, want := range map[string]string{"3.5.0": "v0.305.0", "3.10.2": "v0.310.2", "3.0.1": "v0.300.1"} {
		if got, err := upstream.Prometheus.ModuleVersion(release); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", release, got, err, want)
		}
	}
	for _, bad := range []string{"2.42.0", "3.5", "3.100.0", "v3.5.0", "3.5.x"} {
		if got, err := upstream.Prometheus.ModuleVersion(bad); err == nil {
			t.Errorf("%s: %q, want an error", bad, got)
		}
	}
}

func TestTheComposeReleaseIsTheImageTagNamedOnce(t *testing.T) {
	for _, c := range []struct{ name, text, want, err string }{
		{"one", "  prometheus:\n    image: prom/prometheus:v3.5.0\n", "3.5.0", ""},
		{"none", "  prometheus:\n    image: prom/prometheus:latest\n", "", "0 times"},
		{"two", "image: prom/prometheus:v3.5.0\nimage: prom/prometheus:v3.4.0\n", "", "2 times"},
		{"another image", "image: myprom/prometheus:v3.5.0\n", "", "0 times"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.WriteFile(filepath.Join(root, "docker-compose.yml"), []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := upstream.Prometheus.ComposeRelease(root)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("%q, %v; want an error saying %q", got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("%q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// The releases Compose ships build from their Go modules, and each built
// command says it is that release. .ci/run runs this first, so that the
// end-to-end tests find the builds in the cache.
func TestTheComposeReleasesBuildAndSayTheirRelease(t *testing.T) {
	for _, b := range []upstream.Build{e2e.ComposePrometheus(t), e2e.ComposeAlertmanager(t)} {
		for _, c := range b.Program.Commands {
			name := filepath.Base(c)
			out, err := exec.CommandContext(t.Context(), b.Command(name), "--version").CombinedOutput()
			if err != nil {
				t.Errorf("%s --version: %v\n%s", name, err, out)
				continue
			}
			if !strings.Contains(string(out), "version "+b.Release) {
				t.Errorf("%s --version does not say %s:\n%s", name, b.Release, out)
			}
		}
	}
}
