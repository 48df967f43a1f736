"""Database models: stored jobs, their execution history, and running schedulers.

The tables and columns of django-apscheduler 0.7 are kept as they were, so an
existing database upgrades in place; new columns only add to them.
"""

from __future__ import annotations

import logging

from django.db import models
from django.utils.translation import gettext_lazy as _

from .querysets import ExecutionQuerySet, JobQuerySet, SchedulerQuerySet

logger = logging.getLogger(__name__)


class DjangoJob(models.Model):
    """One APScheduler job, pickled, with its next run time as an indexed column.

    The ``next_run_time`` column is the truth: it wins over the copy inside the
    pickled state, so a plain ORM update of the column is obeyed.
    """

    id = models.CharField(max_length=255, primary_key=True, help_text=_("Unique id for this job."))
    next_run_time = models.DateTimeField(
        db_index=True,
        blank=True,
        null=True,
        help_text=_("Date and time at which this job is scheduled to be executed next."),
    )
    job_state = models.BinaryField(help_text=_("APScheduler's job state, pickled, behind a signature keyed from SECRET_KEY."))
    # Plain copies of what the state holds, written with it (jobstate.dump): pages and
    # lists read these and never unpickle a row.
    func_ref = models.CharField(
        _("function"), max_length=500, blank=True, default="", help_text=_("The job's function, as module:name.")
    )
    trigger_description = models.TextField(_("trigger"), blank=True, default="", help_text=_("The trigger in words."))
    details = models.JSONField(
        default=dict, blank=True, help_text=_("Name, trigger, arguments and options, as text, for display.")
    )
    broken = models.BooleanField(
        default=False,
        # Every scheduler start clears the flags (UPDATE ... WHERE broken): without an
        # index that reads the whole table, about a second at a million jobs.
        db_index=True,
        help_text=_("The job's function or arguments could not be loaded; it does not run until they can."),
    )
    broken_reason = models.TextField(blank=True, default="", help_text=_("Why the job could not be loaded."))
    run_requested_at = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        help_text=_("Someone asked for one extra run now (admin or `apscheduler run`); a live scheduler takes it."),
    )
    declared = models.BooleanField(
        default=False, help_text=_("Declared in code with @job (in an app's jobs.py) rather than added at run time.")
    )
    declaration = models.TextField(
        blank=True,
        default="",
        help_text=_(
            "Fingerprint of the code's @job declaration at the last sync. While the code's declaration "
            "stays the same, edits made in the admin are kept; when it changes, the code's applies again."
        ),
    )
    HISTORY_ALL = "all"
    HISTORY_FAILURES = "failures"
    HISTORY_CHOICES = [(HISTORY_ALL, _("every run")), (HISTORY_FAILURES, _("failures only"))]
    history = models.CharField(
        max_length=20,
        choices=HISTORY_CHOICES,
        default=HISTORY_ALL,
        help_text=_("Which executions to keep: every run, or only those that did not succeed."),
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ("next_run_time",)
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        permissions = [("run_djangojob", _("Can run jobs now"))]

    def __str__(self) -> str:
        if self.next_run_time is None:
            return f"{self.id} (paused)"
        return f"{self.id} (next run at: {self.next_run_time:%Y-%m-%d %H:%M:%S})"


# 0.7's name for the executions' manager; its methods live on the QuerySet.
DjangoJobExecutionManager = models.Manager.from_queryset(ExecutionQuerySet)


class DjangoJobExecution(models.Model):
    """One scheduled fire of a job: claimed, then finished with a final status.

    Unique on (job, run_time), so the database itself refuses a second execution
    of the same fire. The job reference carries no database constraint: history
    outlives the job (a one-off date job keeps its record), and in-memory jobs of
    ``DjangoMemoryJobStore`` are recorded without a stored job row.
    """

    SENT = "Started execution"
    # Handed to a worker fleet (``executors``), not started by a worker yet.
    QUEUED = "Queued"
    SUCCESS = "Executed"
    MISSED = "Missed!"
    MAX_INSTANCES = "Max instances!"
    ERROR = "Error!"
    LOST = "Lost!"

    STATUS_CHOICES = [
        (QUEUED, _("Queued")),
        (SENT, _("Started execution")),
        (SUCCESS, _("Executed")),
        (ERROR, _("Error!")),
        (MISSED, _("Missed!")),
        (MAX_INSTANCES, _("Max instances!")),
        (LOST, _("Lost!")),
    ]
    FINAL_STATUSES = (SUCCESS, ERROR, MISSED, MAX_INSTANCES, LOST)

    id = models.BigAutoField(primary_key=True, help_text=_("Unique ID for this job execution."))
    job = models.ForeignKey(
        DjangoJob,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        help_text=_("The job that this execution relates to."),
    )
    status = models.CharField(
        max_length=50, choices=STATUS_CHOICES, help_text=_("The current status of this job execution.")
    )
    run_time = models.DateTimeField(db_index=True, help_text=_("Date and time at which this job was scheduled to run."))
    started_at = models.DateTimeField(
        null=True, blank=True, help_text=_("Date and time at which the job's function actually started.")
    )
    duration = models.DecimalField(
        max_digits=15,
        decimal_places=2,
        default=None,
        null=True,
        help_text=_("Real running time of the job's function (in seconds)."),
    )
    finished = models.DecimalField(
        max_digits=15,
        decimal_places=2,
        default=None,
        null=True,
        help_text=_("Timestamp at which this job was finished."),
    )
    exception = models.CharField(
        max_length=1000, null=True, help_text=_("Details of exception that occurred during job execution (if any).")
    )
    traceback = models.TextField(
        null=True, help_text=_("Traceback of exception that occurred during job execution (if any).")
    )
    scheduler = models.ForeignKey(
        "SchedulerInstance",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="executions",
        help_text=_("The scheduler that claimed this fire."),
    )
    # A fire handed to a worker fleet is started and finished by a worker process,
    # which these columns name; they stay empty for fires run inside a scheduler.
    worker_host = models.CharField(
        max_length=255, blank=True, default="", help_text=_("Host name of the worker that ran this fire.")
    )
    worker_pid = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Process id of the worker that ran this fire.")
    )
    last_seen = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_(
            "A fire handed to workers: when it was sent to them, then the last heartbeat of the worker running "
            "it. Too old means the fire is lost."
        ),
    )

    objects = DjangoJobExecutionManager()

    class Meta:
        ordering = ("-run_time",)
        verbose_name = _("job execution")
        verbose_name_plural = _("job executions")
        constraints = [models.UniqueConstraint(fields=("job", "run_time"), name="unique_job_executions")]
        indexes = [
            # Finds the few unfinished fires among millions of finished ones: every
            # running scheduler looks for dead peers' unfinished fires every few seconds.
            models.Index(fields=("status", "scheduler"), name="dja_execution_status_sched"),
        ]

    def __str__(self) -> str:
        return f"{self.id}: job '{self.job_id}' ({self.status})"  # django-apscheduler 0.7's text

    @classmethod
    def atomic_update_or_create(
        cls, lock, job_id: str, run_time, status: str, exception: str | None = None, traceback: str | None = None
    ) -> DjangoJobExecution:
        """Deprecated (0.7): write one fire's status now; see ``compat.atomic_update_or_create``."""
        from .compat import atomic_update_or_create

        return atomic_update_or_create(lock, job_id, run_time, status, exception, traceback)


