"""The Django admin as the control panel: jobs, their history and the schedulers.

Everything here is read-only unless there is a reason to change it. A job's state
is a pickle written by APScheduler and is never edited by hand; history is a
record, not a form. What an operator may do: run jobs now, delete jobs, and prune
history, each guarded by Django's permissions (the rules, in particular who may make
a job run, are in ``permissions``), and each leaves a ``LogEntry`` (``audit``).

Two rules hold throughout this module:

- History outlives its job (``DjangoJobExecution.job`` has no database
  constraint), so an execution is shown by its ``job_id`` and never by following
  ``execution.job``, which may no longer exist. A join on that relation would
  even hide the history of deleted jobs.
- Every string that comes from users' code or data (job ids, exception messages,
  tracebacks) reaches the page through ``format_html`` or the templates'
  auto-escaping; nothing user-controlled is marked safe.
"""


from __future__ import annotations

from django.contrib import admin

from ..models import DjangoJob, DjangoJobExecution, SchedulerInstance
from ..querysets import is_alive
from .executions import DjangoJobExecutionAdmin, JobIdFilter
from .jobs import DjangoJobAdmin, annotate_job_summary, describe_run_result, report_run_results
from .schedulers import SchedulerInstanceAdmin

__all__ = [
    "DjangoJobAdmin",
    "DjangoJobExecutionAdmin",
    "JobIdFilter",
    "SchedulerInstanceAdmin",
    "annotate_job_summary",
    "describe_run_result",
    "is_alive",
    "report_run_results",
]

admin.site.register(DjangoJob, DjangoJobAdmin)
admin.site.register(DjangoJobExecution, DjangoJobExecutionAdmin)
admin.site.register(SchedulerInstance, SchedulerInstanceAdmin)
