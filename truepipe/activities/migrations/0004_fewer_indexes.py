"""Drop the activity's single-column foreign-key indexes: a composite index starts with each."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_contact_phones'),
        ('activities', '0003_activity_activity_logged_at_idx_and_more'),
        ('pipeline', '0005_live_account_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Only the single-column indexes go: an AlterField would make SQLite copy the table.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='activity',
                    name='account',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='activities', to='accounts.account'),
                ),
                migrations.AlterField(
                    model_name='activity',
                    name='opportunity',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='activities', to='pipeline.opportunity'),
                ),
                migrations.AlterField(
                    model_name='activity',
                    name='owner',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='activities', to=settings.AUTH_USER_MODEL),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "activities_activity_account_id_b0535419"',
                    reverse_sql='CREATE INDEX IF NOT EXISTS "activities_activity_account_id_b0535419" ON "activities_activity" ("account_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "activities_activity_opportunity_id_50fc4e0a"',
                    reverse_sql='CREATE INDEX IF NOT EXISTS "activities_activity_opportunity_id_50fc4e0a" ON "activities_activity" ("opportunity_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "activities_activity_owner_id_44d8a0b4"',
                    reverse_sql='CREATE INDEX IF NOT EXISTS "activities_activity_owner_id_44d8a0b4" ON "activities_activity" ("owner_id")',
                ),
            ],
        ),
    ]
