#!/bin/sh
# First start of the compose database only (docker-entrypoint-initdb.d): the audit role, and the login
# the API connects as. The login is a member of il6_app and owns nothing, so it can never step out of
# the role into altering the audit trail; the migrations run as the owner (POSTGRES_USER).
set -eu
psql -v ON_ERROR_STOP=1 -v service_password="$IL6_SERVICE_PASSWORD" \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE il6_app NOLOGIN;
CREATE ROLE il6_service LOGIN PASSWORD :'service_password' IN ROLE il6_app;
SQL
