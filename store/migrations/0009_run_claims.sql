-- Each scheduled tick of a collector, claimed by the replica that runs it,
-- so that replicas sharing the store run every tick exactly once, however
-- late one's clock or start. Claims older than a day are pruned.
CREATE TABLE run_claims (
    collector  text NOT NULL,
    tick       timestamptz NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collector, tick)
);
CREATE INDEX run_claims_tick_idx ON run_claims (tick);
