"""The benchmark's Celery app: Redis on 127.0.0.1:6379, every key under the run's own prefix.

Schedulers send through it (APSCHEDULER_CELERY_APP in bench_settings.py); workers run
``celery -A bench_celery worker``. No result backend: the execution row is the result.
"""

import os

from celery import Celery

from django_apscheduler.contrib.celery import register_tasks

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_settings")

app = Celery("django_apscheduler_bench")
app.conf.update(
    broker_url=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/0"),
    broker_transport_options={"global_keyprefix": os.environ.get("BENCH_CELERY_PREFIX", "dja-bench:")},
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)
register_tasks(app)