class SchedulerInstance(models.Model):
    """A scheduler that runs (or ran) against this database, with its heartbeat."""

    host = models.CharField(max_length=255, help_text=_("Host name of the scheduler's machine."))
    pid = models.PositiveIntegerField(help_text=_("Process id of the scheduler."))
    version = models.CharField(max_length=50, blank=True, help_text=_("django-apscheduler version it runs."))
    started = models.DateTimeField(help_text=_("When the scheduler started."))
    last_heartbeat = models.DateTimeField(db_index=True, help_text=_("Last sign of life."))
    stopped = models.DateTimeField(null=True, blank=True, help_text=_("When it shut down cleanly."))
    died = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("When a peer found its database session or its process gone (killed or crashed)."),
    )
    namespace = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text=_("Its host's boot and pid namespace: peers with the same one can check its pid."),
    )
    process_started = models.BigIntegerField(
        null=True, blank=True, help_text=_("When its process started, in clock ticks after boot (tells a reused pid).")
    )
    session_lock = models.BooleanField(
        default=False, help_text=_("It holds a database session lock for its lifetime (PostgreSQL, MySQL, MariaDB).")
    )

    objects = SchedulerQuerySet.as_manager()

    class Meta:
        ordering = ("-last_heartbeat",)
        verbose_name = _("scheduler")
        verbose_name_plural = _("schedulers")

    def __str__(self) -> str:
        return f"{self.host} pid {self.pid}"
