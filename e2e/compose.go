package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/carewatch/carewatch/e2e/upstream"
)

// buildWithin bounds building an upstream release, waiting for another
// test binary's build of it included. A first build takes several minutes
// on a busy two-core machine; later ones find it in the cache.
const buildWithin = 18 * time.Minute

// ComposePrometheus returns the Prometheus release (server and promtool)
// that docker-compose.yml runs, built from its Go module, or from the
// cache when an earlier test built it; it fails tb if the build fails.
func ComposePrometheus(tb testing.TB) upstream.Build {
	tb.Helper()
	return composeBuild(tb, upstream.Prometheus)
}

// ComposeAlertmanager returns the Alertmanager release (with amtool) that
// the Compose stack's image is built from, as ComposePrometheus does.
func ComposeAlertmanager(tb testing.TB) upstream.Build {
	tb.Helper()
	return composeBuild(tb, upstream.Alertmanager)
}

func composeBuild(tb testing.TB, p upstream.Program) upstream.Build {
	tb.Helper()
	release, err := p.ComposeRelease(RepoRoot(tb))
	mustf(tb, err, "the Compose release")
	cache, err := upstream.CacheRoot()
	mustf(tb, err, "the build cache")
	ctx, cancel := context.WithTimeout(context.Background(), buildWithin)
	defer cancel()
	b, err := p.Get(ctx, cache, release)
	mustf(tb, err, "%s %s", p.Name, release)
	if b.Built > 0 {
		tb.Logf("built %s %s from its Go module in %s, kept in %s", p.Name, release, b.Built.Round(time.Second), b.Dir)
	}
	return b
}
