"""Test settings with APSCHEDULER_AUTOSTART on and an app that declares a job."""

import os

from tests.settings import *  # noqa: F401,F403

APSCHEDULER_AUTOSTART = True
INSTALLED_APPS = INSTALLED_APPS + ["tests.autostart_app"]  # noqa: F405
if os.environ.get("AUTOSTART_SQLITE"):
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["AUTOSTART_SQLITE"]}}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_apscheduler": {"handlers": ["console"], "level": "INFO"}},
}
