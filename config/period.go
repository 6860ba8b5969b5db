package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PeriodSpec is a parsed period_format with its period_day: how to read a
// period cell such as "2025" (a reporting year) or "Mar 2025" (a month), and
// which day it describes.
type PeriodSpec struct {
	// Format is the period_format as written.
	Format string
	// Layout is Format as a Go time layout.
	Layout string
	// HasMonth and HasDay say what the format writes.
	HasMonth, HasDay bool
	// Month and Day are the day a period without them describes; Day is 0
	// with EndOfMonth, the last day of the month.
	Month      time.Month
	Day        int
	EndOfMonth bool
}

// periodTokens are the period_format tokens, longest first, with their Go layout.
var periodTokens = []struct{ token, layout string }{
	{"YYYY", "2006"}, {"YY", "06"}, {"MMMM", "January"}, {"MMM", "Jan"}, {"MM", "01"}, {"DD", "02"},
}

// ParsePeriod reads a period_format (YYYY, YYYY-MM, MMM YYYY, DD/MM/YYYY...)
// and a period_day: MM-DD for a year format (09-30), which it requires; DD
// or "end" for a month format, the first day if empty. A format must write
// the year.
func ParsePeriod(format, day string) (*PeriodSpec, error) {
	p := &PeriodSpec{Format: format, Month: time.January, Day: 1}
	var b strings.Builder
	hasYear := false
	for i := 0; i < len(format); {
		matched := false
		for _, t := range periodTokens {
			if strings.HasPrefix(format[i:], t.token) {
				b.WriteString(t.layout)
				i += len(t.token)
				matched = true
				switch t.token[0] {
				case 'Y':
					hasYear = true
				case 'M':
					p.HasMonth = true
				case 'D':
					p.HasDay = true
				}
				break
			}
		}
		if matched {
			continue
		}
		c := format[i]
		if !strings.ContainsRune(" /-.,:_", rune(c)) {
			return nil, fmt.Errorf("period_format %q: %q is not a token (YYYY, YY, MMMM, MMM, MM, DD) or a separator (space / - . , : _)", format, c)
		}
		b.WriteByte(c)
		i++
	}
	if !hasYear {
		return nil, fmt.Errorf("period_format %q must write the year (YYYY or YY)", format)
	}
	if p.HasDay && !p.HasMonth {
		return nil, fmt.Errorf("period_format %q writes a day but no month", format)
	}
	p.Layout = b.String()
	day = strings.TrimSpace(day)
	switch {
	case day == "" && !p.HasMonth:
		// A reporting year may end on 31 March or describe a census on 30
		// September: 1 January is rarely meant, so it must be said.
		return nil, fmt.Errorf("period_day is required with period_format %q: the day the year describes, as MM-DD (09-30 for DfE's workforce census, 03-31 for a financial year's end, 01-01 for 1 January)", format)
	case day == "":
	case p.HasDay:
		return nil, fmt.Errorf("period_day %q is not needed: period_format %q writes the day", day, format)
	case p.HasMonth:
		if day == "end" {
			p.Day, p.EndOfMonth = 0, true
			break
		}
		d, err := strconv.Atoi(day)
		if err != nil || d < 1 || d > 31 {
			return nil, fmt.Errorf("period_day %q: a month's period_day is a day from 1 to 31 (the last day of a shorter month) or \"end\"", day)
		}
		p.Day = d
	default:
		m, d, ok := strings.Cut(day, "-")
		mm, err1 := strconv.Atoi(m)
		dd, err2 := strconv.Atoi(d)
		if !ok || err1 != nil || err2 != nil || mm < 1 || mm > 12 || dd < 1 {
			return nil, fmt.Errorf("period_day %q: a year's period_day is MM-DD, e.g. 09-30 for 30 September", day)
		}
		// 2001 is not a leap year: 02-29 is refused rather than moved.
		if t := time.Date(2001, time.Month(mm), dd, 0, 0, 0, 0, time.UTC); t.Day() != dd {
			return nil, fmt.Errorf("period_day %q: %s has no day %d", day, time.Month(mm), dd)
		}
		p.Month, p.Day = time.Month(mm), dd
	}
	return p, nil
}

// Read reads a period cell's text written in p's format, as the day it
// describes at midnight in loc.
func (p *PeriodSpec) Read(s string, loc *time.Location) (time.Time, error) {
	t, err := time.ParseInLocation(p.Layout, strings.TrimSpace(s), loc)
	if err != nil {
		return time.Time{}, errors.New("not in the form " + p.Format)
	}
	y, m, d := t.Date()
	if !p.HasMonth {
		m, d = p.Month, p.Day
	} else if !p.HasDay {
		last := time.Date(y, m+1, 0, 0, 0, 0, 0, loc).Day()
		d = min(p.Day, last)
		if p.EndOfMonth {
			d = last
		}
	}
	return time.Date(y, m, d, 0, 0, 0, 0, loc), nil
}
