"""Signed job state, and the plain columns that pages read instead of the pickle.

Every stored row is signed here with the SECRET_KEY that ``migrate`` runs with:
rows present at upgrade time (0.7's included) are trusted then, as the issue of
who wrote them cannot be asked later. From now on a row whose signature does not
verify is never unpickled. The signature format is written out here rather than
imported, so that this migration keeps doing what it did when the package's own
code moves on: the prefix ``das1``, an HMAC-SHA256 (``salted_hmac`` with the salt
``django_apscheduler.jobstate``) of the pickle, then the pickle.

The plain columns (function, trigger in words, details) are filled in for each row
whose state can be loaded now; a row whose code cannot be imported here keeps them
empty and shows its id only, until ``manage.py apscheduler resign`` or the next
write of the job fills them.
"""

import logging
import pickle

from django.conf import settings
from django.db import migrations, models
from django.utils.crypto import salted_hmac

logger = logging.getLogger("django_apscheduler.migrations")

_PREFIX = b"das1"


def _sign(pickled):
    digest = salted_hmac("django_apscheduler.jobstate", pickled, secret=settings.SECRET_KEY, algorithm="sha256")
    return _PREFIX + digest.digest() + pickled


def _plain_columns(pickled):
    """The plain columns of a state, or {} when it cannot be loaded in this process."""
    from django_apscheduler.describe import describe_state

    try:
        state = pickle.loads(pickled)
        return describe_state(state) if isinstance(state, dict) else {}
    except Exception:  # noqa: BLE001 -- user code that does not import here: the columns stay empty
        return {}


def sign_existing_rows(apps, schema_editor):
    DjangoJob = apps.get_model("django_apscheduler", "DjangoJob")
    rows = DjangoJob.objects.using(schema_editor.connection.alias)
    signed = 0
    for job_id in rows.values_list("id", flat=True).iterator():
        job_state = rows.filter(pk=job_id).values_list("job_state", flat=True).first()
        if job_state is None:
            continue
        pickled = bytes(job_state)
        if pickled.startswith(_PREFIX):
            continue  # signed already (the migration ran against a copy, say)
        rows.filter(pk=job_id).update(job_state=_sign(pickled), **_plain_columns(pickled))
        signed += 1
    if signed:
        logger.info("Signed the stored state of %d job(s) with this SECRET_KEY.", signed)


def strip_signatures(apps, schema_editor):
    """Back to 0017's unsigned pickles, which the code of that version reads."""
    DjangoJob = apps.get_model("django_apscheduler", "DjangoJob")
    rows = DjangoJob.objects.using(schema_editor.connection.alias)
    for job_id in rows.values_list("id", flat=True).iterator():
        job_state = bytes(rows.filter(pk=job_id).values_list("job_state", flat=True).first() or b"")
        if job_state.startswith(_PREFIX):
            rows.filter(pk=job_id).update(job_state=job_state[len(_PREFIX) + 32 :])


class Migration(migrations.Migration):
    dependencies = [
        ("django_apscheduler", "0017_scheduler_liveness"),
    ]

    operations = [
        migrations.AddField(
            model_name="djangojob",
            name="details",
            field=models.JSONField(
                blank=True, default=dict, help_text="Name, trigger, arguments and options, as text, for display."
            ),
        ),
        migrations.AddField(
            model_name="djangojob",
            name="func_ref",
            field=models.CharField(
                blank=True,
                default="",
                help_text="The job's function, as module:name.",
                max_length=500,
                verbose_name="function",
            ),
        ),
        migrations.AddField(
            model_name="djangojob",
            name="trigger_description",
            field=models.TextField(blank=True, default="", help_text="The trigger in words.", verbose_name="trigger"),
        ),
        migrations.AlterField(
            model_name="djangojob",
            name="job_state",
            field=models.BinaryField(
                help_text="APScheduler's job state, pickled, behind a signature keyed from SECRET_KEY."
            ),
        ),
        migrations.RunPython(sign_existing_rows, strip_signatures),
    ]
