// Package config is carewatch's YAML configuration: the schema, its defaults,
// strict decoding and validation whose messages name the path, the line and
// the rule broken.
package config

import (
	"regexp"
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/robfig/cron/v3"

	"github.com/carewatch/carewatch/kpi"
)

// Config is a whole configuration file.
type Config struct {
	Global     Global            `yaml:"global"`
	Store      StoreConfig       `yaml:"store"`
	KPIs       []KPIConfig       `yaml:"kpis"`
	Sources    []SourceConfig    `yaml:"sources"`
	Collectors []CollectorConfig `yaml:"collectors"`
	// Report is the KPI pack; nil serves a pack of every KPI.
	Report *ReportConfig `yaml:"report"`

	// Catalogue is built from KPIs by Load.
	Catalogue kpi.Catalogue `yaml:"-"`
	// Location is Global.Timezone, loaded.
	Location *time.Location `yaml:"-"`
}

// Global holds settings every collector inherits.
type Global struct {
	// Timezone of schedules and of run dates; Europe/London by default.
	Timezone string `yaml:"timezone"`
	// DefaultTimeout bounds a collector run, retries included.
	DefaultTimeout Duration `yaml:"default_timeout"`
	// DefaultRetries is how many times a failed run is tried again within its timeout.
	DefaultRetries *int `yaml:"default_retries"`
	// DefaultRetryBackoff is the first wait before a retry; it doubles each time.
	DefaultRetryBackoff Duration `yaml:"default_retry_backoff"`
	// DefaultMaxSeries bounds the series one collector run may produce.
	DefaultMaxSeries int `yaml:"default_max_series"`
}

// StoreConfig says where the PostgreSQL system of record is. The DSN comes
// from an environment variable or a file, never from the config text.
type StoreConfig struct {
	DSNEnv          string   `yaml:"dsn_env"`
	DSNFile         string   `yaml:"dsn_file"`
	MaxOpenConns    int      `yaml:"max_open_conns"`
	ConnMaxLifetime Duration `yaml:"conn_max_lifetime"`
	// Timeout bounds every round trip to the store that has no deadline of
	// its own (connecting, a health check): a store that does not answer
	// within it counts as down. Zero means DefaultStoreTimeout.
	Timeout Duration `yaml:"timeout"`
	// RunsRetention is how long the records of runs are kept; older ones
	// are deleted unless a stored value, revision or status came from them
	// or they are their collector's latest run or success. Zero keeps every
	// run.
	RunsRetention Duration `yaml:"runs_retention"`
}

// DefaultStoreTimeout is the store's timeout when the config is silent.
const DefaultStoreTimeout = 10 * time.Second

// EffectiveTimeout is the store's timeout, its default filled in.
func (s *StoreConfig) EffectiveTimeout() time.Duration {
	if s.Timeout > 0 {
		return time.Duration(s.Timeout)
	}
	return DefaultStoreTimeout
}

// KPIConfig is one KPI of the catalogue.
type KPIConfig struct {
	Name       string           `yaml:"name"`
	Help       string           `yaml:"help"`
	Unit       string           `yaml:"unit"`
	Direction  string           `yaml:"direction"`
	Labels     []string         `yaml:"labels"`
	Thresholds ThresholdsConfig `yaml:"thresholds"`
	// Trajectory moves the thresholds on dates: an improvement plan, e.g.
	// from 2026-04-01 amber 18 and red 22 instead of 20 and 24.
	Trajectory []StepConfig     `yaml:"trajectory"`
	Overrides  []OverrideConfig `yaml:"overrides"`
	// OwnSeries holds the label values of the council's own series, e.g.
	// {scope: council}; the KPI's other series are benchmarks (statistical
	// neighbours, region, England), which keep their value and status but
	// raise no KPI alert.
	OwnSeries map[string]string `yaml:"own_series"`
	// MaxAge is how long after its period a value stays fresh; unset means never stale.
	MaxAge Duration `yaml:"max_age"`
	// Expect is what the KPI's values must look like before a run publishes them.
	Expect *KPIExpect `yaml:"expect"`
}

// ThresholdsConfig holds optional amber and red boundaries.
type ThresholdsConfig struct {
	Amber *float64 `yaml:"amber"`
	Red   *float64 `yaml:"red"`
}

// OverrideConfig replaces thresholds for the series whose labels match.
type OverrideConfig struct {
	Match      map[string]string `yaml:"match"`
	Thresholds ThresholdsConfig  `yaml:"thresholds"`
	Trajectory []StepConfig      `yaml:"trajectory"`
}

