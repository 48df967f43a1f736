#!/usr/bin/env bash
# Build the sdist and wheel, check their metadata (twine check), install the wheel in
# a fresh virtual environment and run the quick-start against it from outside the
# checkout: a template, migration or module missing from the package data fails here.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d -t dja-wheel-check-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

"$PYTHON" -m venv "$WORK/build-env"
"$WORK/build-env/bin/pip" install --quiet --disable-pip-version-check build twine
"$WORK/build-env/bin/python" -m build --outdir "$WORK/dist" . >/dev/null
"$WORK/build-env/bin/twine" check --strict "$WORK"/dist/*

"$PYTHON" -m venv "$WORK/site-env"
"$WORK/site-env/bin/pip" install --quiet --disable-pip-version-check "$WORK"/dist/*.whl
cp scripts/wheel_check/*.py "$WORK/"
(cd "$WORK" && PYTHONPATH="$WORK" "$WORK/site-env/bin/python" quickstart.py)
