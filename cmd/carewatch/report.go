package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/report"
)

// packSpec is the configuration's KPI pack, or, without a report section,
// a pack of every KPI in catalogue order.
func packSpec(cfg *config.Config) report.Spec {
	r := cfg.Report
	if r == nil {
		items := make([]report.Item, len(cfg.KPIs))
		for i, k := range cfg.KPIs {
			items[i] = report.Item{KPI: k.Name}
		}
		return report.Spec{Title: "KPI pack", Sections: []report.Section{{Title: "All KPIs", Items: items}}}
	}
	spec := report.Spec{Title: r.Title, Council: r.Council}
	for _, s := range r.Sections {
		sec := report.Section{Title: s.Title}
		for _, k := range s.KPIs {
			it := report.Item{KPI: k.KPI, Title: k.Title, Match: k.Series}
			if b := k.Benchmark; b != nil {
				it.Benchmark = &report.Benchmark{KPI: b.KPI, ScopeLabel: b.ScopeLabel, NameLabel: b.NameLabel}
			}
			sec.Items = append(sec.Items, it)
		}
		spec.Sections = append(spec.Sections, sec)
	}
	return spec
}

// renderPack builds the configuration's pack for month (zero: the latest)
// from the store and renders it.
func renderPack(ctx context.Context, st report.Store, cfg *config.Config, month time.Time) ([]byte, error) {
	p, err := report.Build(ctx, st, cfg.Catalogue, packSpec(cfg), report.Options{Month: month, Location: cfg.Location, Now: time.Now()})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := p.Render(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// reportHandler serves the pack of the configuration in force;
// ?period=2026-11 asks for a past month.
func (d *daemon) reportHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cfg := d.current().cfg
		var month time.Time
		if p := r.URL.Query().Get("period"); p != "" {
			m, err := report.ParseMonth(p, cfg.Location)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			month = m
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		page, err := renderPack(ctx, d.store, cfg, month)
		if err != nil {
			d.logger.Error("building the KPI pack", "err", err)
			http.Error(w, "The KPI pack could not be built: the store did not answer. The error is in carewatch's log.", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(page)
	})
}

// runReport writes the configuration's pack for period (YYYY-MM; empty is
// the latest month with values) to out, a file, or standard output for "-".
func runReport(ctx context.Context, file, period, out string, stdout io.Writer, logger *slog.Logger) error {
	cfg, err := loadConfig(file)
	if err != nil {
		return err
	}
	var month time.Time
	if period != "" {
		if month, err = report.ParseMonth(period, cfg.Location); err != nil {
			return err
		}
	}
	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	page, err := renderPack(ctx, st, cfg, month)
	if err != nil {
		return err
	}
	if out == "" || out == "-" {
		_, err := stdout.Write(page)
		return err
	}
	return writeFileAtomic(out, page)
}

// writeFileAtomic replaces path with data so that a reader never sees half
// a file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// commentOptions are the arguments of the comment command.
type commentOptions struct {
	KPI    string
	Labels []string
	Period string
	Text   string
}

// runComment stores an officer's commentary on a KPI for a month; without
// a text (or with "-"), it is read from standard input.
func runComment(ctx context.Context, file string, o commentOptions, stdin io.Reader, out io.Writer, logger *slog.Logger) error {
	cfg, err := loadConfig(file)
	if err != nil {
		return err
	}
	c, err := newComment(cfg, o, stdin)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.SaveComment(ctx, c); err != nil {
		return err
	}
	fmt.Fprintf(out, "commentary stored for %s%s, %s\n", c.KPI, labelWords(c.Labels), c.Month.Format("January 2006"))
	return nil
}

// newComment checks a comment against the catalogue.
func newComment(cfg *config.Config, o commentOptions, stdin io.Reader) (kpi.Comment, error) {
	k := cfg.Catalogue[o.KPI]
	if k == nil {
		return kpi.Comment{}, fmt.Errorf("no KPI %q in the configuration (KPIs: %s)", o.KPI, strings.Join(cfg.Catalogue.Names(), ", "))
	}
	labels := map[string]string{}
	for _, pair := range o.Labels {
		name, value, ok := strings.Cut(pair, "=")
		if !ok || name == "" {
			return kpi.Comment{}, fmt.Errorf("%q is not a label=value pair", pair)
		}
		if k.LabelIndex(name) < 0 {
			return kpi.Comment{}, fmt.Errorf("%s has no label %q (its labels: %s)", k.Name, name, strings.Join(k.Labels, ", "))
		}
		labels[name] = value
	}
	var month time.Time
	if o.Period == "" {
		month = kpi.CommentMonth(time.Now().In(cfg.Location))
	} else {
		m, err := report.ParseMonth(o.Period, time.UTC)
		if err != nil {
			return kpi.Comment{}, err
		}
		month = m
	}
	text := o.Text
	// kingpin hands a lone "-" over as an empty argument.
	if text == "-" || text == "" {
		b, err := io.ReadAll(bufio.NewReader(io.LimitReader(stdin, 64<<10)))
		if err != nil {
			return kpi.Comment{}, fmt.Errorf("reading the commentary: %w", err)
		}
		text = string(b)
	}
	if strings.TrimSpace(text) == "" {
		return kpi.Comment{}, errors.New("the commentary is empty")
	}
	return kpi.Comment{KPI: k.Name, Labels: labels, Month: month, Text: text}, nil
}

func labelWords(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, n+"="+labels[n])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
