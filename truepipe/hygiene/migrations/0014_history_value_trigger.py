from django.db import migrations


def drop_history_update_trigger(apps, schema_editor):
    """SQLite: the history's update trigger now also fires on a corrected value (`clocks`). It is
    created only where missing, so the old one goes; the next night or write installs the new."""
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS hygiene_change_dirty_on_update")


class Migration(migrations.Migration):
    dependencies = [
        ("hygiene", "0013_deal_violation_indexes"),
    ]

    operations = [migrations.RunPython(drop_history_update_trigger, migrations.RunPython.noop)]
