// Package config is carewatch's YAML configuration: the schema, its defaults,
// strict decoding and validation whose messages name the path, the line and
// the rule broken.
package config

import (
	"time"

	"github.com/prometheus/common/model"
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
	DefaultTimeout model.Duration `yaml:"default_timeout"`
	// DefaultRetries is how many times a failed run is tried again within its timeout.
	DefaultRetries *int `yaml:"default_retries"`
	// DefaultRetryBackoff is the first wait before a retry; it doubles each time.
	DefaultRetryBackoff model.Duration `yaml:"default_retry_backoff"`
	// DefaultMaxSeries bounds the series one collector run may produce.
	DefaultMaxSeries int `yaml:"default_max_series"`
}

// StoreConfig says where the PostgreSQL system of record is. The DSN comes
// from an environment variable or a file, never from the config text.
type StoreConfig struct {
	DSNEnv          string         `yaml:"dsn_env"`
	DSNFile         string         `yaml:"dsn_file"`
	MaxOpenConns    int            `yaml:"max_open_conns"`
	ConnMaxLifetime model.Duration `yaml:"conn_max_lifetime"`
}

// KPIConfig is one KPI of the catalogue.
type KPIConfig struct {
	Name       string           `yaml:"name"`
	Help       string           `yaml:"help"`
	Unit       string           `yaml:"unit"`
	Direction  string           `yaml:"direction"`
	Labels     []string         `yaml:"labels"`
	Thresholds ThresholdsConfig `yaml:"thresholds"`
	Overrides  []OverrideConfig `yaml:"overrides"`
	// MaxAge is how long after its period a value stays fresh; unset means never stale.
	MaxAge model.Duration `yaml:"max_age"`
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
}

// SourceConfig is a place collectors read from.
type SourceConfig struct {
	Name string `yaml:"name"`
	// Type is the kind of source: "postgres".
	Type string `yaml:"type"`
	// DSNEnv or DSNFile give a SQL source's connection string.
	DSNEnv           string         `yaml:"dsn_env"`
	DSNFile          string         `yaml:"dsn_file"`
	MaxOpenConns     int            `yaml:"max_open_conns"`
	ConnMaxLifetime  model.Duration `yaml:"conn_max_lifetime"`
	StatementTimeout model.Duration `yaml:"statement_timeout"`
}

// CollectorConfig is one scheduled collection from one source.
type CollectorConfig struct {
	Name   string `yaml:"name"`
	Source string `yaml:"source"`
	// Schedule is a five-field cron expression or a descriptor (@daily, @every 15m).
	Schedule     string         `yaml:"schedule"`
	RunOnStart   bool           `yaml:"run_on_start"`
	Timeout      model.Duration `yaml:"timeout"`
	Retries      *int           `yaml:"retries"`
	RetryBackoff model.Duration `yaml:"retry_backoff"`
	MaxSeries    int            `yaml:"max_series"`
	// Query is the SQL a SQL source runs.
	Query string `yaml:"query"`
	// PeriodColumn names the column holding the period each row describes;
	// without it, the period is the run's date.
	PeriodColumn string          `yaml:"period_column"`
	Metrics      []MetricMapping `yaml:"metrics"`

	// ParsedSchedule is Schedule, parsed by Load.
	ParsedSchedule cron.Schedule `yaml:"-"`
}

// MetricMapping turns a column of the collector's rows into a KPI's values.
type MetricMapping struct {
	KPI         string `yaml:"kpi"`
	ValueColumn string `yaml:"value_column"`
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
	DefaultTimeout      = model.Duration(5 * time.Minute)
	DefaultRetries      = 2
	DefaultRetryBackoff = model.Duration(5 * time.Second)
	DefaultMaxSeries    = 10000
	DefaultStoreDSNEnv  = "CAREWATCH_DATABASE_URL"
)

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
