package collector_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/collector"
	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// catalogue is a small synthetic catalogue for the tests.
func catalogue() kpi.Catalogue {
	return kpi.Catalogue{
		"children_sw_caseload_average": {
			Name:      "children_sw_caseload_average",
			Help:      "Average caseload per case-holding FTE social worker.",
			Unit:      "cases",
			Direction: kpi.LowerIsBetter,
			Labels:    []string{"service", "team"},
		},
		"children_sw_vacancy_ratio": {
			Name:      "children_sw_vacancy_ratio",
			Help:      "Vacant FTE posts as a share of all FTE posts.",
			Unit:      "ratio",
			Direction: kpi.LowerIsBetter,
			Labels:    []string{"authority", "service"},
		},
	}
}

func london(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatalf("load Europe/London: %v", err)
	}
	return loc
}

// caseloadCollector maps service, team and caseload columns to the caseload KPI.
func caseloadCollector() *config.CollectorConfig {
	return &config.CollectorConfig{
		Name: "caseload",
		Metrics: []config.MetricMapping{{
			KPI:         "children_sw_caseload_average",
			ValueColumn: "caseload",
			Labels:      map[string]string{"service": "service", "team": "team"},
		}},
	}
}

// mustMapper starts a run of cc's mapping over rows with the given columns.
func mustMapper(t *testing.T, cc *config.CollectorConfig, maxSeries int, columns ...string) *collector.MapRun {
	t.Helper()
	m, err := collector.NewMapper(cc, catalogue(), maxSeries)
	if err != nil {
		t.Fatalf("NewMapper: %v", err)
	}
	r := m.NewRun()
	if err := r.Bind("", columns); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	return r
}

// row names the n-th row of a query's result, as a SQL source does.
func row(n int) string { return "row " + strconv.Itoa(n) }

func runAt(t *testing.T, at string) kpi.RunInfo {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, at)
	if err != nil {
		t.Fatal(err)
	}
	return kpi.RunInfo{Collector: "caseload", At: ts, Location: london(t)}
}

func TestMapValues(t *testing.T) {
	tests := []struct {
		name  string
		value any
		want  kpi.Value
	}{
		{"NULL is missing, not zero", nil, kpi.Missing},
		{"NUMERIC as bytes is its decimal", []byte("12.50"), kpi.Known(12.5)},
		{"negative NUMERIC as bytes is its decimal", []byte("-0.25"), kpi.Known(-0.25)},
		{"decimal text is its number", " 17.4 ", kpi.Known(17.4)},
		{"int64 is its number", int64(14), kpi.Known(14)},
		{"int32 is its number", int32(15), kpi.Known(15)},
		{"float32 is its number", float32(0.5), kpi.Known(0.5)},
		{"float64 is its number", 16.25, kpi.Known(16.25)},
		{"zero stays zero", int64(0), kpi.Known(0)},
		{"an empty cell is missing", "", kpi.Missing},
		{"suppression symbol x is missing", "x", kpi.Missing},
		{"suppression symbol c in brackets is missing", []byte("[c]"), kpi.Missing},
		{"suppression symbol low is missing", "low", kpi.Missing},
		{"old suppression symbol colon is missing", ":", kpi.Missing},
		{"NaN from a division by zero is missing", math.NaN(), kpi.Missing},
		{"+Inf from a division by zero is missing", math.Inf(1), kpi.Missing},
		{"-Inf from a division by zero is missing", math.Inf(-1), kpi.Missing},
		{"NaN as NUMERIC text is missing", []byte("NaN"), kpi.Missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustMapper(t, caseloadCollector(), 10, "service", "team", "caseload")
			obs, err := m.Map(row(1), []any{"children", "north", tt.value}, runAt(t, "2025-10-01T09:00:00Z"))
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if len(obs) != 1 {
				t.Fatalf("got %d observations, want 1", len(obs))
			}
			if obs[0].Value != tt.want {
				t.Errorf("value = %v (valid %t), want %v (valid %t)", obs[0].Value, obs[0].Value.Valid, tt.want, tt.want.Valid)
			}
		})
	}
}

