from django.contrib import admin
from django.urls import path

from django_apscheduler import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics/", views.metrics),
    path("health/", views.health),
]