// StepConfig is one step of a trajectory: from the date From (YYYY-MM-DD,
// in global.timezone) on, the boundaries it sets replace those in force
// before; a boundary it leaves out carries on.
type StepConfig struct {
	From       string           `yaml:"from"`
	Thresholds ThresholdsConfig `yaml:"thresholds"`
}

// SourceConfig is a place collectors read from.
type SourceConfig struct {
	Name string `yaml:"name"`
	// Type is the kind of source: "postgres", "mysql" (or "mariadb"),
	// "sqlserver", "file" or "http".
	Type string `yaml:"type"`
	// DSNEnv or DSNFile give a SQL source's connection string.
	DSNEnv           string   `yaml:"dsn_env"`
	DSNFile          string   `yaml:"dsn_file"`
	MaxOpenConns     int      `yaml:"max_open_conns"`
	ConnMaxLifetime  Duration `yaml:"conn_max_lifetime"`
	StatementTimeout Duration `yaml:"statement_timeout"`

	// Directory is the folder a file source reads, and the only one: a path
	// that leaves it, through ".." or a symbolic link, is refused. A relative
	// directory is relative to the configuration file; Load makes it absolute.
	Directory string `yaml:"directory"`
	// MaxFileSize bounds one file of a file source (for XLSX, its unpacked
	// size too); DefaultMaxFileSize if unset.
	MaxFileSize ByteSize `yaml:"max_file_size"`

	// BaseURL is where an http source's collectors send their requests. Their
	// URLs are resolved against it and must stay on its scheme and host: the
	// source's credentials are for that host only.
	BaseURL string `yaml:"base_url"`
	// HTTPConfig is an http source's client configuration, in the format
	// Prometheus and Alertmanager use: authorization (credentials_file),
	// basic_auth (password_file), oauth2 (client credentials), tls_config,
	// proxy_url. Secrets come from files, never from the config text.
	HTTPConfig *HTTPClientConfig `yaml:"http_config"`
	// MaxBodySize bounds one response of an http source; DefaultMaxBodySize if unset.
	MaxBodySize ByteSize `yaml:"max_body_size"`
}

// HTTPClientConfig is the Prometheus ecosystem's HTTP client configuration
// (github.com/prometheus/common/config). It is decoded by carewatch's strict
// decoder, so an unknown key inside it is refused like anywhere else, and it
// is validated by Load with messages that name its path.
type HTTPClientConfig struct {
	promconfig.HTTPClientConfig `yaml:",inline"`
}

// UnmarshalYAML starts from Prometheus's defaults (follow redirects, HTTP/2)
// and leaves validation to Load, which can name the path of a problem.
func (c *HTTPClientConfig) UnmarshalYAML(unmarshal func(any) error) error {
	type plain promconfig.HTTPClientConfig
	c.HTTPClientConfig = promconfig.DefaultHTTPClientConfig
	return unmarshal((*plain)(&c.HTTPClientConfig))
}

// CollectorConfig is one scheduled collection from one source.
type CollectorConfig struct {
	Name   string `yaml:"name"`
	Source string `yaml:"source"`
	// Schedule is a five-field cron expression or a descriptor (@daily, @every 15m).
	Schedule     string   `yaml:"schedule"`
	RunOnStart   bool     `yaml:"run_on_start"`
	Timeout      Duration `yaml:"timeout"`
	Retries      *int     `yaml:"retries"`
	RetryBackoff Duration `yaml:"retry_backoff"`
	MaxSeries    int      `yaml:"max_series"`
	// Query is the SQL a SQL source runs. For a file or an http source it
	// is optional: SQL (SQLite's dialect) run over the tables the collector
	// read, whose result rows are then mapped instead of the tables' rows.
	Query string `yaml:"query"`
	// File says which files of a file source the collector reads, and how.
	File *FileInput `yaml:"file"`
	// HTTP says what the collector asks of an http source, and how to read
	// the answer.
	HTTP *HTTPInput `yaml:"http"`
	// Filters keep only the rows of a file or an HTTP answer that pass every
	// one of them (a SQL query filters with WHERE).
	Filters []RowFilter `yaml:"filters"`
	// Benchmark keeps the rows of a DfE statistics file that describe one
	// council, its statistical neighbours, its region and England, and says
	// which is which.
	Benchmark *Benchmark `yaml:"benchmark"`
	// PeriodColumn names the column holding the period each row describes;
	// without it, the period is the run's date.
	PeriodColumn string `yaml:"period_column"`
	// PeriodFormat is how the period column writes a period, in YYYY, MM,
	// MMM, DD tokens (YYYY, YYYY-MM, DD/MM/YYYY, MMM YYYY). Without it a period
	// is an ISO date (2025-03-31), a UK date (31/03/2025) or an RFC 3339 time.
	PeriodFormat string `yaml:"period_format"`
	// PeriodDay is the day that a period written without one describes: MM-DD
	// for a year (09-30, the DfE workforce census date), DD or "end" for a
	// month. By default, the first day.
	PeriodDay string          `yaml:"period_day"`
	Metrics   []MetricMapping `yaml:"metrics"`
	// Expect is what the collector's runs must look like before they are
	// published: row counts, and files not cut short.
	Expect *CollectorExpect `yaml:"expect"`

	// ParsedSchedule is Schedule, parsed by Load.
	ParsedSchedule cron.Schedule `yaml:"-"`
	// Period is PeriodFormat with PeriodDay, parsed by Load; nil without a
	// period_format.
	Period *PeriodSpec `yaml:"-"`
}

