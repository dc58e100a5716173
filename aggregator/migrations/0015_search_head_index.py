"""PostgreSQL: a GIN index on the head vector (title and excerpt) and the function that
makes any-of-these-words of a query, so a search reads the matches that rank above the
rest through the index instead of reading every match (see aggregator.search.best_matches).
SQLite: no change."""

from django.db import migrations


def forwards(apps, schema_editor):
    from aggregator.search import install_search_index

    install_search_index(schema_editor.connection)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        from aggregator.search import PG_ANY, PG_HEAD_INDEX

        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"DROP INDEX IF EXISTS {PG_HEAD_INDEX}; DROP FUNCTION IF EXISTS {PG_ANY}(tsquery)")


class Migration(migrations.Migration):
    dependencies = [
        ("aggregator", "0014_article_step_failures"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
