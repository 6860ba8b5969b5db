package kpi

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Source produces the observations of one collector run. It reads its source
// (a database, a file, an HTTP API) within ctx's deadline and changes nothing there.
type Source interface {
	Collect(ctx context.Context, run RunInfo) ([]Observation, error)
}

// RunInfo tells a source about the run it is collecting for.
type RunInfo struct {
	Collector string
	// At is when the run started; a source whose rows carry no period uses
	// the date of At (in the collector's time zone) as the period.
	At       time.Time
	Location *time.Location
	// PeriodStart and PeriodEnd bound the period a backfill run collects
	// (carewatch collect NAME --from --to), both days included; they are
	// zero for a scheduled run, whose source collects the current period.
	PeriodStart, PeriodEnd time.Time
	// Provenance, when not nil, receives what the run reads, as it reads it.
	Provenance *Provenance
}

// Read is one thing a run read: a file, an HTTP answer, a query.
type Read struct {
	// Kind is ReadFile, ReadHTTP or ReadSQL.
	Kind string `json:"kind"`
	// Name is the file's path inside its source's folder, the URL that
	// answered (after redirects), or the query run.
	Name string `json:"name"`
	// Size is the bytes read; ModTime a file's modification time; SHA256
	// the hex SHA-256 of the bytes read: together they say which version
	// of a file or answer the run's numbers came from.
	Size    int64     `json:"size,omitempty"`
	ModTime time.Time `json:"modified,omitzero"`
	SHA256  string    `json:"sha256,omitempty"`
}

// The kinds of Read.
const (
	ReadFile = "file"
	ReadHTTP = "http"
	ReadSQL  = "sql"
)

// Provenance gathers the reads of one run. It is safe for concurrent use,
// and a nil *Provenance records nothing.
type Provenance struct {
	mu    sync.Mutex
	reads []Read
}

// Add records a read.
func (p *Provenance) Add(r Read) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reads = append(p.reads, r)
}

// Reads returns the reads recorded so far, in the order they were made.
func (p *Provenance) Reads() []Read {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reads)
}

// Backfill reports whether the run collects past periods.
func (r RunInfo) Backfill() bool { return !r.PeriodEnd.IsZero() }

// Run is the record of one collector run, successful or not.
type Run struct {
	Collector string
	// Source names where the data came from (a source name, a file, a URL);
	// Query is what was asked of it. Together they make every stored number
	// traceable.
	Source string
	Query  string
	// Reads is exactly what the run read: each file with its size,
	// modification time and SHA-256, each HTTP answer's URL, each query.
	Reads      []Read
	StartedAt  time.Time
	FinishedAt time.Time
	// Err is the run's failure, or nil for a success.
	Err error
	// Checks lists the checks the run failed: for a run rejected by a
	// check, that one among them; for a published run, its warnings.
	Checks []CheckFailure
}

// RunResult says what a successful run changed in the store.
type RunResult struct {
	RunID int64
	// Observations is the number of observations the run carried.
	Observations int
	// Inserted counts new (series, period) pairs; Revised counts stored
	// periods whose value changed; Unchanged counts the rest.
	Inserted  int
	Revised   int
	Unchanged int
	// StatusChanges lists the series whose latest status changed.
	StatusChanges []StatusChange
}

// StatusChange is a series moving from one RAG status to another.
type StatusChange struct {
	KPI        *KPI
	Labels     []string
	Period     time.Time
	From, To   Status
	Value      Value
	Thresholds Thresholds
	At         time.Time
	// Reason is ReasonValue or ReasonTarget; empty for a series' first status.
	Reason string
}

// Why a series changed status.
const (
	// ReasonValue: the value crossed a threshold.
	ReasonValue = "value"
	// ReasonTarget: the thresholds moved (a trajectory's step, a new
	// catalogue) and the value, judged by the old ones, kept its status.
	ReasonTarget = "target"
)

// SeriesState is the latest stored value of one series with its status: what
// the exporter's snapshot is made of.
type SeriesState struct {
	KPI         *KPI
	Labels      []string
	Period      time.Time
	Value       Value
	Status      Status
	Thresholds  Thresholds
	CollectedAt time.Time
	RunID       int64
}

// CollectorHealth is what the store knows of one collector's runs.
type CollectorHealth struct {
	Collector string
	Runs      int64
	Failures  int64
	// LastRunOK is whether the latest finished run succeeded.
	LastRunOK       bool
	LastRunAt       time.Time
	LastRunDuration time.Duration
	// LastSuccessAt is zero if the collector never succeeded.
	LastSuccessAt time.Time
	// LastObservations is the number of observations the latest successful run wrote.
	LastObservations int64
	LastError        string
	// LastRunChecks are the checks the latest finished run failed.
	LastRunChecks []CheckFailure
}