// TableOptions say how to read a table out of a file or an HTTP answer.
type TableOptions struct {
	// Format is csv or xlsx for a file (by default, from its extension), csv
	// or json for an HTTP answer (json by default).
	Format string `yaml:"format"`
	// Encoding is the CSV text's character set: utf-8 (the default; a
	// byte-order mark is skipped), windows-1252 (what Excel on Windows saves
	// as "CSV") or iso-8859-1.
	Encoding string `yaml:"encoding"`
	// Delimiter separates CSV fields: "," by default, or ";", "\t", "|".
	Delimiter string `yaml:"delimiter"`
	// Sheet is the XLSX worksheet read, by name; by default the first.
	Sheet string `yaml:"sheet"`
	// HeaderRow is the row (counted from 1, as a spreadsheet shows it) that
	// holds the column names; the rows above it are ignored. 1 by default.
	HeaderRow int `yaml:"header_row"`
}

// FileInput says which files of a file source a collector reads. Exactly
// one of Path and Glob is given; both are relative to the source's directory.
type FileInput struct {
	// Path is one file.
	Path string `yaml:"path"`
	// Glob is a pattern (*, ?, [a-z]) matching several files, of which Select
	// picks the newest (by modification time) or all.
	Glob string `yaml:"glob"`
	// Select is "newest" (the default) or "all".
	Select string `yaml:"select"`
	// Table names the table a query reads the file's rows from; every file
	// the collector reads goes into it, one after the other, so their
	// columns must agree. By default each file is a table of its own, named
	// after the file (see TableName).
	Table string `yaml:"table"`
	// Sheets are the worksheets of an XLSX workbook read, each as a table
	// named after the sheet (see TableName); Sheet reads one.
	Sheets []string `yaml:"sheets"`
	// NamePattern is a regular expression matched against each file's name;
	// its named groups, such as (?P<month>\d{4}-\d{2}), become columns of the
	// file's rows, so that a period or a label can come from the name.
	NamePattern string `yaml:"name_pattern"`
	// NameRegexp is NamePattern, compiled by Load.
	NameRegexp   *regexp.Regexp `yaml:"-"`
	TableOptions `yaml:",inline"`
}

// HTTPInput says what a collector asks of an http source.
type HTTPInput struct {
	// URL is resolved against the source's base_url.
	URL string `yaml:"url"`
	// Method is GET (the default) or POST.
	Method string `yaml:"method"`
	// Body is sent with a POST.
	Body string `yaml:"body"`
	// Headers are sent with the request; credentials belong in the source's
	// http_config, never here.
	Headers map[string]string `yaml:"headers"`
	// Rows is the JSON path to the rows of a JSON answer, e.g. $.data[*].
	Rows string `yaml:"rows"`
	// Fields maps a column name to a JSON path from the row, e.g.
	// {la_code: location.code}; without it, each row object's own keys are
	// the columns.
	Fields map[string]string `yaml:"fields"`
	// Table names the table a query reads the answer's rows from;
	// DefaultHTTPTable by default.
	Table string `yaml:"table"`
	// RowsPath and FieldPaths are Rows and Fields, parsed by Load.
	RowsPath     *JSONPath            `yaml:"-"`
	FieldPaths   map[string]*JSONPath `yaml:"-"`
	TableOptions `yaml:",inline"`
}

// RowFilter keeps the rows whose column passes one test; values are
// compared with spaces trimmed, ignoring case.
type RowFilter struct {
	Column    string   `yaml:"column"`
	Equals    *string  `yaml:"equals"`
	NotEquals *string  `yaml:"not_equals"`
	In        []string `yaml:"in"`
	NotIn     []string `yaml:"not_in"`
}

