"""Views a project mounts in its URLconf for its monitoring: Prometheus metrics and a health check.

    from django_apscheduler import views
    urlpatterns += [path("metrics/", views.metrics), path("health/", views.health)]

Neither asks for a login: scrapers and probes carry no session. The health view
shows counts, ages and migration names only. The metrics view shows job ids (see
``APSCHEDULER_METRICS_JOB_LABEL``); restrict it at the proxy, or wrap it (e.g.
``staff_member_required``), if job ids are not for everyone's eyes.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import health as health_checks
from . import metrics as metrics_module


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """This process's metrics and the cluster's gauges, in the format the scraper asks for.

    501 when ``prometheus_client`` is not installed, saying which extra to install.
    """
    if not metrics_module.available():
        return HttpResponse(metrics_module.INSTALL_HINT + "\n", status=501, content_type="text/plain; charset=utf-8")
    body, content_type = metrics_module.exposition(request.headers.get("Accept"))
    return HttpResponse(body, content_type=content_type)


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """200 when migrations are applied and a scheduler's heartbeat is fresh; 503 with the reason otherwise."""
    report = health_checks.readiness()
    return JsonResponse(report.as_dict(), status=200 if report.healthy else 503)
