#!/bin/sh
# Creates the role an application logs in as and the database it owns, so
# that the application never needs the superuser. The PostgreSQL image runs
# this once, when it initialises an empty data volume, as the superuser
# (POSTGRES_USER), which nothing uses afterwards. It reads:
#   OWNER_DB_USER      the role to create: it owns OWNER_DB_NAME and the
#                      schema public in it, and may create tables there
#   OWNER_DB_PASSWORD  its password
#   OWNER_DB_NAME      the database to create
set -eu
psql -v ON_ERROR_STOP=1 --no-psqlrc \
	--username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
	-v owner="$OWNER_DB_USER" \
	-v owner_password="$OWNER_DB_PASSWORD" \
	-v database="$OWNER_DB_NAME" <<'SQL'
CREATE ROLE :"owner" LOGIN PASSWORD :'owner_password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE DATABASE :"database" OWNER :"owner";
-- Only the roles granted CONNECT (the owner, and the reader that
-- 20-reader.sh creates) log in to it.
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
\connect :"database"
-- The owner of the database owns the schema public (PostgreSQL 15 and
-- later); nobody else creates objects in it.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
