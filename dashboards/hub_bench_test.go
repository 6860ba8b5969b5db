package dashboards_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/report"
	"github.com/carewatch/carewatch/store"
)

// BenchmarkHubHistory measures, on a store the size of a regional hub's
// (33 London boroughs pooling their data), every SQL query of every panel
// of the dashboards and the history queries of the KPI pack
// (Store.MonthlyHistory) and of carewatch history (FindSeries, then
// SeriesHistory), each beside the same query's plan-only cost as a floor.
//
// The store holds the demo catalogue's 14 KPIs with about 20,000 series
// (each team KPI 33 boroughs × 65 teams, each DfE benchmark 153 authorities)
// and one value per series per day for CAREWATCH_HUB_YEARS years (default
// 5: about 36 million observations), written through Store.SaveRun a
// collector run at a time, as carewatch writes them. Building it takes long,
// so it lives in a database kept between runs, CAREWATCH_HUB_DATABASE_URL;
// the benchmark resumes a build that was cut short and skips one that is
// done. Without that variable it is skipped.
//
// Each query reports p50-ms and p95-ms over up to 20 runs, with the
// dashboards' own default time ranges and, for the team variable, the teams
// of one borough.
func BenchmarkHubHistory(b *testing.B) {
	dsn := os.Getenv("CAREWATCH_HUB_DATABASE_URL")
	if dsn == "" {
		b.Skip("set CAREWATCH_HUB_DATABASE_URL to a database kept between runs to build and measure the hub-size store")
	}
	years := 5
	if v := os.Getenv("CAREWATCH_HUB_YEARS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("CAREWATCH_HUB_YEARS=%q: want a number of years", v)
		}
		years = n
	}
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(demoConfig)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.SyncCatalogue(ctx, cfg.Catalogue); err != nil {
		b.Fatal(err)
	}
	hub := newHub(cfg.Catalogue, years)
	hub.build(b, st)

	var n int64
	if err := st.DB().GetContext(ctx, &n, `SELECT count(*) FROM observations`); err != nil {
		b.Fatal(err)
	}
	b.Logf("hub store: %d series, %d observations, %d days", len(hub.series), n, hub.days)

	values := map[string][]string{}
	for k, v := range plausibleValues {
		values[k] = v
	}
	values["team"] = hub.boroughTeams(7)
	values["la_code"] = []string{hubAuthority(7)}
	values["la_name"] = []string{hubAuthorityName(7)}

	// The panels run as Grafana's role runs them: without JIT compilation
	// (deploy/compose/postgres/initdb/reader.psql).
	grafana, err := st.DB().Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer grafana.Close()
	if _, err := grafana.ExecContext(ctx, `SET jit = off`); err != nil {
		b.Fatal(err)
	}
	for _, q := range queries(loadDashboards(b)) {
		if q.dsType != postgresType {
			continue
		}
		to := hub.today.Add(12 * time.Hour)
		from := to.Add(-dashboardRange(b, q.dashboard.Time.From))
		s, err := interpolate(q.target.RawSQL, "sql", values)
		if err == nil {
			s, err = expandSQLMacros(s, from, to)
		}
		if err != nil {
			b.Fatalf("%s: %v", q, err)
		}
		name := strings.TrimSuffix(q.dashboard.file, ".json") + "/" + strconv.Itoa(q.panel.ID) + q.target.RefID
		measureQuery(b, name, func() (int, error) { return countRows(ctx, grafana, s) })
	}

	// The pack of one borough, as the hub builds it for that council: its
	// own series and the benchmark series it is compared with, its month
	// the latest any series has (the daemon's /report without ?period=).
	for _, pack := range []struct {
		name string
		spec report.Spec
	}{
		{"history/pack_borough", hub.boroughPack(cfg.Catalogue, 7, false)},
		{"history/pack_borough_every_team", hub.boroughPack(cfg.Catalogue, 7, true)},
	} {
		measureQuery(b, pack.name, func() (int, error) {
			f, err := report.Read(ctx, st, cfg.Catalogue, pack.spec, report.Options{Location: cfg.Location, Now: hub.today})
			if err != nil {
				return 0, err
			}
			return len(f.History), nil
		})
	}
	// Not a pack anyone builds: every series of every KPI of the hub at
	// once, the months a pack would show of each.
	all := kpi.HistoryQuery{KPIs: cfg.Catalogue.Names(), Until: hub.today, Months: report.Months, Location: cfg.Location}
	measureQuery(b, "history/all_series_monthly", func() (int, error) {
		h, err := st.MonthlyHistory(ctx, cfg.Catalogue, all)
		return len(h), err
	})
	caseload := cfg.Catalogue["children_sw_caseload_average"]
	measureQuery(b, "history/command_one_series", func() (int, error) {
		refs, err := st.FindSeries(ctx, caseload, map[string]string{"team": hub.boroughTeams(7)[0]})
		if err != nil {
			return 0, err
		}
		rows, err := st.SeriesHistory(ctx, refs, time.Time{}, time.Time{})
		return len(rows), err
	})
}

