package demo

import (
	"sort"
	"time"
)

// The demo's calendar of England and Wales bank holidays covers these years;
// ref.bank_holiday holds the same days. Working days outside them are
// counted as weekdays only.
const (
	FirstHolidayYear = 2015
	LastHolidayYear  = 2035
)

// Holiday is one England and Wales bank holiday.
type Holiday struct {
	// Date is midnight UTC of the day.
	Date time.Time
	Name string
}

// BankHolidays returns the England and Wales bank holidays of year in date
// order: the regular ones by rule (with weekend substitutes), plus the
// one-off days proclaimed between FirstHolidayYear and LastHolidayYear.
// Proclamations not yet made for future years are, of course, not known.
func BankHolidays(year int) []Holiday {
	var hs []Holiday
	add := func(d time.Time, name string) { hs = append(hs, Holiday{Date: d, Name: name}) }
	date := func(m time.Month, d int) time.Time { return time.Date(year, m, d, 0, 0, 0, 0, time.UTC) }

	// New Year's Day; on a weekend the next Monday is the bank holiday.
	switch ny := date(time.January, 1); ny.Weekday() {
	case time.Saturday:
		add(ny.AddDate(0, 0, 2), "New Year’s Day (substitute day)")
	case time.Sunday:
		add(ny.AddDate(0, 0, 1), "New Year’s Day (substitute day)")
	default:
		add(ny, "New Year’s Day")
	}

	easter := easterSunday(year)
	add(easter.AddDate(0, 0, -2), "Good Friday")
	add(easter.AddDate(0, 0, 1), "Easter Monday")

	// Early May: the first Monday of May, moved to Friday 8 May in 2020 for
	// the 75th anniversary of VE day.
	if year == 2020 {
		add(date(time.May, 8), "Early May bank holiday (VE day)")
	} else {
		add(firstMonday(year, time.May), "Early May bank holiday")
	}
	if year == 2023 {
		add(date(time.May, 8), "Bank holiday for the coronation of King Charles III")
	}

	// Spring: the last Monday of May, moved for jubilees (2 and 3 June 2022,
	// as in 2012 and 2002).
	if year == 2022 {
		add(date(time.June, 2), "Spring bank holiday")
		add(date(time.June, 3), "Platinum Jubilee bank holiday")
	} else {
		add(lastMonday(year, time.May), "Spring bank holiday")
	}

	add(lastMonday(year, time.August), "Summer bank holiday")

	if year == 2022 {
		add(date(time.September, 19), "Bank Holiday for the State Funeral of Queen Elizabeth II")
	}

	// Christmas and Boxing Day; a day falling on a weekend moves to the next
	// weekday not already a holiday.
	switch xmas := date(time.December, 25); xmas.Weekday() {
	case time.Friday:
		add(xmas, "Christmas Day")
		add(date(time.December, 28), "Boxing Day (substitute day)")
	case time.Saturday:
		add(date(time.December, 27), "Christmas Day (substitute day)")
		add(date(time.December, 28), "Boxing Day (substitute day)")
	case time.Sunday:
		add(date(time.December, 26), "Boxing Day")
		add(date(time.December, 27), "Christmas Day (substitute day)")
	default:
		add(xmas, "Christmas Day")
		add(date(time.December, 26), "Boxing Day")
	}

	sort.Slice(hs, func(i, j int) bool { return hs[i].Date.Before(hs[j].Date) })
	return hs
}

// easterSunday is the Gregorian Easter Sunday of year (the anonymous
// Gregorian algorithm, as in Meeus).
func easterSunday(year int) time.Time {
	a := year % 19
	b, c := year/100, year%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	month := (h + l - 7*m + 114) / 31
	dayOfMonth := (h+l-7*m+114)%31 + 1
	return time.Date(year, time.Month(month), dayOfMonth, 0, 0, 0, 0, time.UTC)
}

func firstMonday(year int, m time.Month) time.Time {
	d := time.Date(year, m, 1, 0, 0, 0, 0, time.UTC)
	return d.AddDate(0, 0, (int(time.Monday)-int(d.Weekday())+7)%7)
}

func lastMonday(year int, m time.Month) time.Time {
	d := time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC) // last day of m
	return d.AddDate(0, 0, -((int(d.Weekday()) - int(time.Monday) + 7) % 7))
}

// day is a calendar date as a count of days since 1970-01-01: cheap to add,
// compare and hash, which the simulation does millions of times.
type day int32

func dayOf(t time.Time) day {
	y, m, d := t.Date()
	return day(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

func (d day) time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

func (d day) String() string { return d.time().Format(time.DateOnly) }

// weekday is correct for days after 1970-01-01, a Thursday.
func (d day) weekday() time.Weekday { return time.Weekday((int(d) + 4) % 7) }

// calendar knows the working days: weekdays that are not bank holidays.
type calendar struct {
	holidays map[day]string
}

func newCalendar() *calendar {
	c := &calendar{holidays: make(map[day]string, 8*(LastHolidayYear-FirstHolidayYear+1))}
	for y := FirstHolidayYear; y <= LastHolidayYear; y++ {
		for _, h := range BankHolidays(y) {
			c.holidays[dayOf(h.Date)] = h.Name
		}
	}
	return c
}

func (c *calendar) working(d day) bool {
	if wd := d.weekday(); wd == time.Saturday || wd == time.Sunday {
		return false
	}
	_, holiday := c.holidays[d]
	return !holiday
}

// between counts the working days after from, up to and including to: the
// way statutory timescales count from a referral.
func (c *calendar) between(from, to day) int {
	n := 0
	for d := from + 1; d <= to; d++ {
		if c.working(d) {
			n++
		}
	}
	return n
}

// addWorking returns the n-th working day after from (from itself when n is 0).
func (c *calendar) addWorking(from day, n int) day {
	d := from
	for n > 0 {
		d++
		if c.working(d) {
			n--
		}
	}
	return d
}

// onOrAfter returns d if it is a working day, else the next working day.
func (c *calendar) onOrAfter(d day) day {
	for !c.working(d) {
		d++
	}
	return d
}

// WorkingDaysBetween counts the England and Wales working days (weekdays
// that are not bank holidays) after from, up to and including to: the count
// behind "within 45 working days of referral". Only the calendar dates of
// from and to matter.
func WorkingDaysBetween(from, to time.Time) int {
	return newCalendar().between(dayOf(from), dayOf(to))
}
