package store_test

import (
	"cmp"
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/carewatch/carewatch/kpi"
	"github.com/carewatch/carewatch/pglocal/pgtest"
	"github.com/carewatch/carewatch/store"
)

// benchShape is how a run's million observations are spread: across many
// series for one period (a daily snapshot), or fewer series over several
// periods (a backfill).
type benchShape struct {
	series, periods int
}

func (s benchShape) String() string {
	return "series=" + strconv.Itoa(s.series) + "/periods=" + strconv.Itoa(s.periods)
}

var benchShapes = []benchShape{{1_000_000, 1}, {100_000, 10}}

// benchKPIs is the number of KPIs the benchmark series are spread over.
const benchKPIs = 10

// benchValue is the value of series i for period p: it crosses the amber
// threshold in a few series now and then, is missing in about 1%, and
// never repeats the previous period's value exactly.
func benchValue(i, p int) kpi.Value {
	if i%97 == 0 {
		return kpi.Missing
	}
	return kpi.Known(float64(i%25) + float64(p)/1000)
}

// benchSeries builds the KPIs and label values of shape's series.
func benchSeries(shape benchShape) ([]*kpi.KPI, [][]string) {
	ks := make([]*kpi.KPI, benchKPIs)
	for i := range ks {
		ks[i] = &kpi.KPI{
			Name:       fmt.Sprintf("bench_kpi_%d", i),
			Direction:  kpi.LowerIsBetter,
			Labels:     []string{"authority", "team"},
			Thresholds: kpi.Thresholds{Amber: kpi.At(18), Red: kpi.At(22)},
		}
	}
	labels := make([][]string, shape.series)
	for i := range labels {
		labels[i] = []string{"E" + strconv.Itoa(9_000_000+i%1000), "team_" + strconv.Itoa(i/1000/benchKPIs)}
	}
	return ks, labels
}

// benchObservations builds the run of shape's periods starting at period
// number first.
func benchObservations(shape benchShape, ks []*kpi.KPI, labels [][]string, first int) []kpi.Observation {
	obs := make([]kpi.Observation, 0, shape.series*shape.periods)
	for p := first; p < first+shape.periods; p++ {
		period := benchPeriod(p)
		for i := range shape.series {
			obs = append(obs, kpi.Observation{KPI: ks[(i/1000)%benchKPIs], Labels: labels[i], Period: period, Value: benchValue(i, p)})
		}
	}
	return obs
}

func benchPeriod(p int) time.Time {
	return time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, p)
}

