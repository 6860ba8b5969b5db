package demo_test

import (
	"testing"
	"time"

	"github.com/carewatch/carewatch/demo"
)

func date(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestBankHolidays(t *testing.T) {
	holidays := map[string]string{}
	for y := demo.FirstHolidayYear; y <= demo.LastHolidayYear; y++ {
		for _, h := range demo.BankHolidays(y) {
			holidays[h.Date.Format(time.DateOnly)] = h.Name
		}
	}
	for _, tc := range []struct {
		day     string
		holiday bool
		why     string
	}{
		{"2025-01-01", true, "New Year's Day on a Wednesday"},
		{"2022-01-03", true, "New Year's Day on a Saturday moves to Monday 3 January"},
		{"2022-01-01", false, "the Saturday itself is not the bank holiday"},
		{"2017-01-02", true, "New Year's Day on a Sunday moves to Monday 2 January"},
		{"2025-04-18", true, "Good Friday 2025"},
		{"2025-04-21", true, "Easter Monday 2025"},
		{"2024-03-29", true, "Good Friday 2024"},
		{"2019-04-19", true, "Good Friday 2019"},
		{"2016-03-25", true, "Good Friday 2016"},
		{"2038-04-23", false, "outside the covered years"},
		{"2020-05-08", true, "early May moved to VE day in 2020"},
		{"2020-05-04", false, "first Monday of May 2020 was not a holiday"},
		{"2023-05-01", true, "early May 2023"},
		{"2023-05-08", true, "coronation of King Charles III"},
		{"2022-06-02", true, "spring bank holiday moved for the Platinum Jubilee"},
		{"2022-06-03", true, "Platinum Jubilee bank holiday"},
		{"2022-05-30", false, "last Monday of May 2022 was not a holiday"},
		{"2025-05-26", true, "spring bank holiday 2025"},
		{"2025-08-25", true, "summer bank holiday 2025"},
		{"2022-09-19", true, "state funeral of Queen Elizabeth II"},
		{"2021-12-27", true, "Christmas on a Saturday: substitute Monday"},
		{"2021-12-28", true, "Boxing Day on a Sunday: substitute Tuesday"},
		{"2022-12-26", true, "Boxing Day on a Monday"},
		{"2022-12-27", true, "Christmas on a Sunday: substitute Tuesday"},
		{"2026-12-28", true, "Boxing Day on a Saturday: substitute Monday"},
		{"2020-12-28", true, "Boxing Day 2020 on a Saturday: substitute Monday"},
		{"2025-12-25", true, "Christmas Day on a Thursday"},
		{"2025-12-26", true, "Boxing Day on a Friday"},
		{"2035-03-23", true, "Good Friday 2035"},
		{"2025-06-02", false, "an ordinary Monday"},
	} {
		name := tc.day + " is not a bank holiday: " + tc.why
		if tc.holiday {
			name = tc.day + " is a bank holiday: " + tc.why
		}
		t.Run(name, func(t *testing.T) {
			if _, got := holidays[tc.day]; got != tc.holiday {
				t.Errorf("bank holiday = %v, want %v", got, tc.holiday)
			}
		})
	}
	t.Run("every year has eight regular bank holidays, on weekdays", func(t *testing.T) {
		extra := map[int]int{2020: 0, 2022: 2, 2023: 1}
		for y := demo.FirstHolidayYear; y <= demo.LastHolidayYear; y++ {
			hs := demo.BankHolidays(y)
			if want := 8 + extra[y]; len(hs) != want {
				t.Errorf("%d has %d bank holidays, want %d", y, len(hs), want)
			}
			for _, h := range hs {
				if wd := h.Date.Weekday(); wd == time.Saturday || wd == time.Sunday {
					t.Errorf("%s (%s) is on a %s", h.Date.Format(time.DateOnly), h.Name, wd)
				}
			}
		}
	})
}

func TestWorkingDaysBetween(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to string
		want     int
	}{
		{"the referral day itself does not count", "2025-06-02", "2025-06-02", 0},
		{"the next weekday counts as one", "2025-06-02", "2025-06-03", 1},
		{"a weekend does not count", "2025-06-06", "2025-06-09", 1},
		{"Easter 2025 (Good Friday and Easter Monday) does not count", "2025-04-17", "2025-04-22", 1},
		{"Christmas 2021 substitutes do not count", "2021-12-24", "2021-12-29", 1},
		{"a full ordinary week counts five", "2025-06-01", "2025-06-08", 5},
		{"nine weeks without holidays are 45 working days", "2025-09-01", "2025-11-03", 45},
		{"backwards is zero", "2025-06-09", "2025-06-02", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := demo.WorkingDaysBetween(date(tc.from), date(tc.to)); got != tc.want {
				t.Errorf("WorkingDaysBetween(%s, %s) = %d, want %d", tc.from, tc.to, got, tc.want)
			}
		})
	}
}
