package exporter_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/carewatch/carewatch/exporter"
	"github.com/carewatch/carewatch/kpi"
)

// wideFixture is the fixture with a KPI of many series whose labels sort
// before and after the kpi and level labels the shared families add, with
// label values the text format must escape and values it spells specially.
func wideFixture() (fixture, *kpi.KPI) {
	wide := &kpi.KPI{
		Name: "adults_reviews_overdue", Help: "Reviews overdue,\nby \\ team.", Direction: kpi.LowerIsBetter,
		Labels:     []string{"team", "authority", "zone", "band"},
		Thresholds: kpi.Thresholds{Amber: kpi.At(5), Red: kpi.At(10)},
		Overrides:  []kpi.Override{{Match: map[string]string{"band": "b"}, Thresholds: kpi.Thresholds{Red: kpi.At(3)}}},
		OwnSeries:  map[string]string{"zone": "z"},
		MaxAge:     time.Hour,
	}
	f := newFixture()
	f.cat[wide.Name] = wide
	i := 0
	for _, team := range []string{"t2", `t"1`, "", "a\\b\nc"} {
		for _, auth := range []string{"E2", "E1"} {
			for _, zone := range []string{"z", "a"} {
				for _, band := range []string{"b", "a"} {
					i++
					v := kpi.Known(float64(i%12) - 1)
					switch i % 7 {
					case 0:
						v = kpi.Missing
					case 3:
						v = kpi.Known(math.Inf(1))
					case 5:
						v = kpi.Known(0.1 + 0.2)
					}
					f.series = append(f.series, state(wide, day("2025-03-31"), v, team, auth, zone, band))
				}
			}
		}
	}
	return f, wide
}

func scrapePlain(t *testing.T, e *exporter.Exporter) []byte {
	t.Helper()
	_, body := get(t, http.MethodGet, newServer(t, e, nil).URL, "")
	return body
}

func sortedLines(b []byte) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	slices.SortFunc(lines, bytes.Compare)
	return bytes.Join(lines, nil)
}

// TestTextIsWhatARegistryRenders holds the exposition the snapshot writes
// itself to what client_golang's registry and expfmt write for the same
// metrics. Only the order of the KPIs within a shared family may differ.
func TestTextIsWhatARegistryRenders(t *testing.T) {
	f, _ := wideFixture()
	e := exporter.New(nil)
	mustSet(t, e, f.snapshot())
	got := scrapePlain(t, e)
	var want bytes.Buffer
	if err := writeCollected(&want, f.snapshot()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sortedLines(got), sortedLines(want.Bytes())) {
		t.Errorf("the exporter's text differs from the registry's:\n%s\n--- registry\n%s", got, want.Bytes())
	}
	parse(t, got)
}

// TestUpdateServesWhatAFullRebuildServes applies runs to a snapshot, each
// changing some series (values, statuses, periods), adding some, and naming
// a KPI that is not exported, and compares the exposition, chunk sizes
// large and small, with the one of a snapshot built from scratch from the
// same states.
func TestUpdateServesWhatAFullRebuildServes(t *testing.T) {
	base, wide := wideFixture()
	caseload := base.cat["children_sw_caseload_average"]
	stranger := &kpi.KPI{Name: "not_in_catalogue", Direction: kpi.LowerIsBetter}
	runs := []struct {
		name   string
		series []kpi.SeriesState
		health []kpi.CollectorHealth
	}{
		{"values of some series change", []kpi.SeriesState{
			state(wide, day("2025-03-31"), kpi.Known(11), "t2", "E1", "a", "b"),
			state(wide, day("2025-03-31"), kpi.Known(4), "", "E2", "z", "a"),
		}, base.health},
		{"a new period, a missing value and a new series", []kpi.SeriesState{
			state(wide, day("2025-04-30"), kpi.Missing, "t2", "E1", "a", "b"),
			state(wide, day("2025-04-30"), kpi.Known(2), "t0", "E1", "a", "b"),
			state(caseload, day("2025-04-30"), kpi.Known(30), "children", "Team A"),
		}, append(slices.Clone(base.health), kpi.CollectorHealth{Collector: "new_one", Runs: 1, LastRunOK: true,
			LastRunAt: time.Date(2025, 5, 1, 6, 0, 0, 0, time.UTC), LastSuccessAt: time.Date(2025, 5, 1, 6, 0, 0, 0, time.UTC)})},
		{"nothing changes but the health", nil, base.health[:1]},
		{"a KPI the snapshot does not export is left out", []kpi.SeriesState{
			state(stranger, day("2025-04-30"), kpi.Known(1)),
			state(wide, day("2025-04-30"), kpi.Known(7), `t"1`, "E2", "a", "a"),
		}, base.health},
	}
	for _, size := range []int{1, 2, 3, 7, 1000} {
		t.Run(fmt.Sprintf("chunks of %d", size), func(t *testing.T) {
			e := exporter.New(nil)
			e.SetPieceSize(size)
			mustSet(t, e, exporter.NewSnapshotPaged(base.cat, base.series, base.health, uint8(size%4)))
			states := slices.Clone(base.series)
			for _, run := range runs {
				if err := e.Update(run.series, run.health); err != nil {
					t.Fatalf("%s: %v", run.name, err)
				}
				states = merge(states, run.series)
				full := exporter.New(nil)
				full.SetPieceSize(size)
				mustSet(t, full, exporter.NewSnapshot(base.cat, states, run.health))
				got, want := scrapePlain(t, e), scrapePlain(t, full)
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: the updated exposition differs from a full rebuild:\n%s\n--- full rebuild\n%s", run.name, got, want)
				}
			}
		})
	}
}