// BenchmarkSaveRun1M saves runs of a million observations of a new period
// into a store whose series are already stored (the steady state), and, as
// "again", the same run a second time (every value unchanged).
func BenchmarkSaveRun1M(b *testing.B) {
	for _, shape := range benchShapes {
		b.Run(shape.String(), func(b *testing.B) {
			ctx := context.Background()
			s, err := store.Open(ctx, pgtest.NewDatabase(b), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			ks, labels := benchSeries(shape)
			if _, err := s.SaveRun(ctx, benchRun(), benchObservations(shape, ks, labels, 0)); err != nil {
				b.Fatal(err)
			}
			next := 1 // the next new period; b.Run calls the function more than once
			b.Run("new", func(b *testing.B) {
				rows := 0
				var elapsed time.Duration
				for range b.N {
					obs := benchObservations(shape, ks, labels, next*shape.periods)
					next++
					start := time.Now()
					res, err := s.SaveRun(ctx, benchRun(), obs)
					elapsed += time.Since(start)
					if err != nil {
						b.Fatal(err)
					}
					if res.Inserted != len(obs) {
						b.Fatalf("inserted %d of %d", res.Inserted, len(obs))
					}
					rows += len(obs)
				}
				b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
			})
			b.Run("again", func(b *testing.B) {
				obs := benchObservations(shape, ks, labels, 0)
				rows := 0
				var elapsed time.Duration
				for range b.N {
					start := time.Now()
					res, err := s.SaveRun(ctx, benchRun(), obs)
					elapsed += time.Since(start)
					if err != nil {
						b.Fatal(err)
					}
					if res.Unchanged != len(obs) {
						b.Fatalf("unchanged %d of %d", res.Unchanged, len(obs))
					}
					rows += len(obs)
				}
				b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
			})
		})
	}
}

func benchRun() kpi.Run {
	now := time.Now()
	return kpi.Run{Collector: "bench", Source: "bench", Query: "synthetic", StartedAt: now, FinishedAt: now}
}

// BenchmarkCopyBaseline1M copies the same million rows as
// BenchmarkSaveRun1M/*/new into a table of the same shape and primary key,
// holding the same earlier period. Its "new" is the yardstick for SaveRun's
// speed: a plain COPY, lib/pq's COPY statement fed row by row through
// database/sql in the order the rows come. The other variants show where
// SaveRun's own COPY gains on it.
func BenchmarkCopyBaseline1M(b *testing.B) {
	variants := []struct {
		name string
		copy func(tb testing.TB, s *store.Store, table string, obs []kpi.Observation, ids []int64)
	}{
		{"new", copyBaseline},
		// The same COPY with the rows encoded by hand and handed to the
		// driver in large pieces, as SaveRun does: a yardstick that leaves
		// out the cost of database/sql on the client.
		{"new_raw_client", copyBaselineRaw},
		// The same COPY with the rows in the order SaveRun writes them
		// (series ID, then period): a yardstick that leaves out what that
		// order saves the server.
		{"new_sorted", func(tb testing.TB, s *store.Store, table string, obs []kpi.Observation, ids []int64) {
			order := make([]int, len(obs))
			for i := range order {
				order[i] = i
			}
			slices.SortFunc(order, func(x, y int) int {
				if c := cmp.Compare(ids[x], ids[y]); c != 0 {
					return c
				}
				return obs[x].Period.Compare(obs[y].Period)
			})
			sorted := make([]kpi.Observation, len(obs))
			sortedIDs := make([]int64, len(obs))
			for i, j := range order {
				sorted[i], sortedIDs[i] = obs[j], ids[j]
			}
			copyBaseline(tb, s, table, sorted, sortedIDs)
		}},
	}
	for _, shape := range benchShapes {
		b.Run(shape.String(), func(b *testing.B) {
			ctx := context.Background()
			s, err := store.Open(ctx, pgtest.NewDatabase(b), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ks, labels := benchSeries(shape)
			first := benchObservations(shape, ks, labels, 0)
			for _, v := range variants {
				// Each variant writes to a table of its own holding the
				// same earlier period, as SaveRun's does.
				if _, err := s.DB().ExecContext(ctx, `CREATE TABLE `+v.name+` (
					series_id bigint NOT NULL,
					period    timestamptz NOT NULL,
					value     double precision,
					run_id    bigint NOT NULL,
					PRIMARY KEY (series_id, period))`); err != nil {
					b.Fatal(err)
				}
				copyBaseline(b, s, v.name, first, seriesIDs(first))
			}
			for _, v := range variants {
				next := 1 // the next new period; b.Run calls the function more than once
				b.Run(v.name, func(b *testing.B) {
					rows := 0
					var elapsed time.Duration
					for range b.N {
						obs := benchObservations(shape, ks, labels, next*shape.periods)
						next++
						// The series IDs are computed before the clock starts.
						ids := seriesIDs(obs)
						start := time.Now()
						v.copy(b, s, v.name, obs, ids)
						elapsed += time.Since(start)
						rows += len(obs)
					}
					b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
				})
			}
		})
	}
}

// copyBaselineRaw is copyBaseline with the COPY data encoded here and
// written to the driver in 60 KiB pieces.
func copyBaselineRaw(tb testing.TB, s *store.Store, table string, obs []kpi.Observation, ids []int64) {
	tb.Helper()
	ctx := context.Background()
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		tb.Fatal(err)
	}
	err = conn.Raw(func(dc any) error {
		stmt, err := dc.(driver.ConnPrepareContext).PrepareContext(ctx, `COPY `+table+` (series_id, period, value, run_id) FROM STDIN`)
		if err != nil {
			return err
		}
		cd := stmt.(interface {
			CopyData(context.Context, string) (driver.Result, error)
		})
		periods := make(map[time.Time][]byte)
		buf := make([]byte, 0, 64<<10)
		for i := range obs {
			o := &obs[i]
			if len(buf) > 0 {
				buf = append(buf, '\n')
			}
			buf = append(strconv.AppendInt(buf, ids[i], 10), '\t')
			ts, ok := periods[o.Period]
			if !ok {
				ts = pq.FormatTimestamp(o.Period)
				periods[o.Period] = ts
			}
			buf = append(append(buf, ts...), '\t')
			if o.Value.Valid {
				buf = strconv.AppendFloat(buf, o.Value.V, 'g', -1, 64)
			} else {
				buf = append(buf, `\N`...)
			}
			buf = append(buf, "\t1"...)
			if len(buf) >= 60<<10 || i == len(obs)-1 {
				if _, err := cd.CopyData(ctx, string(buf)); err != nil {
					stmt.Close()
					return err
				}
				buf = buf[:0]
			}
		}
		return stmt.Close()
	})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		tb.Fatal(err)
	}
}

