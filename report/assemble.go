package report

import (
	"cmp"
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/carewatch/carewatch/kpi"
)

// Pack is an assembled KPI pack, ready to render.
type Pack struct {
	Title    string
	Council  string
	Month    time.Time
	Location *time.Location
	// Built says when the pack was built, in words.
	Built    string
	Summary  Summary
	Sections []SectionView
}

// Summary is the exceptions at the top of the pack.
type Summary struct {
	Red, Amber, Green, Unknown int
	// Changed lists the series whose status differs from the previous period's.
	Changed []Change
	// Stale lists the series whose latest value is older than its KPI allows.
	Stale []Ref
	// Uncommented lists the red and amber KPIs with no commentary this month.
	Uncommented []Ref
}

// Ref points to a series or a KPI of the pack.
type Ref struct {
	Anchor string
	Title  string
	Series string
	Note   string
}

// Change is a series whose status moved since the previous period.
type Change struct {
	Ref
	From, To     StatusView
	PreviousWhen string
}

// SectionView is one section of the pack.
type SectionView struct {
	Anchor string
	Title  string
	KPIs   []KPIView
}

// KPIView is one KPI of a section with its series.
type KPIView struct {
	Anchor     string
	Title      string
	Definition string
	Direction  string
	Comment    string
	// SeriesComments are comments on one series: "north: ...".
	SeriesComments []SeriesComment
	Rows           []Row
	// Body is Rows as the table's rows, written by rowsHTML.
	Body      template.HTML
	Benchmark *BenchmarkView
}

// SeriesComment is a comment on one series of a KPI.
type SeriesComment struct{ Series, Text string }

// Row is one series of a KPI.
type Row struct {
	Series      string
	Value       string
	Period      string
	Collected   string
	Status      StatusView
	Threshold   string
	Previous    Travel
	LastYear    Travel
	Sparkline   template.HTML
	Stale       bool
	status      kpi.Status
	commented   bool
	prevStatus  kpi.Status
	prevWhen    string
	staleReason string
}

// StatusView is a RAG status as words, a class for its colour and a shape.
type StatusView struct {
	Word  string
	Class string
	Shape template.HTML
}

// Travel is the direction of travel against an earlier period.
type Travel struct {
	Class string
	Text  string
}

// BenchmarkView compares the council with its neighbours and England.
type BenchmarkView struct {
	Period     string
	Neighbours string
	NeighbourN int
	England    string
	Region     string
	RegionName string
	Council    string
	Rank       string
}

// Assemble builds the pack from what Read fetched.
func Assemble(cat kpi.Catalogue, spec Spec, f *Fetch, o Options) *Pack {
	loc := location(o)
	now := cmp.Or(o.Now, time.Now())
	p := &Pack{
		Title:    cmp.Or(spec.Title, "KPI pack"),
		Council:  spec.Council,
		Month:    f.Month,
		Location: loc,
		Built:    now.In(loc).Format("2 January 2006 at 15:04 MST"),
	}
	monthEnd := monthStart(f.Month, loc).AddDate(0, 1, 0)
	staleAt := now
	if monthEnd.Before(staleAt) {
		staleAt = monthEnd
	}
	byKPI := map[string][]kpi.SeriesHistory{}
	for _, h := range f.History {
		byKPI[h.KPI.Name] = append(byKPI[h.KPI.Name], h)
	}
	anchors := map[string]int{}
	for si, sec := range spec.Sections {
		sv := SectionView{Title: sec.Title, Anchor: fmt.Sprintf("section-%d", si+1)}
		for _, it := range sec.Items {
			k := cat[it.KPI]
			if k == nil {
				continue
			}
			kv := KPIView{
				Title:      cmp.Or(it.Title, titleOf(k)),
				Definition: k.Help,
				Direction:  directionWords(k),
			}
			kv.Anchor = anchor(anchors, k.Name)
			for _, c := range f.Comments {
				if c.KPI != k.Name {
					continue
				}
				if len(c.Labels) == 0 {
					kv.Comment = c.Text
				}
			}
			var shown []kpi.SeriesHistory
			for _, h := range byKPI[k.Name] {
				if k.Matches(it.Match, h.Labels) {
					shown = append(shown, h)
				}
			}
			names := seriesNames(k, shown, it.Match)
			for i, h := range shown {
				row := buildRow(k, h, names[i], loc, staleAt)
				if cmt := seriesComment(k, h.Labels, f.Comments); cmt != "" {
					kv.SeriesComments = append(kv.SeriesComments, SeriesComment{Series: row.Series, Text: cmt})
					row.commented = true
				}
				row.commented = row.commented || kv.Comment != ""
				kv.Rows = append(kv.Rows, row)
			}
			kv.Body = rowsHTML(kv.Rows)
			if it.Benchmark != nil {
				kv.Benchmark = benchmark(cat, k, it, byKPI, loc)
			}
			summarise(&p.Summary, &kv)
			sv.KPIs = append(sv.KPIs, kv)
		}
		p.Sections = append(p.Sections, sv)
	}
	return p
}

