"""An index for finding unfinished fires (status "Started execution") among all executions.

Every running scheduler looks for the unfinished fires of dead peers every few
seconds; without it that is a scan of the whole history.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_apscheduler", "0014_run_permission"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="djangojobexecution",
            index=models.Index(fields=["status", "scheduler"], name="dja_execution_status_sched"),
        ),
    ]
