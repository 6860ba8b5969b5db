-- What each run read, exactly: for a file its path in the source's folder,
-- size, modification time and SHA-256; for an HTTP answer the URL that
-- answered, its size and SHA-256; for a SQL source the query. A JSON array
-- of {kind, name, size, modified, sha256}; empty for runs recorded before.
ALTER TABLE runs ADD COLUMN reads jsonb NOT NULL DEFAULT '[]';
