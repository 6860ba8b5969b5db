-- The rollup's INSERT trigger (0011) made every run's COPY keep all its
-- rows in a transition table and read them twice, even in the usual run
-- of new periods in the open months, which touches no closed month: it
-- cost a run of a million observations more than half its time. The
-- writer knows its run's earliest and latest periods, so it calls
-- observations_monthly_insert_run after writing instead, and the closed
-- months are read from the run's own rows (by observations_run_idx) only
-- when the run reaches into them. Revisions and deletions keep their
-- triggers.
DROP TRIGGER observations_monthly_insert ON observations;
DROP FUNCTION observations_monthly_insert();

-- observations_monthly_insert_run keeps the rollup for the observations
-- run inserted, whose periods lie in [earliest, latest]. The usual run,
-- new periods of the open months, only reads the frontier. One that
-- writes into closed months (a backfill) updates them, each month's latest
-- new period replacing the stored one when it is as late or later. One
-- that reaches a new month moves the frontier there, rolling up the months
-- it closes: once for each new month the store reaches, in the transaction
-- of the run that reaches it.
--
-- Writers share the frontier's row lock; one that moves it holds it alone,
-- so that it waits for the writers before it and those after it wait for
-- it, and no row of a month it closes is missed.
CREATE FUNCTION observations_monthly_insert_run(run bigint, earliest timestamptz, latest timestamptz)
    RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    frontier timestamptz;
    reached timestamptz := observations_month(latest);
BEGIN
    IF reached > (SELECT f.month FROM observations_monthly_frontier f) THEN
        SELECT f.month INTO frontier FROM observations_monthly_frontier f FOR UPDATE;
    ELSE
        SELECT f.month INTO frontier FROM observations_monthly_frontier f FOR SHARE;
    END IF;
    IF frontier = '-infinity' THEN
        -- The store's first observations: this run's rows are all there
        -- is, and the months before the one it reaches are closed.
        INSERT INTO observations_monthly (series_id, month, period, value, run_id)
        SELECT DISTINCT ON (series_id, observations_month(period))
               series_id, observations_month(period), period, value, run_id
        FROM observations
        WHERE run_id = run AND period < reached AND earliest < reached
        ORDER BY series_id, observations_month(period), period DESC;
    ELSIF earliest < frontier THEN
        INSERT INTO observations_monthly AS m (series_id, month, period, value, run_id)
        SELECT DISTINCT ON (series_id, observations_month(period))
               series_id, observations_month(period), period, value, run_id
        FROM observations
        WHERE run_id = run AND period < frontier
        ORDER BY series_id, observations_month(period), period DESC
        ON CONFLICT (series_id, month) DO UPDATE
            SET period = excluded.period, value = excluded.value, run_id = excluded.run_id
            WHERE excluded.period >= m.period;
    END IF;
    IF reached > frontier THEN
        IF frontier <> '-infinity' THEN
            PERFORM observations_monthly_close(frontier, reached);
        END IF;
        UPDATE observations_monthly_frontier SET month = reached;
    END IF;
END
$$;
