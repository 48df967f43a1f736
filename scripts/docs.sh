#!/usr/bin/env bash
# Build the documentation site from docs/ into docs/_build/html, and check links.
#
#   ./scripts/docs.sh            build with the .venv the test command makes
#   VENV=path ./scripts/docs.sh  build with another environment
#
# Warnings are errors, and nitpicky: a broken cross-reference, a link to a missing
# page or heading, a page in no table of contents, or a setting, subcommand, status
# or system check the code has and the reference lacks (docs/_ext) fails the build.
# README.md's relative links, which Sphinx never sees, are checked first.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import sphinx, myst_parser, furo' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -e ".[docs]"
fi

"$VENV/bin/python" scripts/check_links.py README.md CHANGELOG.md
# -E: read every page afresh, so a warning is reported on every build, not only
# on the one that first read the page.
"$VENV/bin/python" -m sphinx -E -W --keep-going -n -q -b html docs docs/_build/html
echo "Documentation built: docs/_build/html/index.html"
