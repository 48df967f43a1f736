"""Template tags of the admin's pages: the banner that says no scheduler is running."""

from __future__ import annotations

from typing import Any

from django import template

from ..health import scheduler_health

register = template.Library()


@register.inclusion_tag("admin/django_apscheduler/health_banner.html")
def scheduler_health_banner() -> dict[str, Any]:
    """A warning on every page of the app while no scheduler is alive (jobs are not running)."""
    health = scheduler_health()
    silent_for = None if health.silent_for is None else round(health.silent_for)
    return {"health": health, "silent_for": silent_for}
