"""Articles get their body as numbered sentences (enrichment.sentences); the ones stored
before are split here, in chunks, with progress on the console."""

import sys

from django.db import migrations, models

CHUNK = 500


def backfill(apps, schema_editor):
    from aggregator.ingest.clean import html_to_text
    from enrichment.sentences import split

    Article = apps.get_model("aggregator", "Article")
    todo = Article.objects.filter(sentences=[]).order_by("pk")
    total = todo.count()
    if not total:
        return
    done, last = 0, 0
    while True:
        chunk = list(
            Article.objects.filter(pk__gt=last, sentences=[])
            .order_by("pk")
            .only("pk", "title", "language", "text", "content_html", "summary_html")[:CHUNK]
        )
        if not chunk:
            break
        for article in chunk:
            body = article.text or html_to_text(article.content_html or article.summary_html)
            article.sentences = split(body, language=article.language, title=article.title)
        Article.objects.bulk_update([a for a in chunk if a.sentences], ["sentences"])
        last, done = chunk[-1].pk, done + len(chunk)
        sys.stdout.write(f"\n  split the sentences of {done:,} of {total:,} articles")
        sys.stdout.flush()


class Migration(migrations.Migration):
    dependencies = [
        ("aggregator", "0007_featured_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="article",
            name="sentences",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="The body split once into sentences (enrichment.sentences): claims cite them by "
                "number (1 is the first), and the passages readers see are built from them.",
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
