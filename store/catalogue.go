package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/carewatch/carewatch/kpi"
)

// kpiRow is the JSON form in which SyncCatalogue hands the catalogue to
// PostgreSQL, one object per KPI.
type kpiRow struct {
	Name       string            `json:"name"`
	Metric     string            `json:"metric"`
	Help       string            `json:"help"`
	Unit       string            `json:"unit"`
	Direction  string            `json:"direction"`
	Labels     []string          `json:"labels"`
	Amber      *float64          `json:"amber"`
	Red        *float64          `json:"red"`
	Overrides  []overrideRow     `json:"overrides"`
	MaxAgeSecs *float64          `json:"max_age_seconds"`
	Trajectory []stepRow         `json:"trajectory"`
	OwnSeries  map[string]string `json:"own_series"`
}

// overrideRow is one override as stored in kpis.overrides.
type overrideRow struct {
	Match      map[string]string `json:"match"`
	Amber      *float64          `json:"amber"`
	Red        *float64          `json:"red"`
	Trajectory []stepRow         `json:"trajectory,omitempty"`
}

// stepRow is one step of a trajectory as stored in kpis.trajectory.
type stepRow struct {
	From  time.Time `json:"from"`
	Amber *float64  `json:"amber"`
	Red   *float64  `json:"red"`
}

func stepRows(steps []kpi.Step) []stepRow {
	out := make([]stepRow, 0, len(steps))
	for _, st := range steps {
		out = append(out, stepRow{From: st.From, Amber: thresholdPtr(st.Thresholds.Amber), Red: thresholdPtr(st.Thresholds.Red)})
	}
	return out
}

func steps(rows []stepRow) []kpi.Step {
	var out []kpi.Step
	for _, r := range rows {
		out = append(out, kpi.Step{From: r.From, Thresholds: thresholds(r.Amber, r.Red)})
	}
	return out
}

func thresholds(amber, red *float64) kpi.Thresholds {
	var t kpi.Thresholds
	if amber != nil {
		t.Amber = kpi.At(*amber)
	}
	if red != nil {
		t.Red = kpi.At(*red)
	}
	return t
}

func thresholdPtr(t kpi.Threshold) *float64 {
	if !t.Set {
		return nil
	}
	v := t.Value
	return &v
}

// SyncCatalogue makes the kpis table match c: KPIs are added or updated
// (updated_at moves only when a definition changed), and KPIs no longer in c
// are marked retired, keeping their history. Call it at start-up and after
// every configuration reload.
func (s *Store) SyncCatalogue(ctx context.Context, c kpi.Catalogue) error {
	doc, names, err := catalogueDoc(c)
	if err != nil {
		return fmt.Errorf("store: sync catalogue: %w", err)
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: sync catalogue: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	now := s.now()
	if _, err := tx.ExecContext(ctx, upsertKPIs, doc, now); err != nil {
		return fmt.Errorf("store: sync catalogue: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE kpis SET retired_at = $2
		WHERE retired_at IS NULL AND name <> ALL($1::text[])`,
		pq.Array(names), now); err != nil {
		return fmt.Errorf("store: sync catalogue: retiring KPIs: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: sync catalogue: %w", err)
	}
	return nil
}

// AddToCatalogue adds the KPIs of c that the kpis table has never held,
// and changes nothing else: neither a stored definition nor which KPIs are
// retired. A one-off command (carewatch collect) calls it, so that its
// configuration, whatever it holds, leaves the daemon's catalogue alone.
func (s *Store) AddToCatalogue(ctx context.Context, c kpi.Catalogue) error {
	doc, _, err := catalogueDoc(c)
	if err != nil {
		return fmt.Errorf("store: add to catalogue: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, insertKPIs+` ON CONFLICT (name) DO NOTHING`, doc, s.now()); err != nil {
		return fmt.Errorf("store: add to catalogue: %w", err)
	}
	return nil
}

const insertKPIs = `
		INSERT INTO kpis AS k (name, metric, help, unit, direction, labels, amber, red, overrides, max_age,
		                       trajectory, own_series, updated_at)
		SELECT x.name, x.metric, x.help, x.unit, x.direction, x.labels, x.amber, x.red,
		       x.overrides, make_interval(secs => x.max_age_seconds), x.trajectory, x.own_series, $2
		FROM jsonb_to_recordset($1::jsonb) AS x(
			name text, metric text, help text, unit text, direction text, labels text[],
			amber double precision, red double precision, overrides jsonb, max_age_seconds double precision,
			trajectory jsonb, own_series jsonb)`

const upsertKPIs = insertKPIs + `
		ON CONFLICT (name) DO UPDATE SET
			metric = excluded.metric, help = excluded.help, unit = excluded.unit,
			direction = excluded.direction, labels = excluded.labels,
			amber = excluded.amber, red = excluded.red, overrides = excluded.overrides,
			max_age = excluded.max_age, trajectory = excluded.trajectory, own_series = excluded.own_series,
			updated_at = excluded.updated_at, retired_at = NULL
		WHERE k.retired_at IS NOT NULL
		   OR (k.metric, k.help, k.unit, k.direction, k.labels, k.amber, k.red, k.overrides, k.max_age,
		       k.trajectory, k.own_series)
		      IS DISTINCT FROM
		      (excluded.metric, excluded.help, excluded.unit, excluded.direction, excluded.labels,
		       excluded.amber, excluded.red, excluded.overrides, excluded.max_age,
		       excluded.trajectory, excluded.own_series)`

// catalogueDoc is c as the JSON document the queries above read, with its
// KPI names.
func catalogueDoc(c kpi.Catalogue) (string, []string, error) {
	rows := make([]kpiRow, 0, len(c))
	names := make([]string, 0, len(c))
	for _, name := range c.Names() {
		k := c[name]
		if k == nil {
			return "", nil, fmt.Errorf("KPI %q has no definition", name)
		}
		r := kpiRow{
			Name:       k.Name,
			Metric:     k.MetricName(),
			Help:       k.Help,
			Unit:       k.Unit,
			Direction:  k.Direction.String(),
			Labels:     k.Labels,
			Amber:      thresholdPtr(k.Thresholds.Amber),
			Red:        thresholdPtr(k.Thresholds.Red),
			Overrides:  make([]overrideRow, 0, len(k.Overrides)),
			Trajectory: stepRows(k.Trajectory),
			OwnSeries:  k.OwnSeries,
		}
		if r.Labels == nil {
			r.Labels = []string{}
		}
		for _, o := range k.Overrides {
			r.Overrides = append(r.Overrides, overrideRow{
				Match: o.Match,
				Amber: thresholdPtr(o.Thresholds.Amber),
				Red:   thresholdPtr(o.Thresholds.Red),
				Trajectory: func() []stepRow {
					if len(o.Trajectory) == 0 {
						return nil
					}
					return stepRows(o.Trajectory)
				}(),
			})
		}
		if k.MaxAge > 0 {
			secs := k.MaxAge.Seconds()
			r.MaxAgeSecs = &secs
		}
		rows = append(rows, r)
		names = append(names, k.Name)
	}
	doc, err := json.Marshal(rows)
	if err != nil {
		return "", nil, err
	}
	return string(doc), names, nil
}
