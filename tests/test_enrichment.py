from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aggregator.models import Article, AudienceTag, Category, Source, Story
from enrichment import text as tx
from enrichment.backends import SourceText, get_enricher
from enrichment.backends.extractive import ExtractiveEnricher
from enrichment.grounding import passage_in
from enrichment.models import Insight
from enrichment.service import enrich_article, grounded

STORY = """Helios Labs released the open-weight language model Aurora-3 on Wednesday, with 70 billion parameters.

The model beats its predecessor on coding benchmarks by 12 points, the company said. In June 2025, Helios Labs released Aurora-2, which developers adopted quickly.

Chief executive Mara Lindqvist said the permissive licence matters because companies can run the model on their own servers.

The company plans to release a smaller version by the second quarter of 2027. Analysts expect competitors will respond with open models of their own.

Developers on GitHub began testing the model within hours, and several open-source projects added support for its API."""


def source_text(**kwargs) -> SourceText:
    defaults = dict(
        article_id=1,
        title="Helios Labs releases Aurora-3",
        text=STORY,
        language="en",
        source_name="Northwind",
        published_at=datetime(2026, 11, 18, 12, tzinfo=UTC),
        categories={"ai": "model, language model, open-weight", "business": "funding, shares"},
        audiences={
            "developers": "developers, github, api, open-source, coding",
            "investors": "funding, shares, valuation",
        },
    )
    return SourceText(**{**defaults, **kwargs})


def test_sentences_respect_abbreviations_dates_and_cjk():
    assert tx.sentences("Am 3. Juli 2026 fiel das Netz aus. Dr. Weber sagte das. Es folgt mehr.") == [
        "Am 3. Juli 2026 fiel das Netz aus.",
        "Dr. Weber sagte das.",
        "Es folgt mehr.",
    ]
    assert tx.sentences("模型已发布。预计明年推出新版本！") == ["模型已发布。", "预计明年推出新版本！"]


@pytest.mark.parametrize(
    "sentence, value",
    [
        ("It happened on 18 November 2026 in Port Calder.", "2026-11-18"),
        ("It happened on November 18, 2026.", "2026-11-18"),
        ("Aurora-2 shipped in June 2025.", "2025-06"),
        ("Am 14. Oktober 2026 stimmte der Rat ab.", "2026-10-14"),
        ("Im März 2024 begann das Projekt.", "2024-03"),
        ("2026年10月14日，公司发布了模型。", "2026-10-14"),
        ("2024年3月，项目启动。", "2024-03"),
    ],
)
def test_it_finds_explicit_dates(sentence, value):
    assert [d.value for d in tx.find_dates(sentence)] == [value]


@pytest.mark.parametrize(
    "sentence",
    [
        "The vote is set for 2026-02-31.",
        "The vote is set for 31 February 2026.",
        "The vote is set for February 30, 2027.",
        "Am 31. April 2026 stimmte der Rat ab.",
        "2026年2月30日，公司发布了模型。",
        "Filed as 2026-13-01 and 2025-02-29.",
        "Issue 2026-00-10.",
    ],
)
def test_an_impossible_date_is_no_date(sentence):
    assert tx.find_dates(sentence) == []


def test_a_leap_day_is_a_date():
    assert [d.value for d in tx.find_dates("It opened on 2028-02-29.")] == ["2028-02-29"]


def test_no_date_is_found_where_there_is_none():
    assert tx.find_dates("The 12 points and 70 billion parameters are not dates.") == []


def test_the_extractive_card_has_every_part_and_each_claim_its_passage():
    draft = ExtractiveEnricher().enrich(source_text())
    assert draft.backend == "extractive"
    assert 0 < len(draft.hook) <= 90
    assert draft.what_changed.startswith("Helios Labs released")
    assert not draft.what_changed.startswith(draft.hook[:30]) and draft.hook not in draft.why_it_matters
    assert "because" in draft.why_it_matters
    assert draft.what_next == ""  # the article gives no advice, and no stock line stands in
    assert 1 <= len(draft.takeaways) <= 5  # each sentence is used once on the card
    # Claims cite the stored sentences by id, as Claude's do; grounding builds the passages.
    source = source_text()
    assert all(len(t.sentences) == 1 for t in draft.takeaways + draft.implications + draft.timeline)
    assert set(draft.cites) == {"what_changed", "hook", "why_it_matters"}
    kept, counts = grounded(draft, source)
    assert counts.unsupported == 0
    assert all(t.passage == source.sentences[t.sentences[0] - 1] for t in kept.takeaways)
    assert all(passage_in(t.passage, STORY) for t in kept.takeaways)
    assert any("second quarter of 2027" in i.prediction for i in draft.implications)
    assert all(passage_in(i.passage, STORY) for i in kept.implications)
    assert kept.support["what_changed"] == kept.what_changed
    assert [e.date for e in draft.timeline] == ["2025-06"]
    assert draft.category == "ai"
    assert list(draft.audiences) == ["developers"] and "github" in draft.audiences["developers"]


