package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/store"
)

// provenanceOptions are what explain and history are asked.
type provenanceOptions struct {
	KPI string
	// Labels are label=value pairs that pick the series.
	Labels []string
	// Period (explain), From and To (history) are dates, YYYY-MM-DD.
	Period, From, To string
	// Format is table, csv or json (history).
	Format string
}

// seriesFor opens the store and finds the KPI, as the store's catalogue
// holds it, and its series matching o.Labels. Only the store is read.
func seriesFor(ctx context.Context, file string, o provenanceOptions, logger *slog.Logger) (*store.Store, *kpi.KPI, []store.SeriesRef, *time.Location, error) {
	cfg, err := loadConfig(file)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	fail := func(err error) (*store.Store, *kpi.KPI, []store.SeriesRef, *time.Location, error) {
		st.Close()
		return nil, nil, nil, nil, err
	}
	k, _, err := st.StoredKPI(ctx, o.KPI)
	if err != nil {
		return fail(err)
	}
	match := map[string]string{}
	for _, pair := range o.Labels {
		name, value, ok := strings.Cut(pair, "=")
		if !ok || name == "" {
			return fail(fmt.Errorf("%q is not a label=value pair", pair))
		}
		if k.LabelIndex(name) < 0 {
			return fail(fmt.Errorf("%s has no label %q (its labels: %s)", k.Name, name, strings.Join(k.Labels, ", ")))
		}
		match[name] = value
	}
	series, err := st.FindSeries(ctx, k, match)
	if err != nil {
		return fail(err)
	}
	if len(series) == 0 {
		return fail(fmt.Errorf("the store has no series of %s%s", k.Name, labelWordsMap(match)))
	}
	return st, k, series, cfg.Location, nil
}

func labelWordsMap(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return " with " + strings.Join(parts, ", ")
}

// parseDate reads a YYYY-MM-DD date in loc; end moves it to the last
// instant of that day.
func parseDate(flag, s string, loc *time.Location, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation(time.DateOnly, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q is not a date written YYYY-MM-DD", flag, s)
	}
	if end {
		t = t.AddDate(0, 0, 1).Add(-time.Nanosecond)
	}
	return t, nil
}

// runExplain prints where one stored value came from: its value and status,
// the thresholds in force for its period, the run that produced it (when,
// which collector, source and what it read), every revision with its run,
// and the series' status history.
func runExplain(ctx context.Context, file string, o provenanceOptions, out io.Writer, logger *slog.Logger) error {
	st, k, series, loc, err := seriesFor(ctx, file, o, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	if len(series) > 1 {
		var b strings.Builder
		for _, s := range series {
			fmt.Fprintf(&b, "\n  %s", kpi.LabelString(k, s.Labels))
		}
		return fmt.Errorf("%d series of %s match; name one with label=value pairs:%s", len(series), k.Name, b.String())
	}
	at, err := parseDate("period", o.Period, loc, true)
	if err != nil {
		return err
	}
	s := series[0]
	e, err := st.Explain(ctx, s.ID, at)
	if errors.Is(err, store.ErrNotFound) && o.Period != "" {
		return fmt.Errorf("%s%s has no value for %s or before", k.Name, kpi.LabelString(k, s.Labels), o.Period)
	}
	if err != nil {
		return err
	}
	status, th := k.Evaluate(s.Labels, e.Period, e.Value)
	date := func(t time.Time) string { return t.In(loc).Format("2006-01-02") }
	when := func(t time.Time) string { return t.In(loc).Format("2006-01-02 15:04:05 MST") }
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "KPI\t%s%s\n", k.Name, kpi.LabelString(k, s.Labels))
	fmt.Fprintf(tw, "period\t%s\n", date(e.Period))
	fmt.Fprintf(tw, "value\t%s\n", valueWords(k, e.Value))
	if status != kpi.StatusNone {
		fmt.Fprintf(tw, "status\t%s\n", status)
		fmt.Fprintf(tw, "thresholds\t%s (in force for %s)\n", thresholdWords(th), date(e.Period))
	} else {
		fmt.Fprintf(tw, "status\tnone (the KPI has no thresholds)\n")
	}
	if k.IsBenchmark(s.Labels) {
		fmt.Fprintf(tw, "benchmark\tyes: rated, never alerted\n")
	}
	tw.Flush()
	fmt.Fprintln(out)
	fmt.Fprintln(out, "produced by")
	writeRun(out, e.Run, when)
	if len(e.Revisions) == 0 {
		fmt.Fprintln(out, "\nrevisions: none; the value is as first stored")
	} else {
		fmt.Fprintf(out, "\nrevisions (%d), oldest first\n", len(e.Revisions))
		for _, r := range e.Revisions {
			fmt.Fprintf(out, "  %s: %s -> %s, by run %d (%s) replacing run %d (%s)\n", when(r.RevisedAt),
				valueWords(k, r.Old), valueWords(k, r.New), r.NewRun.ID, r.NewRun.Collector, r.OldRun.ID, r.OldRun.Collector)
		}
	}
	if len(e.Statuses) > 0 {
		fmt.Fprintln(out, "\nstatus history")
		for _, ev := range e.Statuses {
			from := "none"
			if ev.From != kpi.StatusNone {
				from = ev.From.String()
			}
			reason := ""
			switch ev.Reason {
			case kpi.ReasonTarget:
				reason = ": the target moved"
			case kpi.ReasonValue:
				reason = ": the value moved"
			}
			fmt.Fprintf(out, "  %s: %s -> %s for %s at %s against %s (run %d)%s\n", when(ev.At), from, ev.To, date(ev.Period),
				valueWords(k, ev.Value), thresholdWords(ev.Thresholds), ev.RunID, reason)
		}
	}
	return nil
}