// rowsHTML writes the rows of a KPI's table. It is the pack's one piece of
// HTML written outside the template: a pack has hundreds of rows, and
// writing them here, escaping every text, takes a fraction of the
// template's time.
func rowsHTML(rows []Row) template.HTML {
	var b strings.Builder
	esc := html.EscapeString
	for _, r := range rows {
		b.WriteString("<tr>\n<th scope=\"row\">")
		b.WriteString(esc(r.Series))
		b.WriteString("</th>\n<td><span class=\"value\">")
		b.WriteString(esc(r.Value))
		b.WriteString("</span>")
		if r.Period != "" {
			b.WriteString(`<span class="meta">for ` + esc(r.Period) + `</span>`)
		}
		if r.Collected != "" {
			b.WriteString(`<span class="meta">collected ` + esc(r.Collected) + `</span>`)
		}
		if r.Stale {
			b.WriteString(`<span class="meta stale">Stale</span>`)
		}
		b.WriteString("</td>\n<td><span class=\"status " + r.Status.Class + "\">")
		b.WriteString(string(r.Status.Shape))
		b.WriteString(" " + esc(r.Status.Word) + "</span></td>\n<td>")
		b.WriteString(esc(r.Threshold))
		b.WriteString("</td>\n<td class=\"travel " + r.Previous.Class + "\">" + esc(r.Previous.Text) + "</td>\n")
		b.WriteString("<td class=\"travel " + r.LastYear.Class + "\">" + esc(r.LastYear.Text) + "</td>\n<td>")
		b.WriteString(string(r.Sparkline))
		b.WriteString("</td>\n</tr>\n")
	}
	return template.HTML(b.String())
}

func summarise(s *Summary, kv *KPIView) {
	var hot, stale []string
	var staleNote string
	for _, r := range kv.Rows {
		ref := Ref{Anchor: kv.Anchor, Title: kv.Title, Series: r.Series}
		switch r.status {
		case kpi.StatusRed:
			s.Red++
		case kpi.StatusAmber:
			s.Amber++
		case kpi.StatusGreen:
			s.Green++
		case kpi.StatusUnknown:
			s.Unknown++
		}
		if r.status != kpi.StatusNone && r.prevStatus != kpi.StatusNone && r.prevStatus != r.status {
			s.Changed = append(s.Changed, Change{Ref: ref, From: statusView(r.prevStatus), To: r.Status, PreviousWhen: r.prevWhen})
		}
		if r.Stale {
			stale = append(stale, r.Series)
			staleNote = r.staleReason
		}
		if (r.status == kpi.StatusRed || r.status == kpi.StatusAmber) && !r.commented {
			hot = append(hot, r.Series+" ("+r.Status.Word+")")
		}
	}
	if len(stale) > 0 {
		s.Stale = append(s.Stale, Ref{Anchor: kv.Anchor, Title: kv.Title, Series: strings.Join(stale, ", "), Note: staleNote})
	}
	if len(hot) > 0 {
		s.Uncommented = append(s.Uncommented, Ref{Anchor: kv.Anchor, Title: kv.Title, Note: strings.Join(hot, ", ")})
	}
}

