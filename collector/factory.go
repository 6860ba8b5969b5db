package collector

import (
	"errors"
	"fmt"
	"io"

	"github.com/jmoiron/sqlx"

	"github.com/carewatch/carewatch/config"
	"github.com/carewatch/carewatch/kpi"
)

// Source is a collector's source as a run needs it: the observations of a
// run, and what to record of where they came from.
type Source interface {
	kpi.Source
	// Describe returns the source's name and what is asked of it (a query,
	// a file, a request).
	Describe() (source, query string)
}

// constructor builds collector cc's source on the configured source sc,
// mapping its rows with m.
type constructor func(f *Sources, cc *config.CollectorConfig, sc *config.SourceConfig, m *Mapper) (Source, error)

// constructors maps each source type to its constructor. config refuses an
// unknown type when the file loads; every type it knows is here.
var constructors = map[string]constructor{
	config.SourceFile:      newFileSource,
	config.SourceHTTP:      newHTTPSource,
	config.SourcePostgres:  newSQLSource,
	config.SourceMySQL:     newSQLSource,
	config.SourceMariaDB:   newSQLSource,
	config.SourceSQLServer: newSQLSource,
}

// Sources builds the sources of one configuration's collectors, and owns
// what they share: one connection pool per SQL source, opened (without
// connecting) when its first collector is built. Close releases them all.
// Nothing is reached while building: a database, folder or API that is
// down fails its collectors' runs, not the daemon's start. A Sources is
// built by one goroutine; the sources it returns may run concurrently.
type Sources struct {
	cfg     *config.Config
	pools   map[string]*sqlx.DB
	closers []io.Closer
}

// NewSources returns the factory of cfg's sources; cfg has been loaded and
// validated by package config.
func NewSources(cfg *config.Config) *Sources {
	return &Sources{cfg: cfg, pools: map[string]*sqlx.DB{}}
}

// Source builds the source of collector cc.
func (f *Sources) Source(cc *config.CollectorConfig) (Source, error) {
	sc := f.cfg.SourceByName(cc.Source)
	if sc == nil {
		return nil, fmt.Errorf("collector %q: source %q is not defined", cc.Name, cc.Source)
	}
	build, ok := constructors[sc.Type]
	if !ok {
		return nil, fmt.Errorf("collector %q: source %q has the unknown type %q", cc.Name, sc.Name, sc.Type)
	}
	m, err := NewMapper(cc, f.cfg.Catalogue, f.cfg.EffectiveMaxSeries(cc))
	if err != nil {
		return nil, err
	}
	s, err := build(f, cc, sc, m)
	if err != nil {
		return nil, err
	}
	if c, ok := s.(io.Closer); ok {
		f.closers = append(f.closers, c)
	}
	return s, nil
}

// Close closes the connection pools and the sources' idle connections.
func (f *Sources) Close() error {
	var errs []error
	for _, c := range f.closers {
		errs = append(errs, c.Close())
	}
	for name, db := range f.pools {
		if err := db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("source %q: %w", name, err))
		}
	}
	f.closers, f.pools = nil, map[string]*sqlx.DB{}
	return errors.Join(errs...)
}

func newFileSource(_ *Sources, cc *config.CollectorConfig, sc *config.SourceConfig, m *Mapper) (Source, error) {
	s, err := NewFileSource(cc, sc, m)
	if err != nil {
		return nil, err // never a typed nil in the interface
	}
	return s, nil
}

func newHTTPSource(_ *Sources, cc *config.CollectorConfig, sc *config.SourceConfig, m *Mapper) (Source, error) {
	s, err := NewHTTPSource(cc, sc, m)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newSQLSource shares one pool among the collectors of a SQL source.
func newSQLSource(f *Sources, cc *config.CollectorConfig, sc *config.SourceConfig, m *Mapper) (Source, error) {
	db := f.pools[sc.Name]
	if db == nil {
		dsn, err := sc.DSN()
		if err != nil {
			return nil, fmt.Errorf("collector %q: %w", cc.Name, err)
		}
		if db, err = OpenSQL(sc, dsn); err != nil {
			return nil, fmt.Errorf("collector %q: %w", cc.Name, err)
		}
		f.pools[sc.Name] = db
	}
	s, err := NewSQLSource(SQLSourceOptions{Collector: cc, Source: sc, DB: db, Mapper: m})
	if err != nil {
		return nil, err
	}
	return s, nil
}
