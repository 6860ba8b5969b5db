-- Every collector's run counts, latest run and latest success, kept by each
-- run's own transaction, so that collector health is read in a step per
-- collector however long the runs table grows, and stays right when old runs
-- are pruned (store.runs_retention): the counters never go down.
CREATE TABLE collector_health (
    collector       text PRIMARY KEY,
    runs            bigint NOT NULL,
    failures        bigint NOT NULL,
    last_run_id     bigint NOT NULL,
    last_success_id bigint
);

INSERT INTO collector_health (collector, runs, failures, last_run_id, last_success_id)
SELECT c.collector, c.runs, c.failures, l.id, ok.id
FROM (
    SELECT collector, count(*) AS runs, count(*) FILTER (WHERE status = 'failed') AS failures
    FROM runs GROUP BY collector
) c
CROSS JOIN LATERAL (
    SELECT id FROM runs WHERE collector = c.collector ORDER BY finished_at DESC, id DESC LIMIT 1
) l
LEFT JOIN LATERAL (
    SELECT id FROM runs WHERE collector = c.collector AND status = 'success'
    ORDER BY finished_at DESC, id DESC LIMIT 1
) ok ON true;

-- Pruning keeps every run something points at; these find the pointers.
CREATE INDEX revisions_old_run_idx ON revisions (old_run_id);
CREATE INDEX revisions_new_run_idx ON revisions (new_run_id);
CREATE INDEX series_status_run_idx ON series_status (run_id);
CREATE INDEX status_events_run_idx ON status_events (run_id);
CREATE INDEX runs_finished_idx ON runs (finished_at);
