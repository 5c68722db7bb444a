"""The rep's update clock no longer counts captured e-mail and meetings: the kept activity clocks
were computed with them, so they are dropped and rebuilt (from the activities) by the next full
evaluation. An activity's source now moves its deal's clocks, so SQLite's update trigger also
watches that column (PostgreSQL's statement trigger fires on any update)."""

from django.db import migrations


def watch_the_source(apps, schema_editor):
    """SQLite's update trigger is dropped; the next full evaluation finds it missing (and the
    clocks' mark gone) and installs the triggers as its code writes them (`hygiene.clocks`)."""
    if schema_editor.connection.vendor == "sqlite":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS hygiene_dirty_on_update")


class Migration(migrations.Migration):

    dependencies = [
        ('hygiene', '0008_scoring_indexes'),
    ]

    operations = [
        migrations.RunSQL(
            "DELETE FROM hygiene_dealclockmark",
            reverse_sql="DELETE FROM hygiene_dealclockmark",
        ),
        migrations.RunPython(watch_the_source, migrations.RunPython.noop),
    ]
