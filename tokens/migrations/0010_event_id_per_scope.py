"""An event_id is unique within its reporting scope: the organization the event is
recorded under and who reported it (a key bound to that organization, or the
platform gateway), no longer across the platform. Events recorded before were
unique platform-wide, so they fit any scope; they are marked as the platform's."""

from django.db import migrations, models

# SQLite rebuilds tokens_usageevent to add the column, and the rebuild drops the
# table's triggers: put back the append-only one of migration 0004.
SQLITE_TRIGGER = (
    "CREATE TRIGGER IF NOT EXISTS tokens_usageevent_no_update BEFORE UPDATE ON "
    "tokens_usageevent BEGIN SELECT RAISE(ABORT, 'tokens_usageevent is append-only: "
    "UPDATE refused'); END"
)


def restore_sqlite_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(SQLITE_TRIGGER, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ('tokens', '0009_counter_per_organization'),
    ]

    operations = [
        # Reversed last: after the reverse rebuilds, the trigger is back too.
        migrations.RunPython(migrations.RunPython.noop, restore_sqlite_trigger),
        migrations.RemoveConstraint(
            model_name='usageevent',
            name='usageevent_event_id_unique',
        ),
        migrations.AddField(
            model_name='usageevent',
            name='org_key',
            field=models.BooleanField(default=False, help_text='Reported with a key bound to the organization (its own scope of event ids), not by the platform gateway.'),
        ),
        migrations.AddConstraint(
            model_name='usageevent',
            constraint=models.UniqueConstraint(fields=('organization', 'org_key', 'event_id'), name='event_id_per_scope'),
        ),
        migrations.RunPython(restore_sqlite_trigger, migrations.RunPython.noop),
    ]