func writeRun(out io.Writer, r store.RunRecord, when func(time.Time) string) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  run\t%d (%s)\n", r.ID, r.Status)
	fmt.Fprintf(tw, "  collector\t%s\n", r.Collector)
	fmt.Fprintf(tw, "  when\t%s to %s\n", when(r.StartedAt), when(r.FinishedAt))
	fmt.Fprintf(tw, "  source\t%s\n", r.Source)
	label := "read"
	for _, rd := range r.Reads {
		switch rd.Kind {
		case kpi.ReadFile:
			fmt.Fprintf(tw, "  %s\tfile %s: %d bytes, modified %s, sha256 %s\n", label, rd.Name, rd.Size, when(rd.ModTime), rd.SHA256)
		case kpi.ReadHTTP:
			fmt.Fprintf(tw, "  %s\t%s: %d bytes, sha256 %s\n", label, rd.Name, rd.Size, rd.SHA256)
		default:
			continue // the query is below
		}
		label = ""
	}
	for i, line := range strings.Split(strings.TrimSpace(r.Query), "\n") {
		label := ""
		if i == 0 {
			label = "query"
			if len(r.Reads) > 0 && r.Reads[0].Kind != kpi.ReadSQL {
				label = "reading"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\n", label, line)
	}
	fmt.Fprintf(tw, "  observations\t%d\n", r.Observations)
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "  check %s\t%s: %s\n", c.Check, c.Action, c.Message)
	}
	tw.Flush()
}

func valueWords(k *kpi.KPI, v kpi.Value) string {
	if !v.Valid {
		return "missing"
	}
	s := strconv.FormatFloat(v.V, 'g', -1, 64)
	if k.Unit != "" {
		s += " " + k.Unit
	}
	return s
}

