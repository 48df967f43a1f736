"""Test settings for a real `apscheduler start --metrics-port` process: an app declaring two jobs."""

from tests.settings import *  # noqa: F401,F403

INSTALLED_APPS = INSTALLED_APPS + ["tests.metrics_app"]  # noqa: F405
