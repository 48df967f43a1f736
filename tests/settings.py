"""Settings for the test suite. ``DB`` selects the database: sqlite, postgres or mariadb."""

import os
import tempfile
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent
DB = os.environ.get("DB", "sqlite")

if DB == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "test"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "TEST": {"NAME": f"test_django_apscheduler_{os.getpid()}"},
        }
    }
elif DB == "mariadb":
    import pymysql

    pymysql.install_as_MySQLdb()
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": os.environ.get("MYSQL_DATABASE", "test"),
            "USER": os.environ.get("MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("MYSQL_PASSWORD", ""),
            "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("MYSQL_PORT", "3306"),
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {"NAME": f"test_django_apscheduler_{os.getpid()}", "CHARSET": "utf8mb4"},
        }
    }
elif DB == "sqlite":
    # Test databases are named after the pytest process, so concurrent runs do not collide.
# A file, not :memory:, so that several threads and processes share one database.
    _sqlite_dir = Path(os.environ.get("SQLITE_DIR", tempfile.gettempdir()))
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(_sqlite_dir / "django_apscheduler_tests.sqlite3"),
            "TEST": {"NAME": str(_sqlite_dir / f"django_apscheduler_test_{os.getpid()}.sqlite3")},
        }
    }
else:
    raise RuntimeError(f"Unknown DB={DB!r}: use sqlite, postgres or mariadb")

# Subprocesses started by tests (real schedulers) share the test database of the
# pytest process that started them; it tells them its name here.
if os.environ.get("DJANGO_APSCHEDULER_TEST_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["DJANGO_APSCHEDULER_TEST_DB_NAME"]

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_apscheduler",
]
# Django's tasks framework (the django-tasks backport below Django 6), for the hand-off
# tests: an immediate backend (the task runs in the enqueuing thread) and, where
# django-tasks-db is installed (Django 5.2+), the database backend, whose db_worker
# is the real worker fleet of tests/processes/test_workers.py.
_IMMEDIATE = ("django.tasks" if django.VERSION >= (6,) else "django_tasks") + ".backends.immediate.ImmediateBackend"
TASKS = {"immediate": {"BACKEND": _IMMEDIATE, "QUEUES": []}, "default": {"BACKEND": _IMMEDIATE, "QUEUES": []}}
try:
    import django_tasks_db  # noqa: F401
except ImportError:  # the Django 4.2 environment
    pass
else:
    INSTALLED_APPS.append("django_tasks_db")
    TASKS["default"] = {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "reports"]}
STATIC_URL = "/static/"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_apscheduler": {"handlers": ["console"], "level": "WARNING"}},
}

# Scheduler processes started by the multi-scheduler tests take shorter timings
# from their environment.
for _name in ("APSCHEDULER_POLL_INTERVAL", "APSCHEDULER_HEARTBEAT_INTERVAL", "APSCHEDULER_HEARTBEAT_TIMEOUT",
              "APSCHEDULER_CLAIM_AHEAD"):
    if _name in os.environ:
        globals()[_name] = float(os.environ[_name])

# The Celery tests' app (tests/celery_app.py), for executors.celery.CeleryExecutor.
APSCHEDULER_CELERY_APP = "tests.celery_app:app"