func thresholdWords(t kpi.Thresholds) string {
	var parts []string
	if t.Amber.Set {
		parts = append(parts, "amber "+strconv.FormatFloat(t.Amber.Value, 'g', -1, 64))
	}
	if t.Red.Set {
		parts = append(parts, "red "+strconv.FormatFloat(t.Red.Value, 'g', -1, 64))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// historyRecord is one row of history's output.
type historyRecord struct {
	KPI         string            `json:"kpi"`
	Labels      map[string]string `json:"labels"`
	Period      string            `json:"period"`
	Value       *float64          `json:"value"`
	Status      string            `json:"status,omitempty"`
	Amber       *float64          `json:"amber,omitempty"`
	Red         *float64          `json:"red,omitempty"`
	Benchmark   bool              `json:"benchmark,omitempty"`
	CollectedAt string            `json:"collected_at"`
	Run         int64             `json:"run"`
	Collector   string            `json:"collector"`
	Revisions   int               `json:"revisions"`
}

// runHistory prints the stored values of a KPI's series over time, each
// period judged by the thresholds in force then.
func runHistory(ctx context.Context, file string, o provenanceOptions, out io.Writer, logger *slog.Logger) error {
	switch o.Format {
	case "", "table", "csv", "json":
	default:
		return fmt.Errorf("--format %q is not one of table, csv, json", o.Format)
	}
	st, k, series, loc, err := seriesFor(ctx, file, o, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	from, err := parseDate("from", o.From, loc, false)
	if err != nil {
		return err
	}
	to, err := parseDate("to", o.To, loc, true)
	if err != nil {
		return err
	}
	rows, err := st.SeriesHistory(ctx, series, from, to)
	if err != nil {
		return err
	}
	recs := make([]historyRecord, 0, len(rows))
	for _, r := range rows {
		status, th := k.Evaluate(r.Series.Labels, r.Period, r.Value)
		rec := historyRecord{
			KPI: k.Name, Labels: map[string]string{}, Period: r.Period.In(loc).Format(time.DateOnly),
			Status: status.String(), Benchmark: k.IsBenchmark(r.Series.Labels),
			CollectedAt: r.CollectedAt.In(loc).Format(time.RFC3339), Run: r.RunID, Collector: r.Collector, Revisions: r.Revisions,
		}
		for i, l := range k.Labels {
			rec.Labels[l] = r.Series.Labels[i]
		}
		if r.Value.Valid {
			rec.Value = &r.Value.V
		}
		if th.Amber.Set {
			rec.Amber = &th.Amber.Value
		}
		if th.Red.Set {
			rec.Red = &th.Red.Value
		}
		recs = append(recs, rec)
	}
	switch o.Format {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(recs)
	case "csv":
		return historyCSV(out, k, recs)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tPERIOD\tVALUE\tSTATUS\tAMBER\tRED\tCOLLECTED\tRUN\n", strings.ToUpper(strings.Join(k.Labels, "\t")))
	for _, r := range recs {
		for _, l := range k.Labels {
			fmt.Fprintf(tw, "%s\t", r.Labels[l])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Period, numberCell(r.Value, "missing"), r.Status, numberCell(r.Amber, ""), numberCell(r.Red, ""), r.CollectedAt, r.Run)
	}
	return tw.Flush()
}

func numberCell(f *float64, none string) string {
	if f == nil {
		return none
	}
	return strconv.FormatFloat(*f, 'g', -1, 64)
}

// historyCSV writes RFC 4180 CSV that a spreadsheet opens as columns: a
// UTF-8 byte-order mark (so Excel reads names with accents right), a
// header row, ISO dates, plain numbers with a point, an empty cell for a
// missing value, CRLF line ends.
func historyCSV(out io.Writer, k *kpi.KPI, recs []historyRecord) error {
	if _, err := io.WriteString(out, "\ufeff"); err != nil {
		return err
	}
	w := csv.NewWriter(out)
	w.UseCRLF = true
	header := append([]string{"kpi"}, k.Labels...)
	header = append(header, "period", "value", "unit", "status", "amber", "red", "benchmark", "collected_at", "run", "collector", "revisions")
	if err := w.Write(header); err != nil {
		return err
	}
	for _, r := range recs {
		row := []string{r.KPI}
		for _, l := range k.Labels {
			row = append(row, r.Labels[l])
		}
		row = append(row, r.Period, numberCell(r.Value, ""), k.Unit, r.Status, numberCell(r.Amber, ""), numberCell(r.Red, ""),
			strconv.FormatBool(r.Benchmark), r.CollectedAt, strconv.FormatInt(r.Run, 10), r.Collector, strconv.Itoa(r.Revisions))
		if err := w.Write(row); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}
