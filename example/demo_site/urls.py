from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from django_apscheduler import views

urlpatterns = [
    path("admin/", admin.site.urls),
    # For monitoring: /health/ for probes and load balancers, /metrics/ for Prometheus.
    path("health/", views.health),
    path("metrics/", views.metrics),
    path("", RedirectView.as_view(url="/admin/django_apscheduler/djangojobexecution/")),
]