func seriesIDs(obs []kpi.Observation) []int64 {
	ids := make([]int64, len(obs))
	for i := range obs {
		ids[i] = kpi.SeriesID(obs[i].KPI, obs[i].Labels)
	}
	return ids
}

// copyBaseline copies obs into table with their series IDs, as a writer
// that needs no merge, status or series bookkeeping would.
func copyBaseline(tb testing.TB, s *store.Store, table string, obs []kpi.Observation, ids []int64) {
	tb.Helper()
	ctx := context.Background()
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `COPY `+table+` (series_id, period, value, run_id) FROM STDIN`)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range obs {
		o := &obs[i]
		var v any
		if o.Value.Valid {
			v = o.Value.V
		}
		if _, err := stmt.ExecContext(ctx, ids[i], o.Period, v, int64(1)); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := stmt.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkSaveRunFirst1M saves the first run of a million series into an
// empty store: every series is new, so SaveRun registers them all and
// records the first status of every one with thresholds. Its baseline is
// BenchmarkCopyBaselineFirst1M: a plain COPY of the same rows into an empty
// table of the observations' shape. Each iteration gets an empty database.
func BenchmarkSaveRunFirst1M(b *testing.B) {
	shape := benchShape{1_000_000, 1}
	ks, labels := benchSeries(shape)
	ctx := context.Background()
	rows := 0
	var elapsed time.Duration
	for range b.N {
		b.StopTimer()
		s, err := store.Open(ctx, pgtest.NewDatabase(b), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		obs := benchObservations(shape, ks, labels, 0)
		b.StartTimer()
		start := time.Now()
		res, err := s.SaveRun(ctx, benchRun(), obs)
		elapsed += time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if res.Inserted != len(obs) {
			b.Fatalf("inserted %d of %d", res.Inserted, len(obs))
		}
		rows += len(obs)
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
}

func BenchmarkCopyBaselineFirst1M(b *testing.B) {
	shape := benchShape{1_000_000, 1}
	ks, labels := benchSeries(shape)
	ctx := context.Background()
	rows := 0
	var elapsed time.Duration
	for range b.N {
		b.StopTimer()
		s, err := store.Open(ctx, pgtest.NewDatabase(b), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.DB().ExecContext(ctx, `CREATE TABLE first_copy (
			series_id bigint NOT NULL,
			period    timestamptz NOT NULL,
			value     double precision,
			run_id    bigint NOT NULL,
			PRIMARY KEY (series_id, period))`); err != nil {
			b.Fatal(err)
		}
		obs := benchObservations(shape, ks, labels, 0)
		ids := seriesIDs(obs)
		b.StartTimer()
		start := time.Now()
		copyBaseline(b, s, "first_copy", obs, ids)
		elapsed += time.Since(start)
		b.StopTimer()
		rows += len(obs)
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
}
