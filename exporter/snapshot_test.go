package exporter_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/carewatch/carewatch/exporter"
	"github.com/carewatch/carewatch/kpi"
)

const caseloadHelp = "# HELP carewatch_children_sw_caseload_average Average caseload per case-holding FTE social worker. " +
	"Collected on a schedule by carewatch, not at scrape time; the period the value describes is in carewatch_kpi_period_timestamp_seconds.\n" +
	"# TYPE carewatch_children_sw_caseload_average gauge\n"

const statusHead = `# HELP carewatch_kpi_status RAG status of the KPI series' latest value: green 0, amber 1, red 2, unknown (value missing) -1. Only KPIs with thresholds have a status.
# TYPE carewatch_kpi_status gauge
`

const thresholdHead = `# HELP carewatch_kpi_threshold Threshold that applies to the KPI series, by level (amber, red); a value strictly beyond it in the KPI's bad direction has crossed it.
# TYPE carewatch_kpi_threshold gauge
`

const periodHead = `# HELP carewatch_kpi_period_timestamp_seconds Unix time of the period the KPI series' latest value describes (a snapshot date, the start of a month, a reporting date), present even when the value is missing; the value is stale when time() minus this exceeds carewatch_kpi_max_age_seconds.
# TYPE carewatch_kpi_period_timestamp_seconds gauge
`

var seriesFamilies = []string{
	"carewatch_children_sw_caseload_average", "carewatch_adults_contacts", "carewatch_children_assessment_within_45wd_ratio",
	exporter.StatusMetric, exporter.ThresholdMetric, exporter.PeriodMetric,
}