// A query runs hubRepetitions times, or fewer (but at least
// hubMinRepetitions) when that would take more than hubQueryBudget.
const (
	hubRepetitions    = 20
	hubMinRepetitions = 5
	hubQueryBudget    = 15 * time.Second
)

// measureQuery runs fn and reports its median and 95th percentile.
func measureQuery(b *testing.B, name string, fn func() (int, error)) {
	b.Run(name, func(b *testing.B) {
		var times []float64
		rows := 0
		for range b.N {
			times = times[:0]
			began := time.Now()
			for r := 0; r < hubRepetitions && (r < hubMinRepetitions || time.Since(began) < hubQueryBudget); r++ {
				start := time.Now()
				n, err := fn()
				if err != nil {
					b.Fatal(err)
				}
				times = append(times, float64(time.Since(start).Microseconds())/1000)
				rows = n
			}
		}
		slices.Sort(times)
		b.ReportMetric(times[len(times)/2], "p50-ms")
		b.ReportMetric(times[(len(times)*95+99)/100-1], "p95-ms")
		b.ReportMetric(float64(rows), "rows")
	})
}

func countRows(ctx context.Context, conn *sql.Conn, query string) (int, error) {
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return 0, fmt.Errorf("%w\n%s", err, query)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}

// dashboardRange reads a dashboard's default time range, now-<n>d or
// now-<n>h.
func dashboardRange(b *testing.B, from string) time.Duration {
	s := strings.TrimPrefix(from, "now-")
	if strings.HasSuffix(s, "d") {
		n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
		if err == nil {
			return time.Duration(n) * 24 * time.Hour
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		b.Fatalf("default time range %q", from)
	}
	return d
}

const (
	hubBoroughs    = 33
	hubTeams       = 65
	hubAuthorities = 153
	// hubRunDays is how many days of every series one build run writes.
	hubRunDays = 61
)

func hubAuthority(i int) string     { return fmt.Sprintf("E09%06d", 1+i) }
func hubAuthorityName(i int) string { return fmt.Sprintf("Authority %03d", 1+i) }

type hubSeries struct {
	k      *kpi.KPI
	labels []string
}

type hub struct {
	series []hubSeries
	days   int
	today  time.Time
}

func newHub(c kpi.Catalogue, years int) *hub {
	h := &hub{days: 365*years + 1, today: time.Now().UTC().Truncate(24 * time.Hour)}
	team := func(b, t int) string { return fmt.Sprintf("%s Team %02d", hubAuthority(b), t) }
	for _, name := range c.Names() {
		k := c[name]
		switch {
		case slices.Equal(k.Labels, []string{"service", "team"}):
			service := strings.SplitN(k.Name, "_", 2)[0]
			for b := range hubBoroughs {
				for t := range hubTeams {
					h.series = append(h.series, hubSeries{k, []string{service, team(b, t)}})
				}
			}
		case slices.Equal(k.Labels, []string{"team"}):
			for b := range hubBoroughs {
				for t := range hubTeams {
					h.series = append(h.series, hubSeries{k, []string{team(b, t)}})
				}
			}
		case slices.Equal(k.Labels, []string{"la_code", "la_name", "scope"}):
			for a := range hubAuthorities {
				scope := "stat_neighbour"
				switch {
				case a < hubBoroughs:
					scope = "council"
				case a == hubAuthorities-2:
					scope = "region"
				case a == hubAuthorities-1:
					scope = "england"
				}
				h.series = append(h.series, hubSeries{k, []string{hubAuthority(a), hubAuthorityName(a), scope}})
			}
		}
	}
	return h
}

func (h *hub) boroughTeams(b int) []string {
	var out []string
	for t := range hubTeams {
		out = append(out, fmt.Sprintf("%s Team %02d", hubAuthority(b), t))
	}
	return out
}

// boroughPack is the KPI pack of borough b: each DfE KPI's row of the
// borough with its benchmark (the neighbours, region and England among the
// 153 authorities), and each team KPI for the borough's first team, which
// stands for the council-wide series (team "all") a council's own pack
// shows: the hub's team series carry no borough label to match. With
// everyTeam, each team KPI is shown for each of the borough's 65 teams,
// an item per team.
func (h *hub) boroughPack(c kpi.Catalogue, b int, everyTeam bool) report.Spec {
	spec := report.Spec{Title: "KPI pack", Council: hubAuthorityName(b)}
	var teams, dfe report.Section
	for _, name := range c.Names() {
		k := c[name]
		switch {
		case k.LabelIndex("team") >= 0:
			shown := h.boroughTeams(b)
			if !everyTeam {
				shown = shown[:1]
			}
			for _, team := range shown {
				teams.Items = append(teams.Items, report.Item{KPI: name, Match: map[string]string{"team": team}})
			}
		case k.LabelIndex("la_code") >= 0:
			dfe.Items = append(dfe.Items, report.Item{KPI: name, Match: map[string]string{"la_code": hubAuthority(b)},
				Benchmark: &report.Benchmark{ScopeLabel: "scope", NameLabel: "la_name"}})
		}
	}
	spec.Sections = append(spec.Sections, teams, dfe)
	return spec
}

func (h *hub) period(day int) time.Time { return h.today.AddDate(0, 0, day-h.days+1) }

// build writes the days not stored yet, hubRunDays at a time.
func (h *hub) build(b *testing.B, st *store.Store) {
	ctx := context.Background()
	var last *time.Time
	if err := st.DB().GetContext(ctx, &last, `SELECT max(period) FROM observations`); err != nil {
		b.Fatal(err)
	}
	first := 0
	if last != nil {
		first = int(last.Sub(h.period(0)).Hours()/24) + 1
	}
	for d := first; d < h.days; d += hubRunDays {
		end := min(d+hubRunDays, h.days)
		obs := make([]kpi.Observation, 0, len(h.series)*(end-d))
		for day := d; day < end; day++ {
			p := h.period(day)
			for i, s := range h.series {
				v := kpi.Known(float64((i*31+day*7)%400) / 10)
				if strings.HasSuffix(s.k.Name, "_ratio") {
					v.V /= 40
				}
				if (i+day)%97 == 0 {
					v = kpi.Missing
				}
				obs = append(obs, kpi.Observation{KPI: s.k, Labels: s.labels, Period: p, Value: v})
			}
		}
		start := time.Now()
		now := time.Now()
		if _, err := st.SaveRun(ctx, kpi.Run{Collector: "hub_build", Source: "synthetic", Query: "hub", StartedAt: now, FinishedAt: now}, obs); err != nil {
			b.Fatal(err)
		}
		b.Logf("hub build: days %d-%d of %d stored (%d observations) in %v", d, end-1, h.days, len(obs), time.Since(start))
		fmt.Fprintf(os.Stderr, "hub build: days %d-%d of %d stored (%d observations) in %v\n", d, end-1, h.days, len(obs), time.Since(start))
	}
	if _, err := st.DB().ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
}
