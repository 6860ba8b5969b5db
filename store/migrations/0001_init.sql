-- The KPI catalogue as the daemon last loaded it, so that SQL panels can
-- read names, units, directions and thresholds without a second copy.
CREATE TABLE kpis (
    name       text PRIMARY KEY,
    metric     text NOT NULL,
    help       text NOT NULL,
    unit       text NOT NULL,
    direction  text NOT NULL CHECK (direction IN ('lower_is_better', 'higher_is_better')),
    labels     text[] NOT NULL,
    -- NULL: no such boundary.
    amber      double precision,
    red        double precision,
    -- [{"match": {"team": "all"}, "amber": 15, "red": null}, ...]
    overrides  jsonb NOT NULL DEFAULT '[]',
    -- NULL: the KPI never goes stale.
    max_age    interval,
    -- When the definition last changed.
    updated_at timestamptz NOT NULL,
    -- When the KPI left the catalogue; NULL while it is in it. Its history stays.
    retired_at timestamptz
);

-- One row per series: a KPI and one set of label values. The id is
-- kpi.SeriesID, a hash writers compute without a round trip. No foreign key
-- to kpis: a series outlives its KPI's definition.
CREATE TABLE series (
    id         bigint PRIMARY KEY,
    kpi        text NOT NULL,
    -- {"service": "children", "team": "north"}
    labels     jsonb NOT NULL,
    first_seen timestamptz NOT NULL,
    UNIQUE (kpi, labels)
);

-- Every collector run, successful or not: what was asked of which source,
-- when, and what it changed.
CREATE TABLE runs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collector        text NOT NULL,
    source           text NOT NULL,
    query            text NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL,
    duration_seconds double precision NOT NULL,
    status           text NOT NULL CHECK (status IN ('success', 'failed')),
    -- NULL for a success.
    error            text,
    -- Observations the run carried, new (series, period) pairs it stored,
    -- and stored periods whose value it changed.
    observations     integer NOT NULL DEFAULT 0,
    inserted         integer NOT NULL DEFAULT 0,
    revised          integer NOT NULL DEFAULT 0
);
CREATE INDEX runs_collector_finished_idx ON runs (collector, finished_at DESC, id DESC);

-- The current value of every (series, period). value NULL is a missing
-- value (suppressed, empty, a division by zero), never 0. run_id is the run
-- that stored the current value.
--
-- This table and the three after it have no foreign keys: only the store
-- writes them, in the transaction that stores the run and the series, and
-- checking every row of a bulk write would make it several times slower.
-- series_id is series.id; run_id, old_run_id and new_run_id are runs.id.
CREATE TABLE observations (
    series_id bigint NOT NULL,
    period    timestamptz NOT NULL,
    value     double precision,
    run_id    bigint NOT NULL,
    PRIMARY KEY (series_id, period)
);

-- Every change of a stored value: the old and new values and the runs
-- that produced them.
CREATE TABLE revisions (
    series_id  bigint NOT NULL,
    period     timestamptz NOT NULL,
    old_value  double precision,
    new_value  double precision,
    old_run_id bigint NOT NULL,
    new_run_id bigint NOT NULL,
    revised_at timestamptz NOT NULL,
    PRIMARY KEY (series_id, period, new_run_id)
);
CREATE INDEX revisions_revised_at_idx ON revisions (revised_at);

-- The current RAG status of every series of a KPI with thresholds, with the
-- period, value and thresholds of the evaluation that set it.
CREATE TABLE series_status (
    series_id bigint PRIMARY KEY,
    status    text NOT NULL CHECK (status IN ('unknown', 'green', 'amber', 'red')),
    since     timestamptz NOT NULL,
    period    timestamptz NOT NULL,
    value     double precision,
    amber     double precision,
    red       double precision,
    run_id    bigint NOT NULL
);

-- Every status change; from_status is NULL for a series' first status.
-- carewatch changes series_status only together with a row here, and
-- follows the rows by id to know the stored statuses without reading them
-- all: change neither table by hand, and prune events only from the oldest.
CREATE TABLE status_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    series_id   bigint NOT NULL,
    at          timestamptz NOT NULL,
    period      timestamptz NOT NULL,
    from_status text CHECK (from_status IN ('unknown', 'green', 'amber', 'red')),
    to_status   text NOT NULL CHECK (to_status IN ('unknown', 'green', 'amber', 'red')),
    value       double precision,
    amber       double precision,
    red         double precision,
    run_id      bigint NOT NULL
);
CREATE INDEX status_events_series_idx ON status_events (series_id, at);
CREATE INDEX status_events_at_idx ON status_events (at);

-- Every stored value with its KPI, labels and collection time: the history
-- that Grafana panels chart, e.g.
--   SELECT period AS time, value FROM kpi_observations
--   WHERE kpi = 'children_sw_caseload_average' AND labels->>'team' = 'north'
CREATE VIEW kpi_observations AS
SELECT s.kpi, s.labels, o.series_id, o.period, o.value, o.run_id,
       r.finished_at AS collected_at, r.collector
FROM observations o
JOIN series s ON s.id = o.series_id
JOIN runs r ON r.id = o.run_id;

-- The latest period of every series with its stored status.
CREATE VIEW kpi_latest AS
SELECT s.kpi, s.labels, s.id AS series_id, o.period, o.value, o.run_id,
       r.finished_at AS collected_at, st.status, st.since AS status_since,
       st.amber, st.red
FROM series s
CROSS JOIN LATERAL (
    SELECT period, value, run_id FROM observations
    WHERE series_id = s.id ORDER BY period DESC LIMIT 1
) o
JOIN runs r ON r.id = o.run_id
LEFT JOIN series_status st ON st.series_id = s.id;
