"""The rep's update clock no longer counts captured e-mail and meetings: the kept activity clocks
were computed with them, so they are dropped and rebuilt (from the activities) by the next full
evaluation."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('hygiene', '0008_scoring_indexes'),
    ]

    operations = [
        migrations.RunSQL(
            "DELETE FROM hygiene_dealclockmark",
            reverse_sql="DELETE FROM hygiene_dealclockmark",
        ),
    ]
