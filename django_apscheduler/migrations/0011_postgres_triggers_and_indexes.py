"""PostgreSQL only: notification triggers, and the pattern indexes of fresh databases.

A database migrated by django-apscheduler 0.7 reached its text primary key through
an integer one, a path on which Django never creates the ``*_like`` pattern indexes
that a fresh database gets; they are added here, under the same names, so both
schemas are identical.
"""

from django.db import migrations

from django_apscheduler.postgres import (
    install_like_indexes,
    install_triggers,
    remove_triggers,
)


class Migration(migrations.Migration):
    dependencies = [("django_apscheduler", "0010_multi_scheduler_history")]

    operations = [
        migrations.RunPython(install_like_indexes, migrations.RunPython.noop, elidable=False),
        migrations.RunPython(install_triggers, remove_triggers, elidable=False),
    ]
