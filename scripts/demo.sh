#!/usr/bin/env bash
# Set up and run the demo: a Django site on SQLite, a live scheduler running its
# jobs, and the admin to watch them. Ctrl+C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
PORT="${PORT:-8000}"
ADMIN_USER="${ADMIN_USER:-admin}"
ADMIN_PASSWORD="${ADMIN_PASSWORD:-admin}"

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[metrics]"

manage() { .venv/bin/python example/manage.py "$@"; }

manage migrate --verbosity 0
DJANGO_SUPERUSER_PASSWORD="$ADMIN_PASSWORD" manage shell -c "
from django.contrib.auth import get_user_model
User = get_user_model()
if not User.objects.filter(username='$ADMIN_USER').exists():
    User.objects.create_superuser('$ADMIN_USER', 'admin@example.com', '$ADMIN_PASSWORD')
" >/dev/null

manage apscheduler start &
SCHEDULER_PID=$!
trap 'kill -TERM $SCHEDULER_PID 2>/dev/null; wait $SCHEDULER_PID 2>/dev/null' EXIT INT TERM

cat <<MSG

  Demo running. Open http://127.0.0.1:$PORT/admin/  and log in as  $ADMIN_USER / $ADMIN_PASSWORD
  Monitoring: http://127.0.0.1:$PORT/health/ (JSON) and http://127.0.0.1:$PORT/metrics/ (Prometheus)
  (the scheduler's log is below; Ctrl+C stops the site and the scheduler)

MSG
manage runserver "127.0.0.1:$PORT" --noreload
