-- Targets that move on dates, and benchmarks told apart from the council's
-- own series.
--
-- kpis.trajectory: [{"from": "2026-04-01T00:00:00+01:00", "amber": 18, "red": 22}, ...]
-- in date order; a boundary that is null carries on from before. Each
-- element of kpis.overrides may have a "trajectory" of the same form.
-- kpis.own_series: {"scope": "council"}, the labels of the council's own
-- series; NULL when every series is its own.
ALTER TABLE kpis
    ADD COLUMN trajectory jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN own_series jsonb;

-- Why a series changed status: 'value' (its value crossed a threshold) or
-- 'target' (the thresholds moved, by a trajectory's step or a new
-- catalogue, and the value judged by the old ones would have kept its
-- status). NULL for a series' first status and for events recorded before
-- this column.
ALTER TABLE status_events
    ADD COLUMN reason text CHECK (reason IN ('value', 'target'));
