import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from django_apscheduler.jobstores import DjangoJobStore


@pytest.fixture
def jobstore():
    """A DjangoJobStore used directly, the way APScheduler's scheduler calls it."""
    return DjangoJobStore()


@pytest.fixture
def scheduler_factory():
    """Build paused-free BackgroundSchedulers with a DjangoJobStore; shut them down afterwards."""
    created = []

    def make(**options):
        options.setdefault("timezone", "UTC")
        scheduler = BackgroundScheduler(**options)
        scheduler.add_jobstore(DjangoJobStore(), "default")
        created.append(scheduler)
        return scheduler

    yield make
    for scheduler in created:
        if scheduler.running:
            scheduler.shutdown(wait=True)
