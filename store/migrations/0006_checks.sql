-- The checks a run failed before it was published: for a run rejected by a
-- check, that check among them (the run is 'failed' and its error names
-- it); for a published run, its warnings. An empty list when every check
-- passed.
--   [{"check": "range", "action": "reject", "kpi": "children_sw_vacancy_ratio",
--     "failures": 1, "message": "collector \"hr\": check range: ..."}]
ALTER TABLE runs ADD COLUMN checks jsonb NOT NULL DEFAULT '[]';
