"""The example site's settings on the test database: for the example site served by uvicorn in tests."""

from demo_site.settings import *  # noqa: F401,F403

# The test database and key, as every test process uses (job state is signed with the key).
from tests.settings import DATABASES, SECRET_KEY  # noqa: F401

ALLOWED_HOSTS = ["*"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_apscheduler": {"handlers": ["console"], "level": "INFO"}},
}
