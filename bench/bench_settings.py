"""Django settings for the benchmark's processes; the database comes from the environment.

BENCH_DB: sqlite | postgres | mariadb. BENCH_DB_NAME: the database name (a file path
for SQLite). Everything else is Django's and the package's defaults, as users run it.
"""

import os

DB = os.environ.get("BENCH_DB", "sqlite")
NAME = os.environ.get("BENCH_DB_NAME", "/tmp/bench_default.sqlite3")

if DB == "sqlite":
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": NAME}}
elif DB == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": NAME,
            "USER": os.environ.get("BENCH_PG_USER", "postgres"),
            "HOST": os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("BENCH_PG_PORT", "5432"),
        }
    }
elif DB == "mariadb":
    import pymysql

    pymysql.install_as_MySQLdb()
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": NAME,
            "USER": os.environ.get("BENCH_MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("BENCH_MYSQL_PASSWORD", ""),
            "HOST": os.environ.get("BENCH_MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("BENCH_MYSQL_PORT", "3306"),
            "OPTIONS": {"charset": "utf8mb4"},
        }
    }
else:
    raise RuntimeError(f"Unknown BENCH_DB={DB!r}")

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_apscheduler",
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# The hand-off scenario's Celery app (bench_celery.py); imported only by Celery executors.
APSCHEDULER_CELERY_APP = "bench_celery:app"

# The hand-off scenario's Django tasks backend: django-tasks-db's database backend
# (its db_worker processes take the fires), where it is installed (this package's
# environment; 0.7.0's has none).
try:
    import django_tasks_db  # noqa: F401
except ImportError:
    pass
else:
    INSTALLED_APPS.append("django_tasks_db")
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
