package report

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
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

// sparkline draws a series' monthly values with the amber and red
// thresholds in force for each period (a step where a trajectory moves
// them) as an inline SVG image whose text alternative says what it shows
// in words.
func sparkline(k *kpi.KPI, labels []string, pts []kpi.Point, loc *time.Location, series string) template.HTML {
	lo, hi := math.Inf(1), math.Inf(-1)
	var valid []kpi.Point
	for _, p := range pts {
		if p.Value.Valid {
			valid = append(valid, p)
			lo, hi = math.Min(lo, p.Value.V), math.Max(hi, p.Value.V)
		}
	}
	ths := make([]kpi.Thresholds, len(pts))
	for i, p := range pts {
		ths[i] = k.ThresholdsAt(labels, p.Period)
	}
	now := ths[len(ths)-1]
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
		if now.Amber.Set {
			fmt.Fprintf(&alt, "; amber threshold %s", formatValue(k, kpi.Known(now.Amber.Value)))
		}
		if now.Red.Set {
			fmt.Fprintf(&alt, "; red threshold %s", formatValue(k, kpi.Known(now.Red.Value)))
		}
		alt.WriteString(".")
	}
	if len(valid) == 0 {
		lo, hi = 0, 1
	} else {
		for _, t := range ths {
			for _, b := range []kpi.Threshold{t.Amber, t.Red} {
				if b.Set {
					lo, hi = math.Min(lo, b.Value), math.Max(hi, b.Value)
				}
			}
		}
	}
	if hi-lo < 1e-9 {
		lo, hi = lo-1, hi+1
	}
	n := len(pts)
	step := (sparkW - 2*sparkPad) / float64(Months-1)
	x := func(i int) float64 {
		if n == 1 {
			return sparkW / 2
		}
		// The latest period sits at the right edge whatever the history's length.
		return sparkW - sparkPad - float64(n-1-i)*step
	}
	y := func(v float64) float64 { return sparkPad + (hi-v)/(hi-lo)*(sparkH-2*sparkPad) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" width="%g" height="%g" viewBox="0 0 %g %g" role="img" aria-label="%s"><title>%s</title>`,
		sparkW, sparkH, sparkW, sparkH, template.HTMLEscapeString(alt.String()), template.HTMLEscapeString(alt.String()))
	if len(valid) > 0 {
		for _, level := range []struct {
			of    func(kpi.Thresholds) kpi.Threshold
			style string
		}{
			{func(t kpi.Thresholds) kpi.Threshold { return t.Amber }, `stroke="#b35c00" stroke-width="1" stroke-dasharray="4 3"`},
			{func(t kpi.Thresholds) kpi.Threshold { return t.Red }, `stroke="#d4351c" stroke-width="1.5"`},
		} {
			if d := thresholdPath(ths, level.of, x, y, n); d != "" {
				fmt.Fprintf(&b, `<path d="%s" fill="none" %s/>`, d, level.style)
			}
		}
	}
	// A missing month breaks the line rather than joining across it.
	path := make([]byte, 0, 16*n)
	pen := false
	for i, p := range pts {
		if !p.Value.Valid {
			pen = false
			continue
		}
		if pen {
			path = append(path, " L"...)
		} else {
			if len(path) > 0 {
				path = append(path, ' ')
			}
			path = append(path, 'M')
		}
		path = appendPoint(path, x(i), y(p.Value.V))
		pen = true
	}
	if len(path) > 0 {
		b.WriteString(`<path d="`)
		b.Write(path)
		b.WriteString(`" fill="none" stroke="#0b0c0c" stroke-width="1.5" stroke-linejoin="round"/>`)
	}
	if lp := pts[n-1]; lp.Value.Valid {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="#0b0c0c"/>`, x(n-1), y(lp.Value.V))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// appendPoint appends "x y" to one decimal place.
func appendPoint(buf []byte, x, y float64) []byte {
	buf = strconv.AppendFloat(buf, math.Round(x*10)/10, 'f', -1, 64)
	buf = append(buf, ' ')
	return strconv.AppendFloat(buf, math.Round(y*10)/10, 'f', -1, 64)
}

// thresholdPath draws one threshold across the sparkline, stepping at the
// period from which it moved; it leaves a gap where none is set.
func thresholdPath(ths []kpi.Thresholds, of func(kpi.Thresholds) kpi.Threshold, x func(int) float64, y func(float64) float64, n int) string {
	d := make([]byte, 0, 24)
	pen := false
	last := math.NaN()
	for i := range ths {
		t := of(ths[i])
		if !t.Set {
			pen = false
			continue
		}
		left, right := x(i)-(x(1)-x(0))/2, x(i)+(x(1)-x(0))/2
		if n == 1 || i == 0 {
			left = 0
		}
		if n == 1 || i == n-1 {
			right = sparkW
		}
		switch {
		case !pen:
			if len(d) > 0 {
				d = append(d, ' ')
			}
			d = append(d, 'M')
			d = appendPoint(d, left, y(t.Value))
		case t.Value != last:
			d = append(d, " V"...)
			d = strconv.AppendFloat(d, math.Round(y(t.Value)*10)/10, 'f', -1, 64)
		}
		last, pen = t.Value, true
		// Consecutive periods at the same value make one straight line.
		if i+1 < n && of(ths[i+1]).Set && of(ths[i+1]).Value == t.Value {
			continue
		}
		d = append(d, " H"...)
		d = strconv.AppendFloat(d, math.Round(right*10)/10, 'f', -1, 64)
	}
	return string(d)
}
