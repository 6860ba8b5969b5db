package report

import (
	"math"
	"strconv"
	"strings"

	"github.com/carewatch/carewatch/kpi"
)

// formatValue writes v in k's unit as people read it: ratios as percentages,
// durations in days, counts of people as whole numbers with thousands
// separators, other numbers to one decimal place with their unit.
func formatValue(k *kpi.KPI, v kpi.Value) string {
	if !v.Valid {
		return "Missing"
	}
	switch k.Unit {
	case "ratio":
		return decimal(v.V*100, 1) + "%"
	case "seconds":
		days := v.V / 86400
		if math.Abs(days) < 10 {
			return decimal(days, 1) + " days"
		}
		return decimal(days, 0) + " days"
	case "people", "count", "children", "cases_count", "referrals":
		return decimal(v.V, 0) + " " + k.Unit
	case "":
		return decimal(v.V, 1)
	}
	return decimal(v.V, 1) + " " + strings.ReplaceAll(k.Unit, "_", " ")
}

// decimal formats x with places decimals and thousands separators.
func decimal(x float64, places int) string {
	s := strconv.FormatFloat(x, 'f', places, 64)
	if s == "-0" || strings.HasPrefix(s, "-0.") && strings.Trim(s[3:], "0") == "" {
		s = s[1:]
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}
