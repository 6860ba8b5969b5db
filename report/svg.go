package report

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/carewatch/carewatch/kpi"
)

// The status shapes: a circle for green, a triangle for amber, a square for
// red, a hollow circle for unknown. They repeat the status word beside them,
// so they are hidden from assistive technology.
const (
	shapeGreen   template.HTML = `<svg class="shape" width="14" height="14" viewBox="0 0 14 14" aria-hidden="true" focusable="false"><circle cx="7" cy="7" r="6" fill="#00703c"/></svg>`
	shapeAmber   template.HTML = `<svg class="shape" width="14" height="14" viewBox="0 0 14 14" aria-hidden="true" focusable="false"><path d="M7 1 L13.5 13 H0.5 Z" fill="#b35c00"/></svg>`
	shapeRed     template.HTML = `<svg class="shape" width="14" height="14" viewBox="0 0 14 14" aria-hidden="true" focusable="false"><rect x="1" y="1" width="12" height="12" fill="#d4351c"/></svg>`
	shapeUnknown template.HTML = `<svg class="shape" width="14" height="14" viewBox="0 0 14 14" aria-hidden="true" focusable="false"><circle cx="7" cy="7" r="5.5" fill="none" stroke="#505a5f" stroke-width="2" stroke-dasharray="3 2"/></svg>`
	shapeNone    template.HTML = `<svg class="shape" width="14" height="14" viewBox="0 0 14 14" aria-hidden="true" focusable="false"><rect x="1" y="6" width="12" height="2" fill="#505a5f"/></svg>`
)

// Sparkline geometry, in pixels.
const (
	sparkW   = 150.0
	sparkH   = 40.0
	sparkPad = 4.0
)

// sparkline draws a series' monthly values with its amber and red
// thresholds as an inline SVG image whose text alternative says what it
// shows in words.
func sparkline(k *kpi.KPI, th kpi.Thresholds, pts []kpi.Point, loc *time.Location, series string) template.HTML {
	lo, hi := math.Inf(1), math.Inf(-1)
	var valid []kpi.Point
	for _, p := range pts {
		if p.Value.Valid {
			valid = append(valid, p)
			lo, hi = math.Min(lo, p.Value.V), math.Max(hi, p.Value.V)
		}
	}
	first := pts[0].Period.In(loc).Format("Jan 2006")
	last := pts[len(pts)-1].Period.In(loc).Format("Jan 2006")
	var alt strings.Builder
	fmt.Fprintf(&alt, "%s, %s: ", titleOf(k), series)
	if len(valid) == 0 {
		fmt.Fprintf(&alt, "no values from %s to %s.", first, last)
	} else {
		fmt.Fprintf(&alt, "%d values from %s to %s", len(pts), first, last)
		fmt.Fprintf(&alt, "; first %s, lowest %s, highest %s, latest %s",
			formatValue(k, valid[0].Value), formatValue(k, kpi.Known(lo)), formatValue(k, kpi.Known(hi)), formatValue(k, valid[len(valid)-1].Value))
		if th.Amber.Set {
			fmt.Fprintf(&alt, "; amber threshold %s", formatValue(k, kpi.Known(th.Amber.Value)))
		}
		if th.Red.Set {
			fmt.Fprintf(&alt, "; red threshold %s", formatValue(k, kpi.Known(th.Red.Value)))
		}
		alt.WriteString(".")
	}
	for _, t := range []kpi.Threshold{th.Amber, th.Red} {
		if t.Set && len(valid) > 0 {
			lo, hi = math.Min(lo, t.Value), math.Max(hi, t.Value)
		}
	}
	if len(valid) == 0 {
		lo, hi = 0, 1
	}
	if hi-lo < 1e-9 {
		lo, hi = lo-1, hi+1
	}
	n := len(pts)
	x := func(i int) float64 {
		if n == 1 {
			return sparkW / 2
		}
		return sparkPad + float64(i)*(sparkW-2*sparkPad)/float64(Months-1) + float64(Months-n)*(sparkW-2*sparkPad)/float64(Months-1)
	}
	y := func(v float64) float64 { return sparkPad + (hi-v)/(hi-lo)*(sparkH-2*sparkPad) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" width="%g" height="%g" viewBox="0 0 %g %g" role="img" aria-label="%s"><title>%s</title>`,
		sparkW, sparkH, sparkW, sparkH, template.HTMLEscapeString(alt.String()), template.HTMLEscapeString(alt.String()))
	if th.Amber.Set && len(valid) > 0 {
		fmt.Fprintf(&b, `<line x1="0" x2="%g" y1="%.1f" y2="%.1f" stroke="#b35c00" stroke-width="1" stroke-dasharray="4 3"/>`, sparkW, y(th.Amber.Value), y(th.Amber.Value))
	}
	if th.Red.Set && len(valid) > 0 {
		fmt.Fprintf(&b, `<line x1="0" x2="%g" y1="%.1f" y2="%.1f" stroke="#d4351c" stroke-width="1.5"/>`, sparkW, y(th.Red.Value), y(th.Red.Value))
	}
	// A missing month breaks the line rather than joining across it.
	var path strings.Builder
	pen := false
	for i, p := range pts {
		if !p.Value.Valid {
			pen = false
			continue
		}
		cmd := "L"
		if !pen {
			cmd = "M"
		}
		fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, x(i), y(p.Value.V))
		pen = true
	}
	if path.Len() > 0 {
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="#0b0c0c" stroke-width="1.5" stroke-linejoin="round"/>`, strings.TrimSpace(path.String()))
	}
	if lp := pts[n-1]; lp.Value.Valid {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="#0b0c0c"/>`, x(n-1), y(lp.Value.V))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