func buildRow(k *kpi.KPI, h kpi.SeriesHistory, name string, loc *time.Location, staleAt time.Time) Row {
	row := Row{Series: name}
	pts := h.Points
	// The threshold in force is the one for the period the value describes.
	row.Threshold = thresholdWords(k, k.ThresholdsAt(h.Labels, staleAt))
	if len(pts) == 0 {
		row.status = statusOf(k, h.Labels, staleAt, kpi.Missing)
		row.Status = statusView(row.status)
		row.Value = "No value"
		return row
	}
	last := pts[len(pts)-1]
	row.Value = formatValue(k, last.Value)
	row.Period = last.Period.In(loc).Format("2 Jan 2006")
	if !last.CollectedAt.IsZero() {
		row.Collected = last.CollectedAt.In(loc).Format("2 Jan 2006 15:04")
	}
	row.Threshold = thresholdWords(k, k.ThresholdsAt(h.Labels, last.Period))
	row.status = statusOf(k, h.Labels, last.Period, last.Value)
	row.Status = statusView(row.status)
	if k.MaxAge > 0 && staleAt.Sub(last.Period) > k.MaxAge {
		row.Stale = true
		row.staleReason = fmt.Sprintf("the latest value describes %s; values stay fresh for %s", row.Period, ageWords(k.MaxAge))
	}
	lastMonth := monthStart(last.Period, loc)
	if len(pts) > 1 {
		prev := pts[len(pts)-2]
		row.Previous = travel(k, last.Value, prev, loc)
		row.prevStatus = statusOf(k, h.Labels, prev.Period, prev.Value)
		row.prevWhen = prev.Period.In(loc).Format("Jan 2006")
	} else {
		row.Previous = Travel{Class: "none", Text: "No earlier value"}
	}
	row.LastYear = Travel{Class: "none", Text: "No value a year before"}
	yearAgo := lastMonth.AddDate(-1, 0, 0)
	for _, p := range pts[:len(pts)-1] {
		if monthStart(p.Period, loc).Equal(yearAgo) {
			row.LastYear = travel(k, last.Value, p, loc)
		}
	}
	row.Sparkline = sparkline(k, h.Labels, pts, loc, row.Series)
	return row
}

// statusOf is the status of v, the value of the series with labels for the
// period that starts at period, against the thresholds in force then.
func statusOf(k *kpi.KPI, labels []string, period time.Time, v kpi.Value) kpi.Status {
	st, _ := k.Evaluate(labels, period, v)
	return st
}

func travel(k *kpi.KPI, now kpi.Value, then kpi.Point, loc *time.Location) Travel {
	when := then.Period.In(loc).Format("Jan 2006")
	if !then.Value.Valid {
		return Travel{Class: "none", Text: "No value for " + when}
	}
	if !now.Valid {
		return Travel{Class: "none", Text: formatValue(k, then.Value) + " in " + when}
	}
	was := formatValue(k, then.Value)
	if was == formatValue(k, now) {
		return Travel{Class: "same", Text: "No change from " + was + " in " + when}
	}
	up := now.V > then.Value.V
	better := up == (k.Direction == kpi.HigherIsBetter)
	t := Travel{Class: "worse", Text: "Worse"}
	if better {
		t = Travel{Class: "better", Text: "Better"}
	}
	arrow, verb := "↓", "down"
	if up {
		arrow, verb = "↑", "up"
	}
	t.Text = fmt.Sprintf("%s %s: %s from %s in %s", arrow, t.Text, verb, was, when)
	return t
}

func statusView(s kpi.Status) StatusView {
	switch s {
	case kpi.StatusRed:
		return StatusView{Word: "Red", Class: "red", Shape: shapeRed}
	case kpi.StatusAmber:
		return StatusView{Word: "Amber", Class: "amber", Shape: shapeAmber}
	case kpi.StatusGreen:
		return StatusView{Word: "Green", Class: "green", Shape: shapeGreen}
	case kpi.StatusUnknown:
		return StatusView{Word: "Unknown", Class: "unknown", Shape: shapeUnknown}
	}
	return StatusView{Word: "Not rated", Class: "none", Shape: shapeNone}
}

// seriesComment is the comment narrowed to the series with labels, if any.
func seriesComment(k *kpi.KPI, labels []string, cs []kpi.Comment) string {
	text, best := "", 0
	for _, c := range cs {
		if c.KPI == k.Name && len(c.Labels) > best && k.Matches(c.Labels, labels) {
			text, best = c.Text, len(c.Labels)
		}
	}
	return text
}

// seriesNames names each series by the values of the labels that tell
// them apart; a lone series, by the labels the item does not fix.
func seriesNames(k *kpi.KPI, hs []kpi.SeriesHistory, match map[string]string) []string {
	if len(hs) == 0 {
		return nil
	}
	var free []int
	for i, l := range k.Labels {
		if _, fixed := match[l]; !fixed {
			free = append(free, i)
		}
	}
	var varying []int
	for _, i := range free {
		for _, h := range hs[1:] {
			if h.Labels[i] != hs[0].Labels[i] {
				varying = append(varying, i)
				break
			}
		}
	}
	if len(varying) > 0 {
		free = varying
	}
	names := make([]string, len(hs))
	for j, h := range hs {
		parts := make([]string, 0, len(free))
		for _, i := range free {
			parts = append(parts, h.Labels[i])
		}
		names[j] = cmp.Or(strings.Join(parts, ", "), "All")
	}
	return names
}

