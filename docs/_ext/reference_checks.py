"""Keep the reference pages in step with the code.

Two things, both small:

* ``apscheduler-command-help``: a directive that prints the ``--help`` of a
  subcommand of ``manage.py apscheduler`` from the command's own argument parser,
  so the CLI reference cannot drift from the options the command accepts.
* A consistency check at the end of reading: every setting in ``conf.DEFAULTS``
  (with its default), every subcommand, every execution status and every system
  check id must appear on its reference page. A missing one is a warning, and the
  site is built with warnings as errors, so adding a setting without documenting
  it fails the build.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

SETTINGS_PAGE = "reference/settings"
CLI_PAGE = "reference/cli"
STATUSES_PAGE = "reference/statuses"
CHECKS_PAGE = "reference/checks"


def command_parser() -> argparse.ArgumentParser:
    from django_apscheduler.management.commands.apscheduler import Command

    return Command().create_parser("manage.py", "apscheduler")


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    for action in command_parser()._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


class CommandHelp(Directive):
    """``{apscheduler-command-help} SUBCOMMAND``: that subcommand's --help, verbatim."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        parsers = subcommand_parsers()
        if name not in parsers:
            raise self.error(f"manage.py apscheduler has no subcommand {name!r} (it has {', '.join(parsers)}).")
        # A fixed width, so the page does not depend on the terminal that built it.
        previous = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "88"
        try:
            text = parsers[name].format_help()
        finally:
            if previous is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = previous
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def _page_text(app: Sphinx, docname: str) -> str | None:
    path = Path(app.srcdir) / f"{docname}.md"
    if not path.exists():
        logger.warning("the reference page %s.md is missing", docname)
        return None
    return path.read_text(encoding="utf-8")


def _missing(app: Sphinx, docname: str, wanted: dict[str, str], what: str) -> None:
    """Warn for each ``wanted`` name whose pattern does not occur on ``docname``."""
    text = _page_text(app, docname)
    if text is None:
        return
    for name, pattern in wanted.items():
        if not re.search(pattern, text, flags=re.MULTILINE):
            logger.warning("%s %s is not documented on this page", what, name, location=docname)


def check_reference(app: Sphinx, env: Any) -> None:
    from django_apscheduler import checks, conf
    from django_apscheduler.models import DjangoJobExecution

    # A settings row reads: | `NAME` | `default` | meaning |
    _missing(
        app,
        SETTINGS_PAGE,
        {name: rf"^\| `{name}` \| `{re.escape(repr(default))}` \|" for name, default in conf.DEFAULTS.items()},
        "setting (with its default)",
    )
    _missing(
        app,
        CLI_PAGE,
        {name: rf"^```{{apscheduler-command-help}} {name}$" for name in subcommand_parsers()},
        "subcommand",
    )
    _missing(
        app,
        STATUSES_PAGE,
        {status: rf"`{re.escape(status)}`" for status, _label in DjangoJobExecution.STATUS_CHOICES},
        "execution status",
    )
    source = Path(checks.__file__).read_text(encoding="utf-8")
    check_ids = sorted(set(re.findall(r'id="(django_apscheduler\.[EW]\d{3})"', source)))
    _missing(app, CHECKS_PAGE, {check_id: rf"`{re.escape(check_id)}`" for check_id in check_ids}, "system check")


def describe_model_field(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """A model field's docstring is Django's descriptor's ("A wrapper for a deferred-loading
    field..."), which says nothing about the column: show its help text and type instead."""
    from django.db import models

    field = getattr(obj, "field", None)
    if what != "attribute" or not isinstance(field, models.Field):
        return
    kind = type(field).__name__
    extras = [kind] + (["null allowed"] if field.null else []) + (["indexed"] if field.db_index else [])
    lines[:] = [str(field.help_text or field.verbose_name).strip(), "", f"*{', '.join(extras)}*"]


def hide_model_signature(app: Sphinx, what: str, name: str, obj: Any, options: Any, signature: Any, annotation: Any) -> Any:
    """Models are not built by hand from positional arguments: drop ``(*args, **kwargs)``."""
    from django.db import models

    if what == "class" and isinstance(obj, type) and issubclass(obj, models.Model):
        return "", annotation
    return None


_DJANGO_MADE = re.compile(r"^(get_(next|previous)_by_\w+|get_\w+_display|objects|DoesNotExist|MultipleObjectsReturned)$")


def skip_django_made_members(app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool | None:
    """Leave out what Django adds to every model (managers, reverse relations, ``get_*``
    helpers): the reference lists the columns and methods this package defines."""
    from django.db.models.fields.related_descriptors import ReverseManyToOneDescriptor

    if _DJANGO_MADE.match(name) or isinstance(obj, ReverseManyToOneDescriptor):
        return True
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("apscheduler-command-help", CommandHelp)
    app.connect("autodoc-process-docstring", describe_model_field)
    app.connect("autodoc-process-signature", hide_model_signature)
    app.connect("autodoc-skip-member", skip_django_made_members)
    app.connect("env-check-consistency", check_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
