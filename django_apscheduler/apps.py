from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoApschedulerConfig(AppConfig):
    name = "django_apscheduler"
    verbose_name = _("Django APScheduler")
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import autostart, checks  # noqa: F401 (checks registers itself)

        autostart.maybe_start()