func TestMapValueErrors(t *testing.T) {
	tests := []struct {
		name  string
		value any
		want  string
	}{
		{"text that is not a number fails naming collector, row and column", "abc",
			`collector "caseload": row 3, column "caseload": value "abc" is not a number`},
		{"bytes that are not a number fail", []byte("12,5"),
			`collector "caseload": row 3, column "caseload": value "12,5" is not a number`},
		{"a percentage where the mapping does not ask for one fails", " 12.5% ",
			`collector "caseload": row 3, column "caseload": value " 12.5% " is a percentage: set percent: true on the mapping (of a _ratio KPI) to store it as a ratio (0.125 for 12.5%)`},
		{"a boolean fails", true,
			`collector "caseload": row 3, column "caseload": value true is a boolean, not a number`},
		{"a time fails", time.Date(2025, 9, 30, 0, 0, 0, 0, time.UTC),
			`collector "caseload": row 3, column "caseload": value 2025-09-30T00:00:00Z is a time, not a number`},
		{"another type fails", []int{1},
			`collector "caseload": row 3, column "caseload": value of type []int is not a number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustMapper(t, caseloadCollector(), 10, "service", "team", "caseload")
			_, err := m.Map(row(3), []any{"children", "north", tt.value}, runAt(t, "2025-10-01T09:00:00Z"))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestMapLabels(t *testing.T) {
	tests := []struct {
		name    string
		service any
		want    string
		wantErr string
	}{
		{"text is kept", "children", "children", ""},
		{"fixed-width padding is trimmed", "adults    ", "adults", ""},
		{"bytes are text", []byte("children"), "children", ""},
		{"an integer is formatted plainly", int64(2025), "2025", ""},
		{"a float is formatted plainly", 1e21, "1000000000000000000000", ""},
		{"a fraction is formatted plainly", 0.5, "0.5", ""},
		{"NULL fails", nil, "", `collector "caseload": row 2, column "service": label "service" of KPI "children_sw_caseload_average": the label value is NULL`},
		{"an empty label fails", "  ", "", `collector "caseload": row 2, column "service": label "service" of KPI "children_sw_caseload_average": the label value is empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustMapper(t, caseloadCollector(), 10, "service", "team", "caseload")
			obs, err := m.Map(row(2), []any{tt.service, "north", int64(1)}, runAt(t, "2025-10-01T09:00:00Z"))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if got := obs[0].Labels; len(got) != 2 || got[0] != tt.want || got[1] != "north" {
				t.Errorf("labels = %q, want [%q \"north\"]", got, tt.want)
			}
		})
	}
}

// TestMapRefusesALabelValueOverTheLimit: a cell longer than
// kpi.MaxLabelValueBytes (a wrong column holding notes, say) fails the row
// naming the collector, row, column, label and length, and the error
// carries only a short prefix of the cell, never the rest of it.
func TestMapRefusesALabelValueOverTheLimit(t *testing.T) {
	m := mustMapper(t, caseloadCollector(), 10, "service", "team", "caseload")
	run := runAt(t, "2025-10-01T09:00:00Z")

	atLimit := strings.Repeat("é", kpi.MaxLabelValueBytes/2) // 2 bytes each
	obs, err := m.Map(row(2), []any{atLimit, "north", int64(1)}, run)
	if err != nil {
		t.Fatalf("a label value of exactly %d bytes: %v", kpi.MaxLabelValueBytes, err)
	}
	if obs[0].Labels[0] != atLimit {
		t.Errorf("label = %q, want the cell as it is", obs[0].Labels[0])
	}

	const tail = "SECRET-TAIL-NOT-ECHOED"
	over := strings.Repeat("x", kpi.MaxLabelValueBytes) + tail
	_, err = m.Map(row(3), []any{"children", []byte(over), int64(1)}, run)
	if err == nil {
		t.Fatalf("a label value of %d bytes was accepted", len(over))
	}
	want := fmt.Sprintf(`collector "caseload": row 3, column "team": label "team" of KPI "children_sw_caseload_average": `+
		`the label value is %d bytes long, more than the limit of %d (it begins %q…)`,
		len(over), kpi.MaxLabelValueBytes, strings.Repeat("x", 64))
	if err.Error() != want {
		t.Errorf("error = %s\nwant    %s", err, want)
	}
	if strings.Contains(err.Error(), tail) {
		t.Errorf("the error echoes the end of the value: %s", err)
	}

	// The limit counts the value as stored: the padding of a CHAR column
	// is trimmed first.
	padded := strings.Repeat("y", kpi.MaxLabelValueBytes) + "      "
	if _, err := m.Map(row(4), []any{padded, "north", int64(1)}, run); err != nil {
		t.Errorf("a %d-byte value padded with spaces: %v", kpi.MaxLabelValueBytes, err)
	}
}