func benchmark(cat kpi.Catalogue, k *kpi.KPI, it Item, byKPI map[string][]kpi.SeriesHistory, loc *time.Location) *BenchmarkView {
	b := it.Benchmark
	bk := cat[cmp.Or(b.KPI, k.Name)]
	if bk == nil {
		return nil
	}
	scopeAt := bk.LabelIndex(cmp.Or(b.ScopeLabel, DefaultScopeLabel))
	nameAt := -1
	if b.NameLabel != "" {
		nameAt = bk.LabelIndex(b.NameLabel)
	}
	if scopeAt < 0 {
		return nil
	}
	// The benchmark's period is the latest month England or the council
	// has a value for; every figure is read for that month.
	var period time.Time
	for _, h := range byKPI[bk.Name] {
		if s := h.Labels[scopeAt]; (s == ScopeEngland || s == ScopeCouncil) && len(h.Points) > 0 {
			if p := h.Points[len(h.Points)-1].Period; p.After(period) {
				period = p
			}
		}
	}
	if period.IsZero() {
		return nil
	}
	m := monthStart(period, loc)
	at := func(h kpi.SeriesHistory) kpi.Value {
		for _, p := range h.Points {
			if monthStart(p.Period, loc).Equal(m) {
				return p.Value
			}
		}
		return kpi.Missing
	}
	v := &BenchmarkView{Period: period.In(loc).Format("2 Jan 2006")}
	var council kpi.Value
	var neighbours []float64
	for _, h := range byKPI[bk.Name] {
		val := at(h)
		switch h.Labels[scopeAt] {
		case ScopeCouncil:
			council = val
		case ScopeNeighbour:
			if val.Valid {
				neighbours = append(neighbours, val.V)
			}
		case ScopeEngland:
			v.England = formatValue(bk, val)
		case ScopeRegion:
			v.Region = formatValue(bk, val)
			if nameAt >= 0 {
				v.RegionName = h.Labels[nameAt]
			}
		}
	}
	if len(neighbours) > 0 {
		var sum float64
		for _, x := range neighbours {
			sum += x
		}
		v.NeighbourN = len(neighbours)
		v.Neighbours = formatValue(bk, kpi.Known(sum/float64(len(neighbours))))
	}
	if council.Valid {
		v.Council = formatValue(bk, council)
		if len(neighbours) > 0 {
			rank := 1
			for _, x := range neighbours {
				if x != council.V && (x < council.V) == (bk.Direction == kpi.LowerIsBetter) {
					rank++
				}
			}
			best := "lowest"
			if bk.Direction == kpi.HigherIsBetter {
				best = "highest"
			}
			v.Rank = fmt.Sprintf("%s of %d (1st is the %s)", ordinal(rank), len(neighbours)+1, best)
		}
	}
	return v
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s", n, suffix)
}

// anchor makes a unique id for an element of the page.
func anchor(seen map[string]int, name string) string {
	seen[name]++
	if n := seen[name]; n > 1 {
		return fmt.Sprintf("kpi-%s-%d", name, n)
	}
	return "kpi-" + name
}

// titleOf is a short title for k from its help: the text before the first
// bracket, dash or full stop.
func titleOf(k *kpi.KPI) string {
	t := k.Help
	for _, sep := range []string{" (", " - ", ". ", " – "} {
		if i := strings.Index(t, sep); i > 0 {
			t = t[:i]
		}
	}
	t = strings.TrimSuffix(strings.TrimSpace(t), ".")
	if t == "" {
		return k.Name
	}
	return t
}

func directionWords(k *kpi.KPI) string {
	if k.Direction == kpi.HigherIsBetter {
		return "Higher is better"
	}
	return "Lower is better"
}

func thresholdWords(k *kpi.KPI, t kpi.Thresholds) string {
	if !t.Any() {
		return "No threshold"
	}
	side := "above"
	if k.Direction == kpi.HigherIsBetter {
		side = "below"
	}
	var parts []string
	if t.Amber.Set {
		parts = append(parts, fmt.Sprintf("Amber %s %s", side, formatValue(k, kpi.Known(t.Amber.Value))))
	}
	if t.Red.Set {
		word := "Red"
		if t.Amber.Set {
			word = "red"
		}
		parts = append(parts, fmt.Sprintf("%s %s %s", word, side, formatValue(k, kpi.Known(t.Red.Value))))
	}
	return strings.Join(parts, ", ")
}

func ageWords(d time.Duration) string {
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return fmt.Sprintf("%g hours", math.Round(d.Hours()*10)/10)
}
