package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	promconfig "github.com/prometheus/common/config"

	"github.com/carewatch/carewatch/config"
)

// Reach checks that a file or http source can be reached, for `carewatch
// check --connect`: a file source's directory opens; an http source's
// base_url answers (any HTTP status will do: it proves the address, the TLS
// setup and, for OAuth2, the token endpoint). A postgres source is checked
// with ConnectSQL instead.
func Reach(ctx context.Context, src *config.SourceConfig) error {
	switch src.Type {
	case config.SourceFile:
		root, err := os.OpenRoot(src.Directory)
		if err != nil {
			return fmt.Errorf("source %q: directory %s: %w", src.Name, src.Directory, err)
		}
		return root.Close()
	case config.SourceHTTP:
		hc := promconfig.DefaultHTTPClientConfig
		if src.HTTPConfig != nil {
			hc = src.HTTPConfig.HTTPClientConfig
		}
		client, err := promconfig.NewClientFromConfig(hc, "carewatch_"+src.Name)
		if err != nil {
			return fmt.Errorf("source %q: http_config: %w", src.Name, err)
		}
		defer client.CloseIdleConnections()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.BaseURL, nil)
		if err != nil {
			return fmt.Errorf("source %q: %w", src.Name, err)
		}
		req.Header.Set("User-Agent", UserAgent)
		resp, err := client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return fmt.Errorf("source %q: cannot reach %s: %w", src.Name, src.BaseURL, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp.Body.Close()
	}
	return fmt.Errorf("source %q: Reach is for file and http sources, not %s", src.Name, src.Type)
}
