"""The schema of django-apscheduler 0.7.0, in one step.

``replaces`` names the nine migrations of 0.7.0: a database that has applied them
all is taken as having applied this one, so ``migrate`` upgrades it in place and
keeps every row; a fresh database gets the same tables from this migration.
"""

from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    replaces = [
        ("django_apscheduler", "0001_initial"),
        ("django_apscheduler", "0002_auto_20180412_0758"),
        ("django_apscheduler", "0003_auto_20200716_1632"),
        ("django_apscheduler", "0004_auto_20200717_1043"),
        ("django_apscheduler", "0005_migrate_name_to_id"),
        ("django_apscheduler", "0006_remove_djangojob_name"),
        ("django_apscheduler", "0007_auto_20200717_1404"),
        ("django_apscheduler", "0008_remove_djangojobexecution_started"),
        ("django_apscheduler", "0009_djangojobexecution_unique_job_executions"),
    ]

    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="DjangoJob",
            fields=[
                ("id", models.CharField(max_length=255, primary_key=True, serialize=False)),
                ("next_run_time", models.DateTimeField(blank=True, db_index=True, null=True)),
                ("job_state", models.BinaryField()),
            ],
            options={"ordering": ("next_run_time",)},
        ),
        migrations.CreateModel(
            name="DjangoJobExecution",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("Started execution", "Started execution"),
                            ("Error!", "Error!"),
                            ("Executed", "Executed"),
                        ],
                        max_length=50,
                    ),
                ),
                ("run_time", models.DateTimeField(db_index=True)),
                ("duration", models.DecimalField(decimal_places=2, default=None, max_digits=15, null=True)),
                ("finished", models.DecimalField(decimal_places=2, default=None, max_digits=15, null=True)),
                ("exception", models.CharField(max_length=1000, null=True)),
                ("traceback", models.TextField(null=True)),
                (
                    "job",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        to="django_apscheduler.djangojob",
                    ),
                ),
            ],
            options={"ordering": ("-run_time",)},
        ),
        migrations.AddConstraint(
            model_name="djangojobexecution",
            constraint=models.UniqueConstraint(fields=("job", "run_time"), name="unique_job_executions"),
        ),
    ]
