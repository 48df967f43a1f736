"""``manage.py apscheduler <subcommand>``: operate the scheduler.

Deliberately not named ``runapscheduler``: that is the name of the command users
wrote themselves in django-apscheduler's quick-start, and an app command of the
same name would shadow theirs depending on INSTALLED_APPS order.
"""

import logging

from django.core.management.base import BaseCommand, CommandError

from django_apscheduler import runner
from django_apscheduler.database import TablesMissing


class Command(BaseCommand):
    help = "Run and operate the django-apscheduler scheduler."

    def add_arguments(self, parser):
        subcommands = parser.add_subparsers(dest="subcommand", metavar="subcommand", required=True)
        start = subcommands.add_parser(
            "start",
            help="Run a scheduler in the foreground with the jobs declared in each app's jobs.py.",
        )
        start.add_argument("--workers", type=int, default=10, help="Threads that run jobs (default 10).")

    def handle(self, *args, subcommand, **options):
        _show_lifecycle_logs(options["verbosity"])
        if subcommand == "start":
            if options["workers"] < 1:
                raise CommandError("--workers must be at least 1")
            try:
                runner.run_scheduler(max_workers=options["workers"])
            except TablesMissing as error:
                raise CommandError(str(error)) from None


def _show_lifecycle_logs(verbosity: int) -> None:
    """Print the scheduler's lifecycle lines unless the project configured these loggers itself."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    for name in ("apscheduler", "django_apscheduler"):
        log = logging.getLogger(name)
        if log.handlers:
            continue
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(level)
        log.propagate = False
