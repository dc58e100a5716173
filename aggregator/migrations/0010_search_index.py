"""The stored search index (see aggregator.search): on PostgreSQL a generated tsvector
column with a GIN index, on SQLite an FTS5 table kept in step by triggers."""

from django.db import migrations


def install(apps, schema_editor):
    from aggregator.search import install_search_index

    install_search_index(schema_editor.connection)


def remove(apps, schema_editor):
    from aggregator.search import remove_search_index

    remove_search_index(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("aggregator", "0009_listing_indexes"),
    ]

    operations = [migrations.RunPython(install, remove)]
