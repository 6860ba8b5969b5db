// Command generate writes carewatch's Grafana dashboards for a
// configuration's KPI catalogue into a folder:
//
//	go run ./dashboards/generate -config carewatch.yml -out DIR
//
// go generate ./dashboards runs it on the demo council's configuration to
// write the dashboards committed beside it. A council runs it on its own
// carewatch.yml and points Grafana's dashboard provider at DIR: every KPI
// of its catalogue then has its panels, with no hand edit.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/dashboards"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	configFile := fs.String("config", "carewatch.yml", "carewatch configuration whose KPI catalogue the dashboards show")
	out := fs.String("out", ".", "folder to write the dashboards' JSON files into")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*configFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "generate: %v\n", err)
		return 1
	}
	files, err := dashboards.Generate(cfg.Catalogue, dashboards.Options{Timezone: cfg.Location.String()})
	if err != nil {
		fmt.Fprintf(os.Stderr, "generate: %v\n", err)
		return 1
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "generate: %v\n", err)
		return 1
	}
	// Dashboards of services no longer in the catalogue go.
	old, _ := filepath.Glob(filepath.Join(*out, "service-*.json"))
	keep := map[string]bool{}
	for _, f := range files {
		keep[f.Name] = true
		if err := os.WriteFile(filepath.Join(*out, f.Name), f.JSON, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "generate: %v\n", err)
			return 1
		}
	}
	for _, f := range old {
		if name := filepath.Base(f); !keep[name] && strings.HasPrefix(name, "service-") {
			if err := os.Remove(f); err != nil {
				fmt.Fprintf(os.Stderr, "generate: %v\n", err)
				return 1
			}
		}
	}
	return 0
}
