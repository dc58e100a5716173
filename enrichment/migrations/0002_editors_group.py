"""The "Editors" group: exactly what editing needs. Editors curate sources, articles,
stories, cards, recaps and the taxonomy; they cannot touch users, groups, schedules or
the task queue."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

EDITOR_PERMISSIONS = {
    "aggregator": {
        "source": ["view", "add", "change"],
        "article": ["view", "change"],
        "story": ["view", "change"],
        "category": ["view", "add", "change"],
        "audiencetag": ["view", "add", "change"],
        "polllog": ["view"],
    },
    "enrichment": {
        "insight": ["view", "change"],
        "correction": ["view"],
        "weeklyrecap": ["view", "add", "change"],
        "apicall": ["view"],
    },
}


def forwards(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Editors")
    wanted = []
    for app_label, models in EDITOR_PERMISSIONS.items():
        for model, actions in models.items():
            for action in actions:
                wanted.append(
                    Permission.objects.get(content_type__app_label=app_label, codename=f"{action}_{model}")
                )
    group.permissions.set(wanted)


class Migration(migrations.Migration):
    dependencies = [
        ("enrichment", "0001_initial"),
        ("aggregator", "0002_default_taxonomy"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