// Benchmark selects, from a file in the DfE open-data layout (the columns
// geographic_level, country_code, country_name, region_code, region_name,
// old_la_code, new_la_code, la_name that every Explore Education Statistics
// file has), the rows of one council, its statistical neighbours, its region
// and England, and adds to each the columns benchmark_scope (council,
// stat_neighbour, region or england), benchmark_code (the ONS code of the
// council, region or country) and benchmark_name.
type Benchmark struct {
	// Council is the council compared, by its ONS code (E09000008) or its
	// DfE code (306).
	Council string `yaml:"council"`
	// NeighboursFile is DfE's statistical neighbour model
	// (sn_model_2025_wide.csv, or the April 2021 groupings), in the source's
	// directory.
	NeighboursFile string `yaml:"neighbours_file"`
	// Region is the code of the region to compare with. By default it is the
	// region the file gives the council's own rows: for a London borough,
	// Inner or Outer London (E12000007 is London as a whole).
	Region string `yaml:"region"`
}

// MetricMapping turns a column of the collector's rows into a KPI's values.
type MetricMapping struct {
	KPI         string `yaml:"kpi"`
	ValueColumn string `yaml:"value_column"`
	// ValueExpression computes the value from the row's columns instead:
	// numbers, column names (in double quotes if they hold spaces), + - * /
	// and brackets, e.g. vacancy_fte / (vacancy_fte + inpost_fte). A missing
	// operand or a division by zero makes the value missing.
	ValueExpression string `yaml:"value_expression"`
	// Expression is ValueExpression, parsed by Load.
	Expression *Expr `yaml:"-"`
	// Percent says the value column holds percentages (14.2 or 14.2%), to be
	// stored as the 0-1 ratio (0.142). A cell written with % is a percentage
	// whatever this says.
	Percent bool `yaml:"percent"`
	// ValueMap turns words into numbers, e.g. {Good: 3, Requires improvement: 2},
	// matched ignoring case and surrounding spaces.
	ValueMap map[string]float64 `yaml:"value_map"`
	// Labels maps a KPI label to the column its value comes from.
	Labels map[string]string `yaml:"labels"`
	// StaticLabels gives KPI labels a fixed value.
	StaticLabels map[string]string `yaml:"static_labels"`
	// PeriodColumn overrides the collector's period column for this metric.
	PeriodColumn string `yaml:"period_column"`
}

// Defaults applied by Load where the file is silent.
const (
	DefaultTimezone     = "Europe/London"
	DefaultTimeout      = Duration(5 * time.Minute)
	DefaultRetries      = 2
	DefaultRetryBackoff = Duration(5 * time.Second)
	DefaultMaxSeries    = 10000
	DefaultStoreDSNEnv  = "CAREWATCH_DATABASE_URL"
	DefaultMaxFileSize  = ByteSize(64 << 20)
	DefaultMaxBodySize  = ByteSize(16 << 20)
	// DefaultHTTPTable is the table a query reads an HTTP answer from.
	DefaultHTTPTable = "response"
)

// EffectiveMaxFileSize is the source's file size limit or the default.
func (s *SourceConfig) EffectiveMaxFileSize() int64 {
	if s.MaxFileSize > 0 {
		return int64(s.MaxFileSize)
	}
	return int64(DefaultMaxFileSize)
}

// EffectiveMaxBodySize is the source's response size limit or the default.
func (s *SourceConfig) EffectiveMaxBodySize() int64 {
	if s.MaxBodySize > 0 {
		return int64(s.MaxBodySize)
	}
	return int64(DefaultMaxBodySize)
}

// EffectiveTimeout is the collector's timeout or the global default.
func (c *Config) EffectiveTimeout(cc *CollectorConfig) time.Duration {
	if cc.Timeout > 0 {
		return time.Duration(cc.Timeout)
	}
	return time.Duration(c.Global.DefaultTimeout)
}

// EffectiveRetries is the collector's retry count or the global default.
func (c *Config) EffectiveRetries(cc *CollectorConfig) int {
	if cc.Retries != nil {
		return *cc.Retries
	}
	if c.Global.DefaultRetries != nil {
		return *c.Global.DefaultRetries
	}
	return DefaultRetries
}

// EffectiveRetryBackoff is the collector's first retry wait or the global default.
func (c *Config) EffectiveRetryBackoff(cc *CollectorConfig) time.Duration {
	if cc.RetryBackoff > 0 {
		return time.Duration(cc.RetryBackoff)
	}
	return time.Duration(c.Global.DefaultRetryBackoff)
}

// EffectiveMaxSeries is the collector's series limit or the global default.
func (c *Config) EffectiveMaxSeries(cc *CollectorConfig) int {
	if cc.MaxSeries > 0 {
		return cc.MaxSeries
	}
	return c.Global.DefaultMaxSeries
}

// SourceByName returns the named source, or nil.
func (c *Config) SourceByName(name string) *SourceConfig {
	for i := range c.Sources {
		if c.Sources[i].Name == name {
			return &c.Sources[i]
		}
	}
	return nil
}