def test_it_is_deterministic():
    one, two = (ExtractiveEnricher().enrich(source_text()) for _ in range(2))
    assert one == two


def test_an_empty_article_gets_an_empty_card_not_an_error():
    draft = ExtractiveEnricher().enrich(source_text(text=""))
    assert draft.takeaways == [] and draft.hook == ""


def test_grounding_drops_claims_whose_passage_is_not_in_the_text():
    draft = ExtractiveEnricher().enrich(source_text())
    draft.takeaways[0].sentences = [999]
    draft.what_changed = "A law that does not exist was passed in 2025."
    kept, counts = grounded(draft, source_text())
    assert kept.takeaways == [] and kept.what_changed == "" and "what_changed" not in kept.support
    assert counts.unsupported == 2 and counts.kept >= 3
    assert [d["reason"] for d in kept.dropped] == [
        "the number 2025 is not in its passage",
        "it cites sentence 999, which the article does not have",
    ]


def test_grounding_tolerates_whitespace_quotes_and_case():
    text = "Lindqvist said: “We will ship it.”\n\nMore  text   here."
    assert passage_in('lindqvist said: "we will ship it."', text)
    assert passage_in("More text here", text)
    assert not passage_in("We will not ship it", text)
    assert not passage_in("it", text)  # too short to prove anything


def test_the_configured_backend_is_used(settings):
    settings.ENRICHMENT_BACKEND = "extractive"
    assert get_enricher().name == "extractive"


@pytest.mark.django_db
def test_enriching_stores_the_card_audiences_and_category_and_can_run_twice():
    source = Source.objects.create(
        name="Northwind",
        slug="nw",
        feed_url="http://127.0.0.1:9/f",
        category=Category.objects.get(slug="business"),
    )
    article = Article.objects.create(
        source=source,
        guid="1",
        url="http://127.0.0.1:9/1",
        title="Helios Labs releases Aurora-3",
        text=STORY,
        state=Article.State.EXTRACTED,
        category=source.category,
        published_at=datetime(2026, 11, 18, 12, tzinfo=UTC),
    )
    assert enrich_article(article.pk).startswith("enriched")
    assert enrich_article(article.pk).startswith("skipped")
    article.refresh_from_db()
    insight = Insight.objects.get(article=article)
    assert article.state == Article.State.ENRICHED
    assert insight.takeaways and insight.hook and insight.generated_at
    assert article.category.slug == "ai"  # the text says so louder than the source's default
    assert "developers" in set(article.audiences.values_list("slug", flat=True))
    assert enrich_article(article.pk, force=True).startswith("enriched")
    assert Insight.objects.count() == 1


@pytest.mark.django_db
def test_the_timeline_links_earlier_articles_of_the_same_story():
    source = Source.objects.create(name="S", slug="s", feed_url="http://127.0.0.1:9/f")
    story = Story.objects.create(headline="Aurora-3")
    first = Article.objects.create(
        source=source,
        guid="1",
        url="http://127.0.0.1:9/1",
        title="Aurora-3 is out",
        text=STORY,
        story=story,
        state=Article.State.ENRICHED,
        published_at=datetime(2026, 11, 18, tzinfo=UTC),
        sort_at=datetime(2026, 11, 18, tzinfo=UTC),
    )
    second = Article.objects.create(
        source=source,
        guid="2",
        url="http://127.0.0.1:9/2",
        title="Developers react to Aurora-3",
        text=STORY,
        story=story,
        state=Article.State.EXTRACTED,
        published_at=datetime(2026, 11, 20, tzinfo=UTC),
        sort_at=datetime(2026, 11, 20, tzinfo=UTC),
    )
    enrich_article(second.pk)
    insight = Insight.objects.get(article=second)
    linked = [e for e in insight.timeline if e["article_id"]]
    assert linked == [
        {
            "date": "2026-11-18",
            "text": "Aurora-3 is out",
            "passage": "",
            "article_id": first.pk,
            "supported": True,
            "sentences": [],
        }
    ]
    assert insight.related_ids[0] == first.pk


@pytest.mark.django_db
def test_editors_can_change_the_audience_taxonomy():
    AudienceTag.objects.create(name="Astronomers", slug="astronomers", keywords="telescope, galaxy")
    source = Source.objects.create(name="S", slug="s", feed_url="http://127.0.0.1:9/f")
    article = Article.objects.create(
        source=source,
        guid="1",
        url="http://127.0.0.1:9/1",
        title="A new galaxy",
        text="The telescope found a galaxy that nobody had seen before. The galaxy is very far away indeed.",
        state=Article.State.EXTRACTED,
    )
    enrich_article(article.pk)
    assert list(article.audiences.values_list("slug", flat=True)) == ["astronomers"]
