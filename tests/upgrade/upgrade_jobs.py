"""Job functions stored by the upgrade test: stdlib only, so both environments load them.

Imported as the top-level module ``upgrade_jobs`` (this directory is put on
``sys.path``), so the job references pickled by django-apscheduler 0.7.0 resolve
unchanged under this package.
"""

import os


def append_line(path, label):
    """Append "<label> <phase>" to ``path``: the phase says which scheduler ran it."""
    phase = os.environ.get("UPGRADE_PHASE", "unknown")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{label} {phase}\n")


def fail(message):
    """Raise, so the scheduler records an "Error!" execution with a traceback."""
    raise ValueError(message)
