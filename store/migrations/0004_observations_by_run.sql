-- The observations a run wrote, so that a replica told of the run reads
-- that run's series only rather than every series. Rows of one run share
-- one run_id, so the index stays small (its entries are deduplicated) and
-- a bulk write appends to its right edge.
CREATE INDEX observations_run_idx ON observations (run_id);
