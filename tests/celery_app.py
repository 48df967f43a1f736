"""The Celery app of the Celery tests: what a project's ``celery.py`` holds, plus a witness.

Workers run it as ``celery -A tests.celery_app worker``; schedulers send through it
(``APSCHEDULER_CELERY_APP`` in tests/settings.py). Redis on 127.0.0.1:6379 is the
broker; every key gets the run's own prefix (``DJANGO_APSCHEDULER_CELERY_PREFIX``)
so parallel test runs neither see nor flush each other's messages. No result
backend: the fire's execution row is the result.

The witness: with ``DJANGO_APSCHEDULER_CELERY_LOG`` set, a worker appends one line
per task it is about to run, with the task id and the headers it received, so a
test sees what really went over the wire.
"""

import json
import os

from celery import Celery
from celery.signals import task_prerun

from django_apscheduler.contrib.celery import register_tasks

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("django_apscheduler_tests")
app.conf.update(
    broker_url=os.environ.get("DJANGO_APSCHEDULER_CELERY_BROKER", "redis://127.0.0.1:6379/0"),
    broker_transport_options={"global_keyprefix": os.environ.get("DJANGO_APSCHEDULER_CELERY_PREFIX", "dja-tests:")},
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    # One message at a time per process: a killed process takes only its running fire with it.
    worker_prefetch_multiplier=1,
)
register_tasks(app)


@task_prerun.connect
def _witness(task_id=None, task=None, args=None, **kwargs):
    path = os.environ.get("DJANGO_APSCHEDULER_CELERY_LOG")
    if not path or task is None:
        return
    line = json.dumps(
        {
            "task_id": task_id,
            "name": task.name,
            "args": list(args or ()),
            "periodic_task_name": getattr(task.request, "periodic_task_name", None),
            "run_time_header": getattr(task.request, "django_apscheduler_run_time", None),
            "pid": os.getpid(),
        }
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
