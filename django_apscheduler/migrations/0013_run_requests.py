"""Run requests: "run this job once now" handed to whichever scheduler is alive."""

from django.db import migrations, models

from django_apscheduler.postgres import install_triggers, install_triggers_v2


class Migration(migrations.Migration):
    dependencies = [("django_apscheduler", "0012_declared_jobs_and_history_policy")]

    operations = [
        migrations.AddField(
            model_name="djangojob",
            name="run_requested_at",
            field=models.DateTimeField(
                blank=True,
                db_index=True,
                help_text="Someone asked for one extra run now (admin or `apscheduler run`); a live scheduler takes it.",
                null=True,
            ),
        ),
        migrations.RunPython(install_triggers_v2, install_triggers, elidable=False),
    ]
