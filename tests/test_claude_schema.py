"""The card schema that spends few output tokens (issue 13): what the model no longer
writes is computed, older answers still validate, and the card still shows every part.
Through the fake Messages API and the real SDK."""

from __future__ import annotations

import json

import pytest

from enrichment.backends.claude import SYSTEM_PROMPT, bare_schema
from enrichment.backends.claude_schema import LIMITS, ClaudeCard
from enrichment.grounding import NO_DATE
from enrichment.models import ApiCall, Insight
from enrichment.sentences import sentences_of
from enrichment.service import enrich_article
from tests import fake_anthropic as fa
from tests.test_claude import make_article

pytestmark = pytest.mark.django_db

HEADLINE = "Helios Labs releases Aurora-3"
TWO_DATES = "Helios Labs announced Aurora-1 in March 2023 and Aurora-2 in June 2025 at its campus."
TEXT = f"""Helios Labs released the open-weight model Aurora-3 on 18 November 2026 in Port Calder.

The model has 70 billion parameters and beats Aurora-2 on coding benchmarks by 12 points.

{TWO_DATES}

Chief executive Mara Lindqvist said companies can now run the model on their own servers. The company plans a smaller version in 2027."""


@pytest.fixture
def fake(claude_api):
    return claude_api


def english_article():
    return make_article(TEXT, title=HEADLINE, slug="en", language="en")


def test_an_article_in_the_sites_language_gets_the_publishers_headline_not_a_written_title(
    fake, client, settings
):
    settings.SITE_LANGUAGE = "en"
    article = english_article()
    assert enrich_article(article.pk).startswith("enriched by claude")
    assert "title" not in _answer(fake)  # the model was told to leave it out
    insight = Insight.objects.get(article=article)
    assert insight.backend == "claude" and insight.title == HEADLINE
    html = client.get(article.get_absolute_url()).content.decode()
    assert HEADLINE in html and "Fake headline" not in html


def test_audiences_are_asked_as_slugs_and_shown_as_tags(fake, client, settings):
    settings.SITE_LANGUAGE = "en"
    article = english_article()
    enrich_article(article.pk)
    assert _answer(fake)["audiences"] == ["developers"]
    insight = Insight.objects.get(article=article)
    assert insight.audience_reasons == {"developers": ""}
    assert list(article.audiences.values_list("slug", flat=True)) == ["developers"]
    html = client.get(article.get_absolute_url()).content.decode()
    assert "Who should care" in html and 'class="reason"' not in html


def test_a_timeline_date_left_out_is_read_from_its_sentence_and_shown(fake, client, settings):
    settings.SITE_LANGUAGE = "en"
    article = english_article()
    enrich_article(article.pk)
    # Two of the fake's entries cite a sentence with a single date and leave it out; the
    # third cites TWO_DATES and gives one.
    answer = _answer(fake)
    assert [t.get("date", "") for t in answer["timeline"]] == ["", "2023", ""]
    insight = Insight.objects.get(article=article)
    assert sorted(t["date"] for t in insight.timeline) == ["2023", "2026-11-18", "2027"]
    html = client.get(article.get_absolute_url()).content.decode()
    assert 'datetime="2026-11-18"' in html and 'datetime="2027"' in html


def test_an_undated_entry_whose_sentence_states_two_dates_is_dropped_and_counted(fake, settings):
    settings.SITE_LANGUAGE = "en"
    article = english_article()
    n = sentences_of(article).index(TWO_DATES) + 1

    def respond(body, fake):
        card = fa.card_for(body)
        card["timeline"] = [{"text": "Helios Labs announced Aurora-1 and Aurora-2.", "ids": [n]}]
        return fa.Reply(200, fa.message(body, fake, text=json.dumps(card)))

    fake.queue(respond)
    enrich_article(article.pk)
    insight = Insight.objects.get(article=article)
    assert insight.backend == "claude" and insight.timeline == []
    assert insight.unsupported_claims == 1
    assert [(d["part"], d["reason"], d["sentences"]) for d in insight.dropped] == [("timeline", NO_DATE, [n])]


def test_an_answer_to_the_schema_before_is_read_the_same(fake, client, settings):
    """A batch submitted before the deploy comes back in the earlier shape: a title, every
    date, and `sentences` / `*_sentences` for the ids. It validates and gives the card."""
    settings.SITE_LANGUAGE = "en"
    article = english_article()

    def respond(body, fake):
        card = _renamed(fa.card_for(body), {"ids": "sentences"})
        card["title"] = "Aurora-3 is out"
        card["audiences"] = [{"slug": "developers", "reason": "They can run it themselves."}]
        for item in card["timeline"]:
            item["date"] = "2026"  # given although it could be read
        return fa.Reply(200, fa.message(body, fake, text=json.dumps(card)))

    fake.queue(respond)
    assert enrich_article(article.pk).startswith("enriched by claude")
    insight = Insight.objects.get(article=article)
    assert insight.title == "Aurora-3 is out" and insight.support_sentences["hook"]
    assert all(t["sentences"] and t["passage"] for t in insight.takeaways)
    # A given date is used as given: right for the first entry, wrong (dropped) for the rest.
    assert [t["date"] for t in insight.timeline] == ["2026"]
    assert insight.audience_reasons == {"developers": "They can run it themselves."}
    html = client.get(article.get_absolute_url()).content.decode()
    assert "Aurora-3 is out" in html and "They can run it themselves." in html


def test_an_answer_with_a_field_the_schema_dropped_is_refused_by_name(fake, client, settings):
    """A copied passage (the schema before sentence ids) is no longer a field: the answer
    fails validation, is recorded, and the article keeps its extractive card."""
    article = english_article()

    def respond(body, fake):
        card = fa.card_for(body)
        card["hook_passage"] = "Helios Labs released the open-weight model Aurora-3."
        return fa.Reply(200, fa.message(body, fake, text=json.dumps(card)))

    fake.queue(respond)
    assert "extractive card kept" in enrich_article(article.pk)
    insight = Insight.objects.get(article=article)
    assert insight.backend == "extractive" and "hook_passage" in insight.error
    assert ApiCall.objects.get().outcome == "invalid"


def test_the_schema_sent_says_no_more_than_the_prompt_and_the_prompt_states_every_limit():
    sent = json.dumps(bare_schema(ClaudeCard.model_json_schema()))
    for keyword in ('"title"', '"default"', "maxLength", "minItems", "pattern"):
        assert keyword not in sent.replace('"title": {', "")  # the field `title` stays
    assert '"title": {' in sent and '"ids"' in sent
    for field, limit in LIMITS.items():
        if field != "title":
            assert f"at most {limit}" in SYSTEM_PROMPT, field


def _answer(fake) -> dict:
    """The card the fake answered the first message request with (it is a function of
    the request)."""
    return fa.card_for(fake.message_requests[0]["body"])


def _renamed(node, names: dict[str, str]):
    """`node` with keys `x` and `*_x` renamed to names[x] and `*_names[x]`."""
    if isinstance(node, list):
        return [_renamed(v, names) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        for old, new in names.items():
            if key == old:
                key = new
            elif key.endswith(f"_{old}"):
                key = key[: -len(old)] + new
        out[key] = _renamed(value, names)
    return out
