#!/usr/bin/env bash
# Set up and run the whole test suite: ruff and mypy first, then a check of the
# built wheel, then a build of the documentation site, then the tests on SQLite,
# PostgreSQL and MariaDB with the newest Django LTS (django-apscheduler 0.7.0's own
# suite included, once), then on SQLite and PostgreSQL with Django 4.2 LTS (the
# browser tests with SQLite only, the real-process tests with PostgreSQL only).
#
#   ./scripts/test.sh                 everything
#   ./scripts/test.sh -k history      extra arguments go to every pytest run
#
# Databases: PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) and MariaDB
# on 127.0.0.1:3306 (user root, empty password); Redis on 127.0.0.1:6379 for the
# Celery tests. Locally an unreachable server is skipped with a message; under
# CI=true it is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"

make_venv() {  # make_venv DIR EXTRAS EXTRA_PIP_ARGS...
    local dir="$1" extras="$2"; shift 2
    if [ ! -x "$dir/bin/python" ]; then
        "$PYTHON" -m venv "$dir"
    fi
    "$dir/bin/pip" install --quiet --disable-pip-version-check -e ".[$extras]" "$@"
}

reachable() {  # reachable HOST PORT
    "$PYTHON" - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
except OSError:
    sys.exit(1)
PY
}

declare -a SUMMARY=()
FAILED=0

# The Celery tests need Redis on 127.0.0.1:6379 as their broker: required under CI,
# skipped with a message locally (tests/processes/test_celery.py decides the same way).
if ! reachable 127.0.0.1 6379; then
    if [ "${CI:-}" = "true" ]; then
        echo "ERROR: Redis is not reachable on 127.0.0.1:6379 (required under CI for the Celery tests)." >&2
        SUMMARY+=("Redis: unreachable"); FAILED=1
    else
        echo "Note: Redis is not reachable on 127.0.0.1:6379; the Celery tests will be skipped."
    fi
fi

run_suite() {  # run_suite VENV DB LABEL PYTEST_ARGS...
    local venv="$1" db="$2" label="$3"; shift 3
    case "$db" in
        postgres) host=127.0.0.1; port=5432 ;;
        mariadb)  host=127.0.0.1; port=3306 ;;
        *)        host=""; port="" ;;
    esac
    if [ -n "$host" ] && ! reachable "$host" "$port"; then
        if [ "${CI:-}" = "true" ]; then
            echo "ERROR: $db is not reachable on $host:$port (required under CI)." >&2
            SUMMARY+=("$label: database unreachable"); FAILED=1; return
        fi
        echo "Skipping $label: $db is not reachable on $host:$port."
        SUMMARY+=("$label: skipped (database unreachable)"); return
    fi
    echo "=== $label ==="
    if DB="$db" "$venv/bin/python" -m pytest -p no:cacheprovider "$@"; then
        SUMMARY+=("$label: passed")
    else
        SUMMARY+=("$label: FAILED"); FAILED=1
    fi
}

# The admin's browser tests drive Debian's Chromium (never a downloaded browser).
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "Installing Debian's chromium for the browser tests…"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "Note: /usr/bin/chromium is missing; browser tests will be skipped (run: apt-get install chromium)."
    fi
fi

make_venv .venv test,tasks-db,lint,docs
make_venv .venv-django42 test "Django>=4.2,<5.0"

echo "=== ruff and mypy ==="
if .venv/bin/ruff check . && .venv/bin/mypy; then
    SUMMARY+=("ruff and mypy: clean")
else
    SUMMARY+=("ruff and mypy: FAILED"); FAILED=1
fi

echo "=== the built wheel ==="
if PYTHON="$PYTHON" ./scripts/check_wheel.sh; then
    SUMMARY+=("wheel (build, twine check, quick-start from the installed wheel): passed")
else
    SUMMARY+=("wheel: FAILED"); FAILED=1
fi

echo "=== the documentation site ==="
# Built once, before the suites: the browser test of the site opens this build
# (tests/browser/test_docs_browser.py) instead of building it in every suite.
if ./scripts/docs.sh; then
    SUMMARY+=("documentation site (sphinx-build -W -n, reference checked against the code, README links): built")
else
    SUMMARY+=("documentation site: FAILED"); FAILED=1
fi

run_suite .venv sqlite "Django $(.venv/bin/python -c 'import django; print(django.get_version())') + SQLite" "$@"
run_suite .venv postgres "Django $(.venv/bin/python -c 'import django; print(django.get_version())') + PostgreSQL" "$@"
run_suite .venv mariadb "Django $(.venv/bin/python -c 'import django; print(django.get_version())') + MariaDB" "$@"
# Django 4.2: every unit and integration test on both databases; the slow kinds once
# each, to keep CI well inside its time limit: the browser tests (the 4.2 admin's own
# templates and styles) with SQLite, the real-process tests with PostgreSQL. The
# upgrade tests build their own environment with 0.7.0; once per Django is enough.
run_suite .venv-django42 sqlite "Django $(.venv-django42/bin/python -c 'import django; print(django.get_version())') + SQLite" -m "not upgrade and not processes" "$@"
run_suite .venv-django42 postgres "Django $(.venv-django42/bin/python -c 'import django; print(django.get_version())') + PostgreSQL" -m "not upgrade and not browser" "$@"

echo
echo "=== Summary ==="
printf '%s\n' "${SUMMARY[@]}"
exit "$FAILED"
