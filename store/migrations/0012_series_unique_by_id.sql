-- A series is unique by its id alone: the id is kpi.SeriesID, a hash of the
-- KPI and its label names and values taken in name order (since 0007), so
-- one (kpi, labels) always has one id, and the primary key keeps each
-- stored once. The unique index on (kpi, labels) checked that again for
-- every new series, comparing jsonb documents at every level of the
-- index: it made registering a million new series several times slower
-- than storing their observations. Panels and the store find a KPI's
-- series by kpi only, which this index serves as well.
ALTER TABLE series DROP CONSTRAINT series_kpi_labels_key;
CREATE INDEX series_kpi_idx ON series (kpi);
