"""Fires handed to a worker fleet: the "Queued" status, and which worker ran a fire and when it last beat."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_apscheduler', '0018_signed_job_state'),
    ]

    operations = [
        migrations.AlterField(
            model_name='djangojobexecution',
            name='status',
            field=models.CharField(choices=[('Queued', 'Queued'), ('Started execution', 'Started execution'), ('Executed', 'Executed'), ('Error!', 'Error!'), ('Missed!', 'Missed!'), ('Max instances!', 'Max instances!'), ('Lost!', 'Lost!')], help_text='The current status of this job execution.', max_length=50),
        ),
        migrations.AddField(
            model_name='djangojobexecution',
            name='worker_host',
            field=models.CharField(blank=True, default='', help_text='Host name of the worker that ran this fire.', max_length=255),
        ),
        migrations.AddField(
            model_name='djangojobexecution',
            name='worker_pid',
            field=models.PositiveIntegerField(blank=True, help_text='Process id of the worker that ran this fire.', null=True),
        ),
        migrations.AddField(
            model_name='djangojobexecution',
            name='last_seen',
            field=models.DateTimeField(blank=True, help_text='A fire handed to workers: when it was sent to them, then the last heartbeat of the worker running it. Too old means the fire is lost.', null=True),
        ),
    ]
