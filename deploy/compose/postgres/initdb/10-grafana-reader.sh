#!/bin/sh
# Creates the read-only role that Grafana's PostgreSQL datasource logs in
# as. The PostgreSQL image runs this once, when it initialises an empty data
# volume, as the superuser it creates from POSTGRES_USER (the role carewatch
# writes as, which therefore owns the store's tables).
set -e
psql -v ON_ERROR_STOP=1 --no-psqlrc \
	--username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v reader="$GRAFANA_DB_USER" \
	-v reader_password="$GRAFANA_DB_PASSWORD" \
	-v owner="$POSTGRES_USER" \
	-v database="$POSTGRES_DB" \
	-f /docker-entrypoint-initdb.d/grafana-reader.psql
