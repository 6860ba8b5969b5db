-- Officers' commentary on KPIs, one narrative per KPI (optionally narrowed
-- to a label set, e.g. one team) per calendar month, as the KPI pack shows
-- it. Rows are only ever added: a new comment for the same KPI, labels and
-- month replaces the old one in the pack, and the old one stays here.
CREATE TABLE comments (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kpi        text NOT NULL,
    -- {} is the KPI as a whole; {"team": "north"} one team's series.
    labels     jsonb NOT NULL DEFAULT '{}',
    month      date NOT NULL CHECK (extract(day FROM month) = 1),
    body       text NOT NULL CHECK (body <> ''),
    written_at timestamptz NOT NULL
);
CREATE INDEX comments_month_idx ON comments (month, kpi, labels, written_at DESC, id DESC);
