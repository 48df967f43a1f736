"""The demo's jobs, declared next to their code; `manage.py apscheduler start` finds them."""

import logging
import random

from django.contrib.auth import get_user_model

from django_apscheduler import util
from django_apscheduler.models import DjangoJobExecution
from django_apscheduler.registry import job

logger = logging.getLogger(__name__)

ONE_WEEK = 7 * 24 * 60 * 60


@job("interval", seconds=5, id="reports.count_users")
@util.close_old_connections
def count_users():
    """Every few seconds, so the demo visibly lives."""
    total = get_user_model().objects.count()
    logger.info("There are %d user(s)", total)
    return total


class RateProviderTimeout(Exception):
    pass


@job("interval", seconds=15, id="reports.sync_exchange_rates")
def sync_exchange_rates():
    """Talks to a flaky provider: one call in three fails, so the admin shows an error."""
    if random.random() < 1 / 3:
        raise RateProviderTimeout("The exchange-rate provider did not answer within 2 s")
    rates = {"EUR": round(random.uniform(1.1, 1.2), 4), "USD": round(random.uniform(1.2, 1.3), 4)}
    logger.info("Exchange rates synced: %s", rates)
    return rates


# Deleting history is for those who may delete it by hand: the admin asks for that
# permission before anyone creates, runs or resumes this job.
@job(
    "cron",
    day_of_week="mon",
    hour=0,
    minute=0,
    id="reports.delete_old_job_executions",
    permissions=["django_apscheduler.delete_djangojobexecution"],
)
@util.close_old_connections
def delete_old_job_executions(max_age=ONE_WEEK):
    """Weekly clean-up of the execution history (what the original quick-start recommends)."""
    deleted = DjangoJobExecution.objects.delete_old_job_executions(max_age)
    logger.info("Deleted %d old job execution(s)", deleted)
