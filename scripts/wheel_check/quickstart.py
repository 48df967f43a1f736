"""The original quick-start's scheduler, against the installed wheel: a job runs and is recorded, the admin renders.

Run from a folder outside the checkout, so only the installed package can be imported.
"""

import os
import sys
import time
from datetime import datetime, timezone

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_settings")

import django  # noqa: E402

django.setup()

from apscheduler.schedulers.background import BackgroundScheduler  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

import django_apscheduler  # noqa: E402
from django_apscheduler.jobstores import DjangoJobStore  # noqa: E402
from django_apscheduler.models import DjangoJobExecution  # noqa: E402


def my_job():
    print("my_job ran", flush=True)


def main() -> int:
    assert "site-packages" in django_apscheduler.__file__, f"not the installed wheel: {django_apscheduler.__file__}"
    assert os.path.exists(os.path.join(os.path.dirname(django_apscheduler.__file__), "py.typed"))
    call_command("migrate", verbosity=0)
    call_command("check", fail_level="WARNING")
    scheduler = BackgroundScheduler(timezone=settings.TIME_ZONE)
    scheduler.add_jobstore(DjangoJobStore(), "default")
    scheduler.start()
    scheduler.add_job(my_job, "date", run_date=datetime.now(timezone.utc), id="my_job", replace_existing=True)
    deadline = time.monotonic() + 30
    while not DjangoJobExecution.objects.filter(job_id="my_job", status=DjangoJobExecution.SUCCESS).exists():
        assert time.monotonic() < deadline, "the job did not run"
        time.sleep(0.2)
    scheduler.shutdown()
    User.objects.create_superuser("admin", "admin@example.com", "admin")
    client = Client()
    client.force_login(User.objects.get(username="admin"))
    for page in ("djangojob", "djangojobexecution", "schedulerinstance", "djangojob/add"):
        response = client.get(f"/admin/django_apscheduler/{page}/")
        assert response.status_code == 200, (page, response.status_code)
    print("wheel check: the job ran and was recorded; the admin pages render", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
