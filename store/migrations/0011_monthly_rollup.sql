-- Each series' latest period of each calendar month, with its value and
-- run: the point a chart of years or the KPI pack shows for the month.
-- Months are Europe/London's, the zone of the councils carewatch serves.
-- At a regional hub's size (36 million daily observations) a five-year
-- chart of 65 teams reads 3,900 rows of months instead of 118,690 days.
--
-- The table holds the closed months: those before the frontier, the month
-- of the latest period stored (observations_monthly_frontier). The months
-- from the frontier on, where each run writes, are read from observations
-- (observations_monthly_of): so a run of new periods costs the rollup
-- nothing until the frontier moves to a new month, when the month it
-- leaves is rolled up once. PostgreSQL keeps both, with triggers on
-- observations in the transaction that writes them. Change them only
-- through observations.
CREATE TABLE observations_monthly (
    series_id bigint NOT NULL,
    -- The first instant of the month, in Europe/London.
    month     timestamptz NOT NULL,
    period    timestamptz NOT NULL,
    value     double precision,
    run_id    bigint NOT NULL,
    PRIMARY KEY (series_id, month)
);

-- One row: every month before it is in observations_monthly.
CREATE TABLE observations_monthly_frontier (
    month timestamptz NOT NULL
);

-- observations_month is the month of period, as observations_monthly keys
-- it.
CREATE FUNCTION observations_month(period timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN date_trunc('month', period, 'Europe/London');

-- observations_month_end is the first instant after the month that begins
-- at month.
CREATE FUNCTION observations_month_end(month timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ((month AT TIME ZONE 'Europe/London') + interval '1 month') AT TIME ZONE 'Europe/London';

-- observations_monthly_of is the months of one series, oldest first: the
-- closed months from the rollup, the open ones from observations.
-- PostgreSQL inlines it into the query that calls it.
CREATE FUNCTION observations_monthly_of(sid bigint)
    RETURNS TABLE (month timestamptz, period timestamptz, value double precision, run_id bigint)
    LANGUAGE sql STABLE AS $$
    SELECT m.month, m.period, m.value, m.run_id
    FROM observations_monthly m, observations_monthly_frontier f
    WHERE m.series_id = sid AND m.month < f.month
    UNION ALL
    SELECT * FROM (
        SELECT DISTINCT ON (observations_month(o.period))
               observations_month(o.period), o.period, o.value, o.run_id
        FROM observations o, observations_monthly_frontier f
        WHERE o.series_id = sid AND o.period >= f.month
        ORDER BY observations_month(o.period), o.period DESC
    ) open
$$;

-- observations_monthly_refresh reads the closed months (series_ids[i],
-- months[i]) again from observations.
CREATE FUNCTION observations_monthly_refresh(series_ids bigint[], months timestamptz[]) RETURNS void
    LANGUAGE sql VOLATILE AS $$
    DELETE FROM observations_monthly m
    USING unnest(series_ids, months) AS t(series_id, month)
    WHERE m.series_id = t.series_id AND m.month = t.month;
    INSERT INTO observations_monthly (series_id, month, period, value, run_id)
    SELECT t.series_id, t.month, o.period, o.value, o.run_id
    FROM (SELECT DISTINCT series_id, month FROM unnest(series_ids, months) AS t(series_id, month)) t
    CROSS JOIN LATERAL (
        SELECT period, value, run_id FROM observations
        WHERE series_id = t.series_id AND period >= t.month AND period < observations_month_end(t.month)
        ORDER BY period DESC LIMIT 1
    ) o;
$$;

-- observations_monthly_close rolls up every series' months from
-- from_month up to to_month: a probe of each series' latest period in each
-- month, once for each month the store leaves behind.
CREATE FUNCTION observations_monthly_close(from_month timestamptz, to_month timestamptz) RETURNS void
    LANGUAGE sql VOLATILE AS $$
    INSERT INTO observations_monthly AS m (series_id, month, period, value, run_id)
    SELECT s.id, g.month, o.period, o.value, o.run_id
    FROM (
        SELECT local AT TIME ZONE 'Europe/London' AS month
        FROM generate_series(from_month AT TIME ZONE 'Europe/London',
                             (to_month AT TIME ZONE 'Europe/London') - interval '1 month',
                             interval '1 month') AS local
    ) g
    CROSS JOIN series s
    CROSS JOIN LATERAL (
        SELECT period, value, run_id FROM observations
        WHERE series_id = s.id AND period >= g.month AND period < observations_month_end(g.month)
        ORDER BY period DESC LIMIT 1
    ) o
    ON CONFLICT (series_id, month) DO UPDATE
        SET period = excluded.period, value = excluded.value, run_id = excluded.run_id;
$$;

-- New observations. The usual run, new periods of the open months, only
-- reads the frontier. One that writes into closed months (a backfill)
-- updates them, each month's latest new period replacing the stored one
-- when it is as late or later. One that reaches a new month moves the
-- frontier there, rolling up the months it closes: once for each new month
-- the store reaches, in the transaction of the run that reaches it.
--
-- Writers share the frontier's row lock; one that moves it holds it alone,
-- so that it waits for the writers before it and those after it wait for
-- it, and no row of a month it closes is missed.
CREATE FUNCTION observations_monthly_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    frontier timestamptz;
    reached timestamptz;
BEGIN
    SELECT observations_month(max(period)) INTO reached FROM new_rows;
    IF reached > (SELECT f.month FROM observations_monthly_frontier f) THEN
        SELECT f.month INTO frontier FROM observations_monthly_frontier f FOR UPDATE;
    ELSE
        SELECT f.month INTO frontier FROM observations_monthly_frontier f FOR SHARE;
    END IF;
    IF reached > frontier AND frontier = '-infinity' THEN
        -- The store's first observations: these rows are all there is.
        INSERT INTO observations_monthly (series_id, month, period, value, run_id)
        SELECT DISTINCT ON (series_id, observations_month(period))
               series_id, observations_month(period), period, value, run_id
        FROM new_rows
        WHERE period < reached
        ORDER BY series_id, observations_month(period), period DESC;
    ELSE
        INSERT INTO observations_monthly AS m (series_id, month, period, value, run_id)
        SELECT DISTINCT ON (series_id, observations_month(period))
               series_id, observations_month(period), period, value, run_id
        FROM new_rows
        WHERE period < frontier
        ORDER BY series_id, observations_month(period), period DESC
        ON CONFLICT (series_id, month) DO UPDATE
            SET period = excluded.period, value = excluded.value, run_id = excluded.run_id
            WHERE excluded.period >= m.period;
        IF reached > frontier THEN
            PERFORM observations_monthly_close(frontier, reached);
        END IF;
    END IF;
    IF reached > frontier THEN
        UPDATE observations_monthly_frontier SET month = reached;
    END IF;
    RETURN NULL;
END
$$;

-- Revised observations: their closed months are read again. Revisions are
-- few (a run's changed values), so that is a few probes.
CREATE FUNCTION observations_monthly_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    frontier timestamptz;
BEGIN
    SELECT f.month INTO frontier FROM observations_monthly_frontier f FOR SHARE;
    PERFORM observations_monthly_refresh(array_agg(series_id), array_agg(month))
    FROM (SELECT series_id, observations_month(period) AS month FROM old_rows WHERE period < frontier
          UNION SELECT series_id, observations_month(period) FROM new_rows WHERE period < frontier) t;
    RETURN NULL;
END
$$;

-- Removed observations: their closed months are read again, and left out
-- when nothing is stored for them any more.
CREATE FUNCTION observations_monthly_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    frontier timestamptz;
BEGIN
    SELECT f.month INTO frontier FROM observations_monthly_frontier f FOR SHARE;
    PERFORM observations_monthly_refresh(array_agg(series_id), array_agg(month))
    FROM (SELECT DISTINCT series_id, observations_month(period) AS month FROM old_rows WHERE period < frontier) t;
    RETURN NULL;
END
$$;

CREATE TRIGGER observations_monthly_insert AFTER INSERT ON observations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION observations_monthly_insert();
CREATE TRIGGER observations_monthly_update AFTER UPDATE ON observations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION observations_monthly_update();
CREATE TRIGGER observations_monthly_delete AFTER DELETE ON observations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION observations_monthly_delete();

-- The observations stored before this migration: every month before the
-- latest period's is closed.
INSERT INTO observations_monthly_frontier
SELECT coalesce(observations_month(max(period)), '-infinity') FROM observations;
SET LOCAL work_mem = '256MB';
INSERT INTO observations_monthly (series_id, month, period, value, run_id)
SELECT DISTINCT ON (series_id, observations_month(period))
       series_id, observations_month(period), period, value, run_id
FROM observations
WHERE period < (SELECT month FROM observations_monthly_frontier)
ORDER BY series_id, observations_month(period), period DESC;

-- The panels' view of every series' months, with the columns of
-- kpi_observations.
CREATE VIEW kpi_observations_monthly AS
SELECT s.kpi, s.labels, s.id AS series_id, m.period, m.value, m.run_id,
       r.finished_at AS collected_at, r.collector
FROM series s
CROSS JOIN LATERAL observations_monthly_of(s.id) m
LEFT JOIN runs r ON r.id = m.run_id;

-- kpi_history is what a chart of the range [range_from, range_to] reads:
-- every stored value over a range of up to 183 days, and each month's
-- latest value over a longer one (about 60 points a series over five
-- years rather than 1,826). PostgreSQL inlines it into the query, so the
-- branch the range does not choose is never read, and a panel's
-- conditions on kpi and labels reach the indexes.
--   SELECT period AS time, value FROM kpi_history($__timeFrom(), $__timeTo())
--   WHERE kpi = 'children_sw_caseload_average' AND labels->>'team' = 'north'
CREATE FUNCTION kpi_history(range_from timestamptz, range_to timestamptz) RETURNS SETOF kpi_observations
    LANGUAGE sql STABLE AS $$
    SELECT * FROM kpi_observations
    WHERE range_to - range_from <= interval '183 days' AND period BETWEEN range_from AND range_to
    UNION ALL
    SELECT * FROM kpi_observations_monthly
    WHERE range_to - range_from > interval '183 days' AND period BETWEEN range_from AND range_to
$$;
