"""What peers need to notice a dead scheduler in seconds: its session lock, its pid and process start, when it died.

Rows of schedulers from before have no session lock and no namespace: they are
judged by their heartbeat alone, as before.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_apscheduler', '0016_declared_job_fingerprint'),
    ]

    operations = [
        migrations.AddField(
            model_name='schedulerinstance',
            name='died',
            field=models.DateTimeField(blank=True, help_text='When a peer found its database session or its process gone (killed or crashed).', null=True),
        ),
        migrations.AddField(
            model_name='schedulerinstance',
            name='namespace',
            field=models.CharField(blank=True, default='', help_text="Its host's boot and pid namespace: peers with the same one can check its pid.", max_length=100),
        ),
        migrations.AddField(
            model_name='schedulerinstance',
            name='process_started',
            field=models.BigIntegerField(blank=True, help_text='When its process started, in clock ticks after boot (tells a reused pid).', null=True),
        ),
        migrations.AddField(
            model_name='schedulerinstance',
            name='session_lock',
            field=models.BooleanField(default=False, help_text='It holds a database session lock for its lifetime (PostgreSQL, MySQL, MariaDB).'),
        ),
    ]
