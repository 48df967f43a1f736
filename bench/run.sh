#!/usr/bin/env bash
# The one command: build (or reuse) the two virtual environments, then run every
# scenario against this package and against django-apscheduler 0.7.0, side by side,
# and write docs/benchmarks.md. Options are passed to bench/harness.py
# (`bench/run.sh --help`), e.g. `bench/run.sh --repeat 3 --scenarios burst,lag`.
#
#   bench/run.sh --quick                  a couple of minutes while developing: the floor scenarios
#                                         (add rate, burst, lag) and the hand-off to Celery workers
#                                         with small sizes; writes no docs
#   bench/run.sh --envs ours ...          measure only this package (0.7.0's environment
#                                         is then neither built nor used; ratios show n/a)
#   bench/run.sh --profile DIR --envs ours --scenarios burst,lag
#                                         run this package's burst and lag schedulers under
#                                         py-spy: DIR/<label>.txt (raw samples) and
#                                         DIR/<label>.top.txt (top functions). Profiling
#                                         slows the process, so such a run writes no docs.
#
# The "one million stored jobs" scenario is its own command (about 5 minutes per database):
#   bench/.venvs/ours/bin/python bench/million.py --db postgres,sqlite   (then `million.py render`)
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
PYTHON="${PYTHON:-python3}"
VENVS="$BENCH/.venvs"
PIP_OPTS=(--quiet --disable-pip-version-check --retries 2 --timeout 30)

# The package itself (editable) plus the database drivers, the hand-off scenario's
# queues (Celery with Redis, which must listen on 127.0.0.1:6379; django-tasks with
# its database backend), matplotlib and py-spy (the bench extra); it also runs the harness.
OURS_REQS=("-e" "$ROOT[bench,postgres,mysql,celery,tasks]" "django-tasks-db>=0.12")
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

# 0.7.0's environment serves --envs orig and sqlalchemy (all unless --envs says otherwise);
# the floor (memory: APScheduler's MemoryJobStore) runs in this package's environment.
ENVS="ours,orig,sqlalchemy,memory"
ARGS=("$@")
for ((i = 0; i < ${#ARGS[@]}; i++)); do
    case "${ARGS[i]}" in
        --envs) ENVS="${ARGS[i + 1]:-}" ;;
        --envs=*) ENVS="${ARGS[i]#--envs=}" ;;
    esac
done

mkdir -p "$VENVS"
build_venv ours "${OURS_REQS[@]}"
ORIG_OPTS=()
if [[ ",$ENVS," == *,orig,* || ",$ENVS," == *,sqlalchemy,* ]]; then
    build_venv orig "${ORIG_REQS[@]}"
    ORIG_OPTS=(--orig-python "$VENVS/orig/bin/python")
fi

exec "$VENVS/ours/bin/python" "$BENCH/harness.py" --ours-python "$VENVS/ours/bin/python" "${ORIG_OPTS[@]}" "$@"
