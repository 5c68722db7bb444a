from django.db import migrations

# The default pipeline a fresh installation starts with; admins change it afterwards.
STAGES = [
    ("Prospecting", "open", 10, "pipeline", []),
    ("Qualification", "open", 20, "pipeline", ["account"]),
    ("Discovery", "open", 35, "pipeline", ["account", "next_step"]),
    ("Proposal", "open", 55, "best_case", ["account", "amount", "close_date"]),
    ("Negotiation", "open", 75, "commit", ["account", "amount", "close_date", "next_step"]),
    ("Won", "won", 100, "closed", ["account", "amount", "close_date"]),
    ("Lost", "lost", 0, "omitted", ["lost_reason"]),
]


def create_stages(apps, schema_editor):
    Stage = apps.get_model("pipeline", "Stage")
    if Stage.objects.exists():
        return
    for index, (name, kind, probability, category, required) in enumerate(STAGES, start=1):
        Stage.objects.create(name=name, order=index * 10, kind=kind, probability=probability,
                             forecast_category=category, required_fields=required)


class Migration(migrations.Migration):
    dependencies = [("pipeline", "0001_initial")]
    operations = [migrations.RunPython(create_stages, migrations.RunPython.noop)]
