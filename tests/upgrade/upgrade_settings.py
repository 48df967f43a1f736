"""Minimal settings for the upgrade test's subprocesses, shared by both environments.

The database comes from the environment: ``UPGRADE_DB`` (sqlite, postgres or
mariadb) and ``UPGRADE_DB_NAME`` (a file path for SQLite, a database name
otherwise); host, port and user follow the same variables as ``tests/settings.py``.
"""

import os

_backend = os.environ["UPGRADE_DB"]
_name = os.environ["UPGRADE_DB_NAME"]

if _backend == "sqlite":
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _name}}
    if os.environ.get("UPGRADE_SQLITE_IMMEDIATE") == "1":
        # django-apscheduler 0.7.0 with SQLite's default deferred transactions fails
        # with "database is locked" under its own threads (its scheduler thread can
        # even die); IMMEDIATE transactions (Django 5.1+) let it seed reliably.
        DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
elif _backend == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _name,
            "USER": os.environ.get("PGUSER", "postgres"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }
elif _backend == "mariadb":
    import pymysql

    pymysql.install_as_MySQLdb()
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": _name,
            "USER": os.environ.get("MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("MYSQL_PASSWORD", ""),
            "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("MYSQL_PORT", "3306"),
            "OPTIONS": {"charset": "utf8mb4"},
        }
    }
else:
    raise RuntimeError(f"Unknown UPGRADE_DB={_backend!r}")

SECRET_KEY = "upgrade-test-only"
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django_apscheduler"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
