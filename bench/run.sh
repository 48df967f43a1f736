#!/usr/bin/env bash
# The one command: build (or reuse) the two virtual environments, then run every
# scenario against this package and against django-apscheduler 0.7.0, side by side,
# and write docs/benchmarks.md. Options are passed to bench/harness.py
# (`bench/run.sh --help`), e.g. `bench/run.sh --repeat 3 --lag-duration 30`.
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
PYTHON="${PYTHON:-python3}"
VENVS="$BENCH/.venvs"
PIP_OPTS=(--quiet --disable-pip-version-check --retries 2 --timeout 30)

# The package itself (editable) plus the database drivers and matplotlib, which
# also runs the harness.
OURS_REQS=("-e" "$ROOT[bench,postgres,mysql]")
# The original, from PyPI. It has the same import name, hence its own environment.
# SQLAlchemy is for APScheduler's own SQLAlchemyJobStore, the reference store.
ORIG_REQS=("django-apscheduler==0.7.0" "Django>=4.2,<5.3" "APScheduler>=3.10,<4"
           "psycopg[binary]" "PyMySQL" "SQLAlchemy>=2")

build_venv() {  # name, requirements...
    local name="$1"; shift
    local venv="$VENVS/$name"
    local want
    want="$("$PYTHON" -c 'import sys; print(sys.version.split()[0])') $*"
    if [[ -x "$venv/bin/python" && -f "$venv/.complete" && "$(cat "$venv/.complete")" == "$want" ]]; then
        return
    fi
    echo "bench: building $venv" >&2
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install "${PIP_OPTS[@]}" "$@"
    printf '%s' "$want" > "$venv/.complete"
}

mkdir -p "$VENVS"
build_venv ours "${OURS_REQS[@]}"
build_venv orig "${ORIG_REQS[@]}"

exec "$VENVS/ours/bin/python" "$BENCH/harness.py" \
    --ours-python "$VENVS/ours/bin/python" --orig-python "$VENVS/orig/bin/python" "$@"
