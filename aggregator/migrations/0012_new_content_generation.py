"""The second generation row (aggregator.pagecache): the number new content moves, so
pages keyed on the editorial number (row 1) may be served a few seconds past it."""

import time

from django.db import migrations


def second_row(apps, schema_editor):
    apps.get_model("aggregator", "ContentGeneration").objects.using(
        schema_editor.connection.alias
    ).get_or_create(pk=2, defaults={"value": int(time.time())})


class Migration(migrations.Migration):
    dependencies = [
        ("aggregator", "0011_lease"),
    ]

    operations = [migrations.RunPython(second_row, migrations.RunPython.noop)]
