import gc

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from hypothesis import settings as hypothesis_settings

from django_apscheduler.jobstores import DjangoJobStore

# The property tests check results, not speed: on a shared 2-core machine one example
# can take longer than Hypothesis's default 200 ms deadline without anything being wrong.
hypothesis_settings.register_profile("no-deadline", deadline=None)
hypothesis_settings.load_profile("no-deadline")


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
    # Connections of finished scheduler threads sit in reference cycles; collect them
    # now so PostgreSQL can drop the test database at the end of the run.
    gc.collect()


@pytest.fixture
def subprocess_env(transactional_db):
    """Environment for a child Python process that must use this test's database."""
    import os
    import sys
    from pathlib import Path

    from django.db import connection

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env["DJANGO_APSCHEDULER_TEST_DB_NAME"] = str(connection.settings_dict["NAME"])
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHON"] = sys.executable
    return env


@pytest.fixture
def isolated_registry(monkeypatch):
    """An empty ``@job`` registry for this test, which declares its own jobs.

    The admin pages read the declarations of this process, and would otherwise
    discover the example's and every test module's.
    """
    from django_apscheduler import registry

    monkeypatch.setattr(registry, "_declared", {})
    monkeypatch.setattr(registry, "autodiscover", lambda: None)
    return registry


@pytest.fixture
def cluster_factory(subprocess_env, tmp_path):
    """Build a ``Cluster`` of scheduler processes on this test's database; each is stopped afterwards.

    ``make(settings)``: environment variables (settings) over ``subprocess_env``.
    """
    from tests.cluster import Cluster

    made = []

    def make(settings=None):
        cluster = Cluster(env={**subprocess_env, **(settings or {})}, workdir=tmp_path)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


@pytest.fixture(scope="session", autouse=True)
def release_thread_connections(django_db_setup):
    """Before the test database is dropped, free the connections of finished scheduler threads.

    A thread's Django connection sits in reference cycles after the thread ends;
    PostgreSQL refuses to drop a database while any of them is still open.
    """
    yield
    gc.collect()
