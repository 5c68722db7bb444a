"""Leaner violation indexes: a closing violation rewrote entries in seven of them."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('activities', '0004_fewer_indexes'),
        ('hygiene', '0005_violation_activity_partial_index'),
        ('pipeline', '0005_live_account_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='violation',
            name='hygiene_vio_rep_id_ab9a0a_idx',
        ),
        migrations.RemoveIndex(
            model_name='violation',
            name='hygiene_vio_rule_e417f6_idx',
        ),
        migrations.RemoveIndex(
            model_name='violation',
            name='hygiene_vio_closed__697f48_idx',
        ),
        # The foreign keys' own indexes go (partial ones replace them): an AlterField would make
        # SQLite copy the table.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='violation',
                    name='activity',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='violations', to='activities.activity'),
                ),
                migrations.AlterField(
                    model_name='violation',
                    name='resolved_by',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='violation',
                    name='waived_by',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "hygiene_violation_activity_id_14d40d2c"',
                    reverse_sql='CREATE INDEX IF NOT EXISTS "hygiene_violation_activity_id_14d40d2c" ON "hygiene_violation" ("activity_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "hygiene_violation_resolved_by_id_3eaed00a"',
                    reverse_sql='CREATE INDEX IF NOT EXISTS "hygiene_violation_resolved_by_id_3eaed00a" ON "hygiene_violation" ("resolved_by_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "hygiene_violation_waived_by_id_fc6983bf"',
                    reverse_sql='CREATE INDEX IF NOT EXISTS "hygiene_violation_waived_by_id_fc6983bf" ON "hygiene_violation" ("waived_by_id")',
                ),
            ],
        ),
        migrations.AddIndex(
            model_name='violation',
            index=models.Index(condition=models.Q(('live', True)), fields=['rule'], name='violation_live_rule_idx'),
        ),
        migrations.AddIndex(
            model_name='violation',
            index=models.Index(condition=models.Q(('resolved_by__isnull', False)), fields=['resolved_by'], name='violation_resolved_by_idx'),
        ),
        migrations.AddIndex(
            model_name='violation',
            index=models.Index(condition=models.Q(('waived_by__isnull', False)), fields=['waived_by'], name='violation_waived_by_idx'),
        ),
    ]
