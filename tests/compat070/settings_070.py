"""Settings for django-apscheduler 0.7.0's test suite run against this package (SQLite).

Like 0.7's own: USE_TZ is False, the default of the Django versions it was tested
with (Django 5 changed the default); tests that need time zones turn it on.
"""

SECRET_KEY = "tests-only-not-secret"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.sites",
    "django.contrib.messages",
    "django.contrib.admin",
    "django_apscheduler",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
USE_TZ = False
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
APSCHEDULER_RUN_NOW_TIMEOUT = 15
APSCHEDULER_DATETIME_FORMAT = "N j, Y, f:s a"
