#!/usr/bin/env bash
# Set up and run the demo: a Django site on SQLite, a live scheduler running its
# jobs, and the admin to watch them. Ctrl+C stops both.
#
#   ./scripts/demo.sh             the scheduler runs the jobs in its own threads
#   ./scripts/demo.sh --workers   the scheduler hands every fire to a worker process
#                                 (Django tasks' database backend, `manage.py db_worker`);
#                                 the admin's history shows which worker ran each one
set -euo pipefail
cd "$(dirname "$0")/.."

WORKERS=0
for arg in "$@"; do
    case "$arg" in
        --workers) WORKERS=1 ;;
        *) echo "usage: $0 [--workers]" >&2; exit 2 ;;
    esac
done

PYTHON="${PYTHON:-python3}"
PORT="${PORT:-8000}"
ADMIN_USER="${ADMIN_USER:-admin}"
ADMIN_PASSWORD="${ADMIN_PASSWORD:-admin}"

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if [ "$WORKERS" = 1 ]; then
    .venv/bin/pip install --quiet --disable-pip-version-check -e ".[tasks-db]"
    export DEMO_WORKERS=1
else
    .venv/bin/pip install --quiet --disable-pip-version-check -e .
fi

manage() { .venv/bin/python example/manage.py "$@"; }

manage migrate --verbosity 0
DJANGO_SUPERUSER_PASSWORD="$ADMIN_PASSWORD" manage shell -c "
from django.contrib.auth import get_user_model
User = get_user_model()
if not User.objects.filter(username='$ADMIN_USER').exists():
    User.objects.create_superuser('$ADMIN_USER', 'admin@example.com', '$ADMIN_PASSWORD')
" >/dev/null

manage apscheduler start &
PIDS="$!"
if [ "$WORKERS" = 1 ]; then
    manage db_worker --interval 0.2 &
    PIDS="$PIDS $!"
fi
trap 'kill -TERM $PIDS 2>/dev/null; wait $PIDS 2>/dev/null' EXIT INT TERM

cat <<MSG

  Demo running. Open http://127.0.0.1:$PORT/admin/  and log in as  $ADMIN_USER / $ADMIN_PASSWORD
  (the scheduler's log is below; Ctrl+C stops the site and the scheduler)

MSG
manage runserver "127.0.0.1:$PORT" --noreload
