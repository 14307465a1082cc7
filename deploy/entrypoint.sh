#!/bin/sh
# The image's entry point, run by tini (PID 1). With YYAI_MIGRATE=1 (the default: right for a single
# container) it first migrates the database and creates the admin user (password from
# DJANGO_SUPERUSER_PASSWORD, else generated into $YYAI_DATA_DIR/admin-password). With several replicas set YYAI_MIGRATE=0 and migrate once
# instead (compose: the `migrate` service; Kubernetes: deploy/k8s/migrate-job.yaml): two migrations at once
# on one database race. Then it execs the command, so that the server itself receives SIGTERM.
set -eu
if [ "${YYAI_MIGRATE:-1}" = "1" ]; then
    python manage.py migrate --noinput
    python manage.py ensure_admin
fi
exec "$@"
