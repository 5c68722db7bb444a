"""Drop the owner's single-column indexes of the ledger and the touched domains: a composite index starts with it."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('capture', '0002_touch_owner_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Only the single-column indexes go: an AlterField would make SQLite copy the table.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='captureditem',
                    name='owner',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='touchdomain',
                    name='owner',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "capture_captureditem_owner_id_7ca4b4a4"',
                    reverse_sql='CREATE INDEX IF NOT EXISTS "capture_captureditem_owner_id_7ca4b4a4" ON "capture_captureditem" ("owner_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "capture_touchdomain_owner_id_b7f08d36"',
                    reverse_sql='CREATE INDEX IF NOT EXISTS "capture_touchdomain_owner_id_b7f08d36" ON "capture_touchdomain" ("owner_id")',
                ),
            ],
        ),
    ]
