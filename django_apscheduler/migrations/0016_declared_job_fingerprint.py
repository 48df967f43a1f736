"""The fingerprint of each declared job's @job declaration, as of the last sync.

A starting scheduler leaves a declared job alone while the code declares it as
before, so edits made in the admin persist; it applies the code's declaration
again only when that declaration changed. Existing rows get an empty fingerprint:
their next sync compares the stored job with the code once, as before, and then
records the fingerprint.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_apscheduler", "0015_execution_status_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="djangojob",
            name="declaration",
            field=models.TextField(
                blank=True,
                default="",
                help_text=(
                    "Fingerprint of the code's @job declaration at the last sync. While the code's declaration "
                    "stays the same, edits made in the admin are kept; when it changes, the code's applies again."
                ),
            ),
        ),
    ]