// TestUpdateOfStoredSeriesServesWhatAFullRebuildServes applies runs that
// change only series the snapshot holds, the path on which Update renders
// only the changed lines of a chunk and copies the others: values that go
// missing and come back, statuses that appear and go, new periods, first
// and last positions of a chunk, and changes next to each other. Every
// exposition is compared with a snapshot built from scratch.
func TestUpdateOfStoredSeriesServesWhatAFullRebuildServes(t *testing.T) {
	base, wide := wideFixture()
	var own []kpi.SeriesState
	for _, st := range base.series {
		if st.KPI == wide {
			own = append(own, st)
		}
	}
	rng := rand.New(rand.NewPCG(14, 1))
	values := []kpi.Value{kpi.Missing, kpi.Known(0), kpi.Known(4), kpi.Known(7), kpi.Known(12), kpi.Known(math.Inf(-1)), kpi.Known(0.1 + 0.2)}
	periods := []time.Time{day("2025-03-31"), day("2025-04-30"), day("2025-05-31")}
	runs := make([][]kpi.SeriesState, 20)
	for r := range runs {
		for _, i := range rng.Perm(len(own))[:1+rng.IntN(len(own))] {
			st := own[i]
			runs[r] = append(runs[r], state(wide, periods[rng.IntN(len(periods))], values[rng.IntN(len(values))], st.Labels...))
		}
	}
	for _, c := range []struct{ size, pageShift int }{{1, 0}, {3, 1}, {8, 2}, {8, 3}, {1000, 6}} {
		size := c.size
		t.Run(fmt.Sprintf("chunks of %d, pages of %d", size, 1<<c.pageShift), func(t *testing.T) {
			e := exporter.New(nil)
			e.SetPieceSize(size)
			mustSet(t, e, exporter.NewSnapshotPaged(base.cat, base.series, base.health, uint8(c.pageShift)))
			states := slices.Clone(base.series)
			for r, run := range runs {
				// The snapshot the run updates shares pages with the
				// new one, and must go on collecting what it did.
				before := e.Current()
				var collected bytes.Buffer
				if err := writeCollected(&collected, before); err != nil {
					t.Fatal(err)
				}
				if err := e.Update(run, base.health); err != nil {
					t.Fatalf("run %d: %v", r, err)
				}
				var again bytes.Buffer
				if err := writeCollected(&again, before); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(again.Bytes(), collected.Bytes()) {
					t.Fatalf("run %d: the update changed the snapshot it came from:\n%s\n--- before\n%s", r, again.Bytes(), collected.Bytes())
				}
				states = merge(states, run)
				full := exporter.New(nil)
				full.SetPieceSize(size)
				mustSet(t, full, exporter.NewSnapshot(base.cat, states, base.health))
				got, want := scrapePlain(t, e), scrapePlain(t, full)
				if !bytes.Equal(got, want) {
					t.Fatalf("run %d: the updated exposition differs from a full rebuild:\n%s\n--- full rebuild\n%s", r, got, want)
				}
				if !bytes.Equal(scrapeGzip(t, e), got) {
					t.Fatalf("run %d: the gzip exposition differs from the plain one", r)
				}
			}
		})
	}
}

// A run that stores an older period than the one served (a backfill) does
// not change a series' latest value, whether the series is alone in the
// run or beside a series the snapshot does not hold yet.
func TestUpdateKeepsALaterPeriod(t *testing.T) {
	base, wide := wideFixture()
	e := exporter.New(nil)
	e.SetPieceSize(3)
	mustSet(t, e, base.snapshot())
	want := scrapePlain(t, e)
	older := state(wide, day("2025-02-28"), kpi.Known(99), "t2", "E1", "a", "b")
	if err := e.Update([]kpi.SeriesState{older}, base.health); err != nil {
		t.Fatal(err)
	}
	if got := scrapePlain(t, e); !bytes.Equal(got, want) {
		t.Fatalf("an older period replaced the latest:\n%s\n--- before\n%s", got, want)
	}
	added := state(wide, day("2025-02-28"), kpi.Known(3), "t9", "E1", "a", "b")
	if err := e.Update([]kpi.SeriesState{older, added}, base.health); err != nil {
		t.Fatal(err)
	}
	full := exporter.New(nil)
	full.SetPieceSize(3)
	mustSet(t, full, exporter.NewSnapshot(base.cat, append(slices.Clone(base.series), added), base.health))
	if got, want := scrapePlain(t, e), scrapePlain(t, full); !bytes.Equal(got, want) {
		t.Fatalf("beside a new series, an older period replaced the latest:\n%s\n--- want\n%s", got, want)
	}
}

// merge replaces the states of the same series, unless of an older period,
// and adds the others.
func merge(states, with []kpi.SeriesState) []kpi.SeriesState {
	out := slices.Clone(states)
	for _, w := range with {
		i := slices.IndexFunc(out, func(s kpi.SeriesState) bool {
			return s.KPI.Name == w.KPI.Name && slices.Equal(s.Labels, w.Labels)
		})
		switch {
		case i < 0:
			out = append(out, w)
		case !w.Period.Before(out[i].Period):
			out[i] = w
		}
	}
	return out
}

func TestUpdateNeedsASnapshot(t *testing.T) {
	if err := exporter.New(nil).Update(nil, nil); err != exporter.ErrNoSnapshot {
		t.Errorf("Update before Set = %v, want ErrNoSnapshot", err)
	}
}

func scrapeGzip(t *testing.T, e *exporter.Exporter) []byte {
	t.Helper()
	_, body := get(t, http.MethodGet, newServer(t, e, nil).URL, "gzip")
	return gunzip(t, body, true)
}
