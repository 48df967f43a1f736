"""``manage.py apscheduler <subcommand>``: run and operate the scheduler.

Deliberately not named ``runapscheduler``: that is the name of the command users
wrote themselves in django-apscheduler's quick-start, and an app command of the
same name would shadow theirs depending on INSTALLED_APPS order.

The command only parses arguments and prints; the work lives in the package
(``runner``, ``operations``, ``runnow``, ``heartbeat``).
"""

import logging

from django.core.management.base import BaseCommand, CommandError

from django_apscheduler import limits, operations, runner, runnow
from django_apscheduler.database import SchemaNotReady, ensure_schema_ready
from django_apscheduler.models import DjangoJobExecution, SchedulerInstance
from django_apscheduler.querysets import is_alive
from django_apscheduler.util import get_local_dt_format

ONE_WEEK = 7 * 24 * 3600


class Command(BaseCommand):
    help = "Run and operate the django-apscheduler scheduler."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="subcommand", metavar="subcommand", required=True)
        start = commands.add_parser("start", help="Run a scheduler in the foreground with the jobs of each app's jobs.py.")
        start.add_argument("--workers", type=int, default=10, help=f"Threads that run jobs (default 10, at most {limits.MAX_WORKERS}).")
        commands.add_parser("list", help="List stored jobs: trigger, next run, state, last status.")
        run = commands.add_parser("run", help="Run jobs once now, leaving their schedules unchanged.")
        run.add_argument("job_ids", nargs="+", metavar="JOB_ID")
        run.add_argument("--timeout", type=float, default=None, help="Seconds to wait for results (default: APSCHEDULER_RUN_NOW_TIMEOUT).")
        pause = commands.add_parser("pause", help="Pause jobs (running schedulers obey at once).")
        pause.add_argument("job_ids", nargs="+", metavar="JOB_ID")
        resume = commands.add_parser("resume", help="Resume paused jobs at their next fire time.")
        resume.add_argument("job_ids", nargs="+", metavar="JOB_ID")
        prune = commands.add_parser("prune", help="Delete execution history older than --max-age seconds.")
        prune.add_argument("--max-age", type=int, default=ONE_WEEK, help=f"Seconds (default {ONE_WEEK}, one week).")
        commands.add_parser("status", help="Show schedulers; exit 1 when none is alive (for health checks).")
        resign = commands.add_parser(
            "resign",
            help="Sign stored job states with the current SECRET_KEY (after a key change: the old key in "
            "SECRET_KEY_FALLBACKS).",
        )
        resign.add_argument(
            "job_ids", nargs="*", metavar="JOB_ID", help="Only these jobs (default: every job; required with --trust-unverified)."
        )
        resign.add_argument(
            "--trust-unverified",
            action="store_true",
            help="Also sign states that no key verifies (unsigned, or signed with a key that is gone). Only for "
            "rows whose origin you checked: signing them lets them be unpickled, which runs code they name.",
        )

    def handle(self, *args, subcommand, **options):
        _show_lifecycle_logs(options["verbosity"])
        try:
            ensure_schema_ready()
            getattr(self, f"handle_{subcommand}")(**options)
        except (SchemaNotReady, operations.UnknownJob, ValueError) as error:
            raise CommandError(str(error)) from None

    def handle_start(self, workers, **options):
        runner.run_scheduler(max_workers=limits.check_workers(workers))

    def handle_list(self, **options):
        jobs = operations.list_jobs()
        if not jobs:
            self.stdout.write("No jobs are stored.")
            return
        rows = [("ID", "TRIGGER", "NEXT RUN", "STATE", "LAST STATUS")]
        for job in jobs:
            next_run = get_local_dt_format(job.next_run_time) if job.next_run_time else "-"
            rows.append((job.id, job.trigger, next_run, job.state, job.last_status or "-"))
        self._write_table(rows)

    def handle_run(self, job_ids, timeout, **options):
        if timeout is not None:
            limits.check_seconds(timeout, name="--timeout", maximum=limits.MAX_RUN_NOW_TIMEOUT)
        operations.require_jobs(job_ids)
        results = runnow.run_jobs_now(job_ids, timeout=timeout)
        failed = False
        for result in results:
            execution = result.execution
            if result.error:
                failed = True
                self.stderr.write(f"{result.job_id}: not run: {result.error}")
            elif execution is None or execution.status not in DjangoJobExecution.FINAL_STATUSES:
                failed = True
                self.stderr.write(f"{result.job_id}: still running when the wait ended; see the admin for its result")
            elif execution.status == DjangoJobExecution.SUCCESS:
                self.stdout.write(f"{result.job_id}: {execution.status} in {execution.duration} s{_worker(execution)}")
            else:
                failed = True
                detail = f": {execution.exception}" if execution.exception else ""
                self.stderr.write(f"{result.job_id}: {execution.status}{detail}{_worker(execution)}")
        if failed:
            raise CommandError("Not every job ran successfully.", returncode=1)

    def handle_pause(self, job_ids, **options):
        operations.require_jobs(job_ids)
        for job_id in job_ids:
            operations.pause_job(job_id)
            self.stdout.write(f"{job_id}: paused")

    def handle_resume(self, job_ids, **options):
        operations.require_jobs(job_ids)
        for job_id in job_ids:
            next_run_time = operations.resume_job(job_id)
            self.stdout.write(f"{job_id}: resumed, next run {get_local_dt_format(next_run_time)}")

    def handle_prune(self, max_age, **options):
        limits.check_seconds(max_age, name="--max-age", maximum=limits.MAX_HISTORY_AGE)
        deleted = DjangoJobExecution.objects.delete_old_job_executions(max_age)
        self.stdout.write(f"Deleted {deleted} execution(s) older than {max_age} seconds.")

    def handle_status(self, **options):
        schedulers = list(SchedulerInstance.objects.order_by("-last_heartbeat")[:50])
        alive = [s for s in schedulers if is_alive(s)]
        rows = [("HOST", "PID", "VERSION", "STARTED", "LAST HEARTBEAT", "STATE")]
        for instance in schedulers:
            state = "alive" if instance in alive else ("stopped" if instance.stopped else "dead")
            rows.append(
                (
                    instance.host,
                    str(instance.pid),
                    instance.version,
                    get_local_dt_format(instance.started),
                    get_local_dt_format(instance.last_heartbeat),
                    state,
                )
            )
        if len(rows) > 1:
            self._write_table(rows)
        if not alive:
            raise CommandError("No scheduler is alive.", returncode=1)
        self.stdout.write(f"{len(alive)} scheduler(s) alive.")

    def handle_resign(self, job_ids, trust_unverified, **options):
        if trust_unverified and not job_ids:
            raise CommandError("--trust-unverified signs only the jobs named: give their ids (see `apscheduler list`).")
        report = operations.resign_jobs(job_ids, trust_unverified=trust_unverified)
        for job_id in report.resigned:
            reason = report.broken.get(job_id)
            suffix = f", but it {reason}" if reason else ""
            self.stdout.write(f"{job_id}: signed with the current SECRET_KEY{suffix}")
        for job_id in report.refused:
            self.stderr.write(f"{job_id}: no key verifies its state; left as it is (never unpickled)")
        self.stdout.write(
            f"{len(report.resigned)} re-signed, {len(report.current)} already signed with SECRET_KEY, "
            f"{len(report.refused)} left unverified."
        )
        if report.refused:
            raise CommandError(
                "Some states are not verified by SECRET_KEY or SECRET_KEY_FALLBACKS. Put the key they were "
                "written with in SECRET_KEY_FALLBACKS, or, if you know where they came from, rerun with "
                "--trust-unverified JOB_ID ...",
                returncode=1,
            )

    def _write_table(self, rows):
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _show_lifecycle_logs(verbosity: int) -> None:
    """Print the scheduler's lifecycle lines when no logging configuration would show them.

    A project that configured logging, even only its root logger, keeps it: a logger
    with a handler of its own or on an ancestor (``hasHandlers()``) is left alone.
    Records always propagate, so the project's root handlers see them too.
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    for name in ("apscheduler", "django_apscheduler"):
        log = logging.getLogger(name)
        if log.hasHandlers():
            continue
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(level)


def _worker(execution: DjangoJobExecution) -> str:
    """Where a fire handed to workers ran (see executors); "" for one run by a scheduler."""
    return f" (on worker {execution.worker_host}, pid {execution.worker_pid})" if execution.worker_pid is not None else ""
