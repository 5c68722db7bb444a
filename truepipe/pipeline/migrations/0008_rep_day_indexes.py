"""Index the deals' owner with their creation, and the history's author with its time (the
missed-daily-update rule asks both of each rep-day), in place of the two foreign keys' own."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_contact_phones'),
        ('pipeline', '0007_history_window_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Only the single-column indexes go: an AlterField would make SQLite copy the tables.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='opportunity',
                    name='owner',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='opportunities', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='opportunitychange',
                    name='changed_by',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "pipeline_opportunity_owner_id_8f4fd814"',
                    reverse_sql='CREATE INDEX IF NOT EXISTS "pipeline_opportunity_owner_id_8f4fd814" ON "pipeline_opportunity" ("owner_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "pipeline_opportunitychange_changed_by_id_63a8239c"',
                    reverse_sql='CREATE INDEX IF NOT EXISTS "pipeline_opportunitychange_changed_by_id_63a8239c" ON "pipeline_opportunitychange" ("changed_by_id")',
                ),
            ],
        ),
        migrations.AddIndex(
            model_name='opportunity',
            index=models.Index(fields=['owner', 'created_at'], name='opportunity_owner_created_idx'),
        ),
        migrations.AddIndex(
            model_name='opportunitychange',
            index=models.Index(fields=['changed_by', 'changed_at'], name='change_by_rep_idx'),
        ),
    ]