func TestMapStaticLabelsFollowTheKPILabelOrder(t *testing.T) {
	cc := &config.CollectorConfig{
		Name: "vacancies",
		Metrics: []config.MetricMapping{{
			KPI:          "children_sw_vacancy_ratio",
			ValueColumn:  "rate",
			Labels:       map[string]string{"service": "svc"},
			StaticLabels: map[string]string{"authority": "Exampleshire"},
		}, {
			KPI:          "children_sw_caseload_average",
			ValueColumn:  "caseload",
			Labels:       map[string]string{"service": "svc"},
			StaticLabels: map[string]string{"team": "all"},
		}},
	}
	m := mustMapper(t, cc, 10, "caseload", "svc", "rate")
	obs, err := m.Map(row(1), []any{[]byte("16.5"), "children", []byte("0.21")}, runAt(t, "2025-10-01T09:00:00Z"))
	if err != nil {
		t.Fatalf("Map: %v", err)
	}
	if len(obs) != 2 {
		t.Fatalf("got %d observations, want one per metric mapping (2)", len(obs))
	}
	if got := kpi.LabelString(obs[0].KPI, obs[0].Labels); got != `{authority="Exampleshire",service="children"}` {
		t.Errorf("vacancy labels = %s", got)
	}
	if obs[0].Value != kpi.Known(0.21) {
		t.Errorf("vacancy value = %v, want 0.21", obs[0].Value)
	}
	if got := kpi.LabelString(obs[1].KPI, obs[1].Labels); got != `{service="children",team="all"}` {
		t.Errorf("caseload labels = %s", got)
	}
	if obs[1].Value != kpi.Known(16.5) {
		t.Errorf("caseload value = %v, want 16.5", obs[1].Value)
	}
}

