"""Sphinx configuration of the documentation site (built by scripts/docs.sh).

The pages are Markdown (MyST); the API reference comes from the package's
docstrings, so Django is configured here with the smallest settings that let the
models import. ``_ext/reference_checks.py`` keeps the hand-written reference pages
honest: a setting, subcommand, status or system check the code has and the pages
lack is a warning, and the build runs with warnings as errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE / "_ext")]

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django_apscheduler",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
        TIME_ZONE="UTC",
        SECRET_KEY="the documentation build signs nothing",
    )
    django.setup()

from django_apscheduler import __version__ as _package_version  # noqa: E402

project = "django-apscheduler"
author = "django-apscheduler contributors"
copyright = "django-apscheduler contributors"  # noqa: A001 - Sphinx's name for it
release = _package_version
version = _package_version

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "reference_checks",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]

# Headings up to ### get anchors, so `page.md#a-heading` links are checked too.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# Every cross-reference must resolve: a broken link or a missing page fails the build.
nitpicky = True
# Names from Django, APScheduler and the standard library have no pages here (the
# build is offline, so there is no intersphinx); everything of ours must resolve.
nitpick_ignore_regex = [
    (r"py:.*", r"(django|apscheduler|datetime|collections|typing|pickle|threading|asyncio|logging|celery|kombu)\b.*"),
    # Celery's and APScheduler's names as their docstrings spell them, unqualified.
    (r"py:.*", r"(Celery|Task|MaxInstancesReachedError|BaseExecutor)"),
    (r"py:.*", r"(F|T|P|R|Any|Callable|Awaitable|Iterable|Mapping|Sequence|BaseScheduler|BaseTrigger|Job|Scope|Receive|Send|ASGIApp)"),
    (r"py:.*", r"(optional|callable|int|str|float|bool|None|dict|list|tuple)"),
    # Type variables of decorators.
    (r"py:class", r"django_apscheduler\.\w+\.[A-Z]"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = f"django-apscheduler {release}"
html_static_path: list[str] = []
# The Markdown sources stay browsable on a code host; the site need not ship them.
html_copy_source = False
html_show_sourcelink = False
