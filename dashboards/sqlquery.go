package dashboards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
)

// PostgresType is the plugin id of Grafana's PostgreSQL datasource.
const PostgresType = "grafana-postgresql-datasource"

// SQLQuery is a query of Grafana's PostgreSQL datasource, which the
// Foundation SDK has no type for: raw SQL in code mode, as a table or a
// time series.
type SQLQuery struct {
	RefID      string                `json:"refId"`
	Hide       *bool                 `json:"hide,omitempty"`
	Datasource *common.DataSourceRef `json:"datasource,omitempty"`
	RawSQL     string                `json:"rawSql"`
	RawQuery   bool                  `json:"rawQuery"`
	EditorMode string                `json:"editorMode"`
	// Format is "table" or "time_series" (whose first column is time).
	Format string `json:"format"`
}

// ImplementsDataqueryVariant marks SQLQuery as a query of a panel.
func (SQLQuery) ImplementsDataqueryVariant() {}

// DataqueryType is the datasource plugin the query is for.
func (SQLQuery) DataqueryType() string { return PostgresType }

// Equals reports whether other is the same query.
func (q SQLQuery) Equals(other variants.Dataquery) bool {
	o, ok := other.(SQLQuery)
	return ok && reflect.DeepEqual(q, o)
}

// Validate refuses a query Grafana could not run.
func (q SQLQuery) Validate() error {
	if q.RawSQL == "" {
		return errors.New("a PostgreSQL query without SQL")
	}
	if q.Format != "table" && q.Format != "time_series" {
		return errors.New(`a PostgreSQL query's format is "table" or "time_series"`)
	}
	return nil
}

// SQLQueryBuilder builds an SQLQuery, as the SDK's builders build theirs.
type SQLQueryBuilder struct{ q SQLQuery }

var _ cog.Builder[variants.Dataquery] = (*SQLQueryBuilder)(nil)

// NewSQLQueryBuilder starts a query of sql on the store's datasource, as a
// table.
func NewSQLQueryBuilder(sql string) *SQLQueryBuilder {
	ds := storeDatasource()
	return &SQLQueryBuilder{q: SQLQuery{RefID: "A", Datasource: &ds, RawSQL: sql, RawQuery: true, EditorMode: "code", Format: "table"}}
}

// RefID sets the query's reference.
func (b *SQLQueryBuilder) RefID(id string) *SQLQueryBuilder { b.q.RefID = id; return b }

// TimeSeries makes the query a time series: its first column is time.
func (b *SQLQueryBuilder) TimeSeries() *SQLQueryBuilder { b.q.Format = "time_series"; return b }

// Build returns the query, or why Grafana could not run it.
func (b *SQLQueryBuilder) Build() (variants.Dataquery, error) {
	if err := b.q.Validate(); err != nil {
		return nil, err
	}
	return b.q, nil
}

// SQLQueryVariant tells the SDK's runtime how to read an SQLQuery back from
// a dashboard's JSON (strictly: no field it does not know), so that the
// SDK's own checks can read carewatch's dashboards whole.
func SQLQueryVariant() variants.DataqueryConfig {
	read := func(strict bool) func([]byte) (variants.Dataquery, error) {
		return func(raw []byte) (variants.Dataquery, error) {
			var q SQLQuery
			dec := json.NewDecoder(bytes.NewReader(raw))
			if strict {
				dec.DisallowUnknownFields()
			}
			if err := dec.Decode(&q); err != nil {
				return nil, fmt.Errorf("a PostgreSQL query: %w", err)
			}
			return q, nil
		}
	}
	return variants.DataqueryConfig{Identifier: PostgresType, DataqueryUnmarshaler: read(false), StrictDataqueryUnmarshaler: read(true)}
}