func TestSnapshotCollect(t *testing.T) {
	caseload, contacts, timeliness := caseloadKPI(), contactsKPI(), timelinessKPI()
	dfeAgency := &kpi.KPI{Name: "children_sw_dfe_agency_ratio", Help: "Agency rate.", Unit: "ratio", Direction: kpi.LowerIsBetter,
		Labels: []string{"la_code", "scope"}, Thresholds: kpi.Thresholds{Amber: kpi.At(0.12), Red: kpi.At(0.2)},
		OwnSeries: map[string]string{"scope": "council"}}
	multiline := contactsKPI()
	multiline.Help = "Contacts received, \\ counted\nonce per person."

	tests := []struct {
		name     string
		cat      kpi.Catalogue
		series   []kpi.SeriesState
		health   []kpi.CollectorHealth
		families []string
		want     string
	}{
		{
			name:     "missing value exports no value sample but its period, unknown status and thresholds",
			cat:      catalogue(caseload),
			series:   []kpi.SeriesState{state(caseload, day("2025-03-31"), kpi.Missing, "children", "all")},
			families: seriesFamilies,
			want: statusHead + `carewatch_kpi_status{kpi="children_sw_caseload_average",service="children",team="all"} -1
` + thresholdHead + `carewatch_kpi_threshold{kpi="children_sw_caseload_average",level="amber",service="children",team="all"} 15
carewatch_kpi_threshold{kpi="children_sw_caseload_average",level="red",service="children",team="all"} 18
` + periodHead + `carewatch_kpi_period_timestamp_seconds{kpi="children_sw_caseload_average",service="children",team="all"} 1.7433792e+09
`,
		},
		{
			name: "present values export value, status, both thresholds and period",
			cat:  catalogue(caseload),
			series: []kpi.SeriesState{
				state(caseload, day("2025-03-31"), kpi.Known(23), "children", "Team B"),
				state(caseload, day("2025-03-31"), kpi.Known(0), "children", "Team A"),
			},
			families: seriesFamilies,
			want: caseloadHelp + `carewatch_children_sw_caseload_average{service="children",team="Team A"} 0
carewatch_children_sw_caseload_average{service="children",team="Team B"} 23
` + statusHead + `carewatch_kpi_status{kpi="children_sw_caseload_average",service="children",team="Team A"} 0
carewatch_kpi_status{kpi="children_sw_caseload_average",service="children",team="Team B"} 2
` + thresholdHead + `carewatch_kpi_threshold{kpi="children_sw_caseload_average",level="amber",service="children",team="Team A"} 18
carewatch_kpi_threshold{kpi="children_sw_caseload_average",level="amber",service="children",team="Team B"} 18
carewatch_kpi_threshold{kpi="children_sw_caseload_average",level="red",service="children",team="Team A"} 22
carewatch_kpi_threshold{kpi="children_sw_caseload_average",level="red",service="children",team="Team B"} 22
` + periodHead + `carewatch_kpi_period_timestamp_seconds{kpi="children_sw_caseload_average",service="children",team="Team A"} 1.7433792e+09
carewatch_kpi_period_timestamp_seconds{kpi="children_sw_caseload_average",service="children",team="Team B"} 1.7433792e+09
`,
		},
		{
			name:     "KPI without thresholds exports no status or threshold series",
			cat:      catalogue(contacts),
			series:   []kpi.SeriesState{state(contacts, day("2025-03-01"), kpi.Known(120), "E09000001")},
			families: seriesFamilies,
			want: `# HELP carewatch_adults_contacts Contacts received by adult social care in the month. Collected on a schedule by carewatch, not at scrape time; the period the value describes is in carewatch_kpi_period_timestamp_seconds.
# TYPE carewatch_adults_contacts gauge
carewatch_adults_contacts{authority="E09000001"} 120
` + periodHead + `carewatch_kpi_period_timestamp_seconds{authority="E09000001",kpi="adults_contacts"} 1.7407872e+09
`,
		},
		{
			name:     "KPI without labels and with only an amber threshold exports one threshold",
			cat:      catalogue(timeliness),
			series:   []kpi.SeriesState{state(timeliness, day("2025-03-01"), kpi.Known(0.8))},
			families: []string{exporter.StatusMetric, exporter.ThresholdMetric},
			want: statusHead + `carewatch_kpi_status{kpi="children_assessment_within_45wd_ratio"} 1
` + thresholdHead + `carewatch_kpi_threshold{kpi="children_assessment_within_45wd_ratio",level="amber"} 0.85
`,
		},
		{
			name:     "label values and help with quotes, backslashes and newlines are escaped",
			cat:      catalogue(multiline),
			series:   []kpi.SeriesState{state(multiline, day("2025-03-01"), kpi.Known(7), "say \"hi\"\nC:\\temp")},
			families: []string{"carewatch_adults_contacts"},
			want: `# HELP carewatch_adults_contacts Contacts received, \\ counted\nonce per person. Collected on a schedule by carewatch, not at scrape time; the period the value describes is in carewatch_kpi_period_timestamp_seconds.
# TYPE carewatch_adults_contacts gauge
carewatch_adults_contacts{authority="say \"hi\"\nC:\\temp"} 7
`,
		},
		{
			name: "benchmark series are marked, and keep their value and status",
			cat:  catalogue(dfeAgency),
			series: []kpi.SeriesState{
				state(dfeAgency, day("2025-09-30"), kpi.Known(0.25), "E09000008", "council"),
				state(dfeAgency, day("2025-09-30"), kpi.Known(0.3), "E09000006", "stat_neighbour"),
				state(dfeAgency, day("2025-09-30"), kpi.Known(0.13), "E92000001", "england"),
			},
			families: []string{exporter.BenchmarkMetric, exporter.StatusMetric},
			want: `# HELP carewatch_kpi_benchmark 1 for a KPI series that benchmarks the council against others (a statistical neighbour, its region, England), as the KPI's own_series says; such a series has a value and a status, but KPI alerts are about the council's own series only.
# TYPE carewatch_kpi_benchmark gauge
carewatch_kpi_benchmark{kpi="children_sw_dfe_agency_ratio",la_code="E09000006",scope="stat_neighbour"} 1
carewatch_kpi_benchmark{kpi="children_sw_dfe_agency_ratio",la_code="E92000001",scope="england"} 1
` + statusHead + `carewatch_kpi_status{kpi="children_sw_dfe_agency_ratio",la_code="E09000006",scope="stat_neighbour"} 2
carewatch_kpi_status{kpi="children_sw_dfe_agency_ratio",la_code="E09000008",scope="council"} 2
carewatch_kpi_status{kpi="children_sw_dfe_agency_ratio",la_code="E92000001",scope="england"} 1
`,
		},
		{
			name:     "every KPI of the catalogue has its info, and a max age when it can go stale",
			cat:      catalogue(caseload, contacts, timeliness),
			families: []string{exporter.MaxAgeMetric, exporter.InfoMetric},
			want: `# HELP carewatch_kpi_info Catalogue entry of a KPI: its metric name, unit, direction (lower_is_better or higher_is_better) and help text.
# TYPE carewatch_kpi_info gauge
carewatch_kpi_info{direction="higher_is_better",help="Assessments completed within 45 working days, as a ratio of all completed.",kpi="children_assessment_within_45wd_ratio",metric="carewatch_children_assessment_within_45wd_ratio",unit="ratio"} 1
carewatch_kpi_info{direction="lower_is_better",help="Average caseload per case-holding FTE social worker.",kpi="children_sw_caseload_average",metric="carewatch_children_sw_caseload_average",unit="cases"} 1
carewatch_kpi_info{direction="lower_is_better",help="Contacts received by adult social care in the month",kpi="adults_contacts",metric="carewatch_adults_contacts",unit="contacts"} 1
# HELP carewatch_kpi_max_age_seconds How long after the period it describes a KPI's value stays fresh.
# TYPE carewatch_kpi_max_age_seconds gauge
carewatch_kpi_max_age_seconds{kpi="children_assessment_within_45wd_ratio"} 3.888e+06
carewatch_kpi_max_age_seconds{kpi="children_sw_caseload_average"} 129600
`,
		},
		{
			name:   "collector that never succeeded has no last success time or observations",
			health: newFixture().health,
			families: []string{
				exporter.CollectorLastRunSuccessMetric, exporter.CollectorLastSuccessTimeMetric, exporter.CollectorLastRunTimeMetric,
				exporter.CollectorLastRunDurationMetric, exporter.CollectorRunsMetric, exporter.CollectorFailuresMetric,
				exporter.CollectorLastRunObservationsMetric,
			},
			want: `# HELP carewatch_collector_failures_total Failed runs of the collector recorded in the store.
# TYPE carewatch_collector_failures_total counter
carewatch_collector_failures_total{collector="caseload"} 2
carewatch_collector_failures_total{collector="hr_export"} 3
# HELP carewatch_collector_last_run_duration_seconds Duration of the collector's latest run, retries included.
# TYPE carewatch_collector_last_run_duration_seconds gauge
carewatch_collector_last_run_duration_seconds{collector="caseload"} 5.25
carewatch_collector_last_run_duration_seconds{collector="hr_export"} 1
# HELP carewatch_collector_last_run_observations Observations written by the collector's latest successful run.
# TYPE carewatch_collector_last_run_observations gauge
carewatch_collector_last_run_observations{collector="caseload"} 42
# HELP carewatch_collector_last_run_success Whether the collector's latest finished run succeeded (1) or failed (0).
# TYPE carewatch_collector_last_run_success gauge
carewatch_collector_last_run_success{collector="caseload"} 1
carewatch_collector_last_run_success{collector="hr_export"} 0
# HELP carewatch_collector_last_run_timestamp_seconds Unix time at which the collector's latest run finished.
# TYPE carewatch_collector_last_run_timestamp_seconds gauge
carewatch_collector_last_run_timestamp_seconds{collector="caseload"} 1.743487205e+09
carewatch_collector_last_run_timestamp_seconds{collector="hr_export"} 1.743472801e+09
# HELP carewatch_collector_last_success_timestamp_seconds Unix time at which the collector's latest successful run finished; absent if it never succeeded.
# TYPE carewatch_collector_last_success_timestamp_seconds gauge
carewatch_collector_last_success_timestamp_seconds{collector="caseload"} 1.743487205e+09
# HELP carewatch_collector_runs_total Runs of the collector recorded in the store, successful or not.
# TYPE carewatch_collector_runs_total counter
carewatch_collector_runs_total{collector="caseload"} 10
carewatch_collector_runs_total{collector="hr_export"} 3
`,
		},
		{
			name:     "collector that has not run yet exports its zero counters only",
			health:   []kpi.CollectorHealth{{Collector: "new_one"}},
			families: []string{exporter.CollectorLastRunSuccessMetric, exporter.CollectorLastRunTimeMetric, exporter.CollectorRunsMetric},
			want: `# HELP carewatch_collector_runs_total Runs of the collector recorded in the store, successful or not.
# TYPE carewatch_collector_runs_total counter
carewatch_collector_runs_total{collector="new_one"} 0
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := exporter.NewSnapshot(tt.cat, tt.series, tt.health)
			if p := s.Problems(); len(p) > 0 {
				t.Fatalf("problems: %v", p)
			}
			if err := testutil.CollectAndCompare(s, strings.NewReader(tt.want), tt.families...); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestNewSnapshotLeavesOutWhatCannotBeExported(t *testing.T) {
	caseload := caseloadKPI()
	good := state(caseload, day("2025-03-31"), kpi.Known(17), "children", "Team A")
	relabelled := caseloadKPI()
	relabelled.Labels = []string{"team", "service"}

	tests := []struct {
		name        string
		cat         kpi.Catalogue
		bad         kpi.SeriesState
		wantProblem string
	}{
		{
			name:        "series of a KPI missing from the catalogue is dropped",
			cat:         catalogue(caseload),
			bad:         state(contactsKPI(), day("2025-03-01"), kpi.Known(1), "E09000001"),
			wantProblem: `kpi "adults_contacts": series {authority="E09000001"}: KPI is not exported`,
		},
		{
			name:        "series with too few label values is dropped",
			cat:         catalogue(caseload),
			bad:         kpi.SeriesState{KPI: caseload, Labels: []string{"children"}, Period: day("2025-03-31"), Value: kpi.Known(1)},
			wantProblem: "1 label values for 2 labels",
		},
		{
			name:        "series with a label value that is not UTF-8 is dropped",
			cat:         catalogue(caseload),
			bad:         state(caseload, day("2025-03-31"), kpi.Known(1), "children", "Team \xff"),
			wantProblem: "not valid UTF-8",
		},
		{
			name:        "second state of the same series is dropped and the first kept",
			cat:         catalogue(caseload),
			bad:         state(caseload, day("2025-03-30"), kpi.Known(99), "children", "Team A"),
			wantProblem: "more than one state; the first is kept",
		},
		{
			name:        "series of a KPI whose labels changed order is dropped",
			cat:         catalogue(caseload),
			bad:         state(relabelled, day("2025-03-31"), kpi.Known(1), "Team C", "children"),
			wantProblem: "differ from the catalogue's",
		},
		{
			name:        "series without a KPI is dropped",
			cat:         catalogue(caseload),
			bad:         kpi.SeriesState{Labels: []string{"a", "b"}},
			wantProblem: "series state without a KPI",
		},
	}
	want := caseloadHelp + `carewatch_children_sw_caseload_average{service="children",team="Team A"} 17
`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := exporter.NewSnapshot(tt.cat, []kpi.SeriesState{good, tt.bad}, nil)
			// Of the two states given, one is exported and one left out.
			if s.Series() != 1 {
				t.Errorf("Series() = %d, want 1 of the 2 states", s.Series())
			}
			problems := s.Problems()
			if !slices.ContainsFunc(problems, func(err error) bool { return strings.Contains(err.Error(), tt.wantProblem) }) {
				t.Errorf("Problems() = %v, want one containing %q", problems, tt.wantProblem)
			}
			if err := testutil.CollectAndCompare(s, strings.NewReader(want), "carewatch_children_sw_caseload_average"); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestNewSnapshotKeepsOneHealthRecordPerCollector(t *testing.T) {
	h := []kpi.CollectorHealth{{Collector: "caseload", Runs: 1}, {Collector: "caseload", Runs: 2}}
	s := exporter.NewSnapshot(nil, nil, h)
	want := `# HELP carewatch_collector_runs_total Runs of the collector recorded in the store, successful or not.
# TYPE carewatch_collector_runs_total counter
carewatch_collector_runs_total{collector="caseload"} 1
`
	if err := testutil.CollectAndCompare(s, strings.NewReader(want), exporter.CollectorRunsMetric); err != nil {
		t.Error(err)
	}
	if len(s.Problems()) != 1 || s.Collectors() != 1 {
		t.Errorf("Problems() = %v, Collectors() = %d; want one problem and one collector", s.Problems(), s.Collectors())
	}
}

func TestSnapshotDoesNotChangeWhenItsInputsDo(t *testing.T) {
	f := newFixture()
	s := f.snapshot()
	var before strings.Builder
	if err := writeCollected(&before, s); err != nil {
		t.Fatal(err)
	}

	f.series[0].Labels[1] = "Team Z"
	f.series[0].Value = kpi.Known(1000)
	f.series[1] = f.series[3]
	f.health[0].Runs = 1000

	if err := testutil.CollectAndCompare(s, strings.NewReader(before.String())); err != nil {
		t.Error(err)
	}
}