// The mapping's rules are config's (config/sources_test.go pins their
// messages); NewMapper refuses only what config cannot know.
func TestNewMapperRejectsBadMappings(t *testing.T) {
	tests := []struct {
		name      string
		mapping   config.MetricMapping
		maxSeries int
		want      string
	}{
		{"an unknown KPI fails",
			config.MetricMapping{KPI: "nope", ValueColumn: "v"}, 10,
			`collector "caseload": metrics[0].kpi: no KPI "nope" in the catalogue`},
		{"a series limit below one fails",
			config.MetricMapping{KPI: "children_sw_caseload_average", ValueColumn: "v",
				Labels: map[string]string{"service": "s", "team": "t"}}, 0,
			`collector "caseload": max_series must be positive, got 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := &config.CollectorConfig{Name: "caseload", Metrics: []config.MetricMapping{tt.mapping}}
			_, err := collector.NewMapper(cc, catalogue(), tt.maxSeries)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestBindFailsOnAMissingColumnListingThosePresent(t *testing.T) {
	m, err := collector.NewMapper(caseloadCollector(), catalogue(), 10)
	if err != nil {
		t.Fatal(err)
	}
	r := m.NewRun()
	err = r.Bind("", []string{"service", "team", "cases"})
	want := `collector "caseload": the rows have no column "caseload" (named by metrics[0].value_column); columns present: "service", "team", "cases"`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
	if _, err := r.Map(row(1), []any{"children", "north", int64(3)}, runAt(t, "2025-10-01T09:00:00Z")); err == nil {
		t.Error("Map after a failed Bind succeeded")
	}
}

func TestBindFailsOnAColumnGivenTwice(t *testing.T) {
	m, err := collector.NewMapper(caseloadCollector(), catalogue(), 10)
	if err != nil {
		t.Fatal(err)
	}
	err = m.NewRun().Bind("", []string{"service", "team", "team", "caseload"})
	if err == nil || !strings.Contains(err.Error(), `column "team" (named by metrics[0].labels.team) appears more than once`) {
		t.Fatalf("error = %v, want the duplicated column named", err)
	}
}

func TestMapFailsBeforeBind(t *testing.T) {
	m, err := collector.NewMapper(caseloadCollector(), catalogue(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.NewRun().Map(row(1), []any{"children", "north", int64(3)}, runAt(t, "2025-10-01T09:00:00Z")); err == nil {
		t.Fatal("Map before Bind succeeded")
	}
}

func TestMapFailsOnARowOfTheWrongWidth(t *testing.T) {
	m := mustMapper(t, caseloadCollector(), 10, "service", "team", "caseload")
	_, err := m.Map(row(4), []any{"children", "north"}, runAt(t, "2025-10-01T09:00:00Z"))
	if err == nil || err.Error() != `collector "caseload": row 4 has 2 values for 3 columns` {
		t.Fatalf("error = %v", err)
	}
}

func TestMapSeriesLimit(t *testing.T) {
	run := runAt(t, "2025-10-01T09:00:00Z")
	t.Run("a run at the limit succeeds", func(t *testing.T) {
		m := mustMapper(t, caseloadCollector(), 2, "service", "team", "caseload")
		for i, team := range []string{"north", "south"} {
			if _, err := m.Map(row(i+1), []any{"children", team, int64(1)}, run); err != nil {
				t.Fatalf("row %d: %v", i+1, err)
			}
		}
	})
	t.Run("the same series for other periods does not count again", func(t *testing.T) {
		cc := caseloadCollector()
		cc.PeriodColumn = "period"
		m := mustMapper(t, cc, 1, "service", "team", "caseload", "period")
		for i, period := range []string{"2025-07-31", "2025-08-31", "2025-09-30"} {
			if _, err := m.Map(row(i+1), []any{"children", "north", int64(1), period}, run); err != nil {
				t.Fatalf("row %d: %v", i+1, err)
			}
		}
	})
	t.Run("a run past the limit fails naming the limit and the KPI", func(t *testing.T) {
		m := mustMapper(t, caseloadCollector(), 2, "service", "team", "caseload")
		var err error
		for i, team := range []string{"north", "south", "east"} {
			if _, err = m.Map(row(i+1), []any{"children", team, int64(1)}, run); err != nil {
				break
			}
		}
		want := `collector "caseload": row 3: KPI "children_sw_caseload_average" takes the run past its limit of 2 series (max_series)`
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("error = %v, want it to start with %s", err, want)
		}
		if strings.Contains(err.Error(), "east") {
			t.Errorf("error %q quotes the label values of the offending series", err)
		}
	})
	t.Run("a new run starts counting again", func(t *testing.T) {
		for range 2 {
			m := mustMapper(t, caseloadCollector(), 2, "service", "team", "caseload")
			for i, team := range []string{"north", "south"} {
				if _, err := m.Map(row(i+1), []any{"children", team, int64(1)}, run); err != nil {
					t.Fatalf("row %d: %v", i+1, err)
				}
			}
		}
	})
}

func TestMapDuplicateSeriesPeriodIsAmbiguous(t *testing.T) {
	cc := caseloadCollector()
	cc.PeriodColumn = "period"
	m := mustMapper(t, cc, 10, "service", "team", "caseload", "period")
	run := runAt(t, "2025-10-01T09:00:00Z")
	rows := [][]any{
		{"children", "north", int64(14), "2025-09-30"},
		{"children", "north", int64(15), "2025-08-31"}, // same series, other period: fine
		{"children", "south", int64(16), "2025-09-30"}, // other series: fine
		{"children", "north", int64(17), "30/09/2025"}, // same series and day as row 1
	}
	var err error
	for i, r := range rows {
		if _, err = m.Map(row(i+1), r, run); err != nil {
			if i != 3 {
				t.Fatalf("row %d: %v", i+1, err)
			}
		}
	}
	want := `collector "caseload": row 1 and row 4 both give KPI "children_sw_caseload_average" series {service="children",team="north"} for period 2025-09-30: the value is ambiguous`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
}

func TestMapPeriod(t *testing.T) {
	loc := london(t)
	inLondon := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, loc) }
	utc := func(s string) time.Time {
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	// lib/pq returns DATE and TIMESTAMP in an unnamed zero-offset zone.
	pqDate := func(y int, m time.Month, d int) time.Time {
		return time.Date(y, m, d, 0, 0, 0, 0, time.FixedZone("", 0))
	}

	tests := []struct {
		name   string
		runAt  string
		period any // nil: no period column
		want   time.Time
	}{
		{"without a period column it is the run's date in London (BST)",
			"2025-09-30T15:00:00Z", nil, utc("2025-09-29T23:00:00Z")},
		{"without a period column it is the run's date in London (GMT)",
			"2025-12-01T15:00:00Z", nil, utc("2025-12-01T00:00:00Z")},
		{"a run at 23:30 UTC the night clocks go back is already on the next London day",
			"2025-10-25T23:30:00Z", nil, utc("2025-10-25T23:00:00Z")},
		{"a run on the day clocks go back is midnight BST of that day",
			"2025-10-26T12:00:00Z", nil, utc("2025-10-25T23:00:00Z")},
		{"a run on the day clocks go forward is midnight GMT of that day",
			"2025-03-30T12:00:00Z", nil, utc("2025-03-30T00:00:00Z")},
		{"a run at 23:30 UTC before clocks go forward is still on that London day",
			"2025-03-29T23:30:00Z", nil, utc("2025-03-29T00:00:00Z")},
		{"an ISO date string is midnight in London",
			"2025-11-01T09:00:00Z", "2025-09-30", inLondon(2025, 9, 30)},
		{"a UK date string is midnight in London",
			"2025-11-01T09:00:00Z", "30/09/2025", inLondon(2025, 9, 30)},
		{"a date string as bytes is midnight in London",
			"2025-11-01T09:00:00Z", []byte("2025-03-31"), inLondon(2025, 3, 31)},
		{"a date string on the day clocks go back is midnight BST",
			"2025-11-01T09:00:00Z", "2025-10-26", utc("2025-10-25T23:00:00Z")},
		{"an RFC 3339 string is the instant it names",
			"2025-11-01T09:00:00Z", "2025-09-30T08:00:00+01:00", utc("2025-09-30T07:00:00Z")},
		{"a DATE column is midnight in London, like the same date as text",
			"2025-11-01T09:00:00Z", pqDate(2025, 9, 30), inLondon(2025, 9, 30)},
		{"a TIMESTAMPTZ is the instant it is",
			"2025-11-01T09:00:00Z", utc("2025-09-30T12:00:00Z"), utc("2025-09-30T12:00:00Z")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := caseloadCollector()
			columns := []string{"service", "team", "caseload"}
			values := []any{"children", "north", int64(14)}
			if tt.period != nil {
				cc.PeriodColumn = "period"
				columns = append(columns, "period")
				values = append(values, tt.period)
			}
			m := mustMapper(t, cc, 10, columns...)
			obs, err := m.Map(row(1), values, runAt(t, tt.runAt))
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if !obs[0].Period.Equal(tt.want) {
				t.Errorf("period = %s, want %s", obs[0].Period, tt.want)
			}
		})
	}
}

func TestMapPeriodErrors(t *testing.T) {
	tests := []struct {
		name   string
		period any
		want   string
	}{
		{"a NULL period fails", nil, `collector "caseload": row 5, column "period": the period is NULL`},
		{"text that is not a date fails", "Q3 2025",
			`collector "caseload": row 5, column "period": period "Q3 2025" is not a date (2006-01-02, 02/01/2006) or an RFC 3339 time`},
		{"a number fails", int64(20250930), `collector "caseload": row 5, column "period": a value of type int64 cannot be a period`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := caseloadCollector()
			cc.PeriodColumn = "period"
			m := mustMapper(t, cc, 10, "service", "team", "caseload", "period")
			_, err := m.Map(row(5), []any{"children", "north", int64(14), tt.period}, runAt(t, "2025-10-01T09:00:00Z"))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestMapMetricPeriodColumnOverridesTheCollectors(t *testing.T) {
	cc := &config.CollectorConfig{
		Name:         "workforce",
		PeriodColumn: "snapshot",
		Metrics: []config.MetricMapping{{
			KPI:          "children_sw_caseload_average",
			ValueColumn:  "caseload",
			Labels:       map[string]string{"service": "service"},
			StaticLabels: map[string]string{"team": "all"},
		}, {
			KPI:          "children_sw_vacancy_ratio",
			ValueColumn:  "vacancy",
			Labels:       map[string]string{"service": "service"},
			StaticLabels: map[string]string{"authority": "Exampleshire"},
			PeriodColumn: "year_end",
		}},
	}
	m := mustMapper(t, cc, 10, "service", "caseload", "vacancy", "snapshot", "year_end")
	obs, err := m.Map(row(1), []any{"children", int64(15), 0.2, "2025-09-30", "2025-03-31"}, runAt(t, "2025-11-01T09:00:00Z"))
	if err != nil {
		t.Fatalf("Map: %v", err)
	}
	loc := london(t)
	if want := time.Date(2025, 9, 30, 0, 0, 0, 0, loc); !obs[0].Period.Equal(want) {
		t.Errorf("caseload period = %s, want %s (the collector's period_column)", obs[0].Period, want)
	}
	if want := time.Date(2025, 3, 31, 0, 0, 0, 0, loc); !obs[1].Period.Equal(want) {
		t.Errorf("vacancy period = %s, want %s (its own period_column)", obs[1].Period, want)
	}
}
