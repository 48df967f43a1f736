"""The admin alone: the "one million stored jobs" scenario loads its jobs list in-process."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
