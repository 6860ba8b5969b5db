#!/bin/sh
# Creates a read-only role on the database 10-owner.sh created (see
# reader.psql, beside this script). The PostgreSQL image runs this once,
# after 10-owner.sh, as the superuser; it must stay executable, so that $0
# names it. It reads OWNER_DB_USER and OWNER_DB_NAME, and:
#   READER_DB_USER      the role to create
#   READER_DB_PASSWORD  its password
set -eu
psql -v ON_ERROR_STOP=1 --no-psqlrc \
	--username "$POSTGRES_USER" --dbname "$OWNER_DB_NAME" \
	-v reader="$READER_DB_USER" \
	-v reader_password="$READER_DB_PASSWORD" \
	-v owner="$OWNER_DB_USER" \
	-v database="$OWNER_DB_NAME" \
	-f "$(dirname "$0")/reader.psql"
