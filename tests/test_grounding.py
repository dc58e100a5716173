"""Grounding rules: a claim is shown only when its passage is a full clause of the
article's body and states every number, date and name of the claim, with the same
negation. Adversarial claims come from the model, through the real SDK and the real
Claude backend, against the fake Messages API on loopback."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from aggregator.ingest.extract import extract_html
from aggregator.models import Article, Source
from enrichment.grounding import ArticleText, check_claim, numbers
from enrichment.models import Insight
from enrichment.service import enrich_article
from tests import fake_anthropic as fa

pytestmark = pytest.mark.django_db

TITLE = "Helios Labs says its new Aurora-3 model will cut cloud bills by half for every customer"
LEAD = "Helios Labs released the open-weight model Aurora-3 on 18 November 2026 in Port Calder."
PARAMS = "The model has 70 billion parameters and beats Aurora-2 on coding benchmarks by 12 points."
SERVERS = "Chief executive Mara Lindqvist said companies can now run the model on their own servers."
PRICE = "The company does not plan to raise the price of its hosted version next year."
HIDDEN = "Helios Labs paid a fine of 40 million dollars for misleading investors in 2024."
PAGE = f"""<!doctype html><html lang="en"><head><title>{TITLE}</title></head><body><main><article>
<h1>{TITLE}</h1>
<p>{LEAD}</p>
<p>{PARAMS} Aurora-2 was released in June 2025.</p>
<p style="display: none">{HIDDEN}</p>
<p hidden>{HIDDEN}</p>
<p>{SERVERS} {PRICE}</p>
<p>Developers on GitHub began testing the model within hours, the company said.</p>
</article></main></body></html>"""


@pytest.fixture
def fake(claude_api, settings):
    settings.GROUNDING_MODE = "drop"
    return claude_api


def extracted_article() -> Article:
    """The page through the real extractor, as the pipeline stores it."""
    extraction = extract_html(PAGE, url="http://127.0.0.1:9/helios")
    source = Source.objects.create(
        name="Northwind", slug="nw", feed_url="http://127.0.0.1:9/feed", language="en"
    )
    return Article.objects.create(
        source=source,
        guid="helios",
        url="http://127.0.0.1:9/helios",
        title=TITLE,
        text=extraction.text,
        language="en",
        state=Article.State.EXTRACTED,
        published_at=timezone.now(),
    )


ADVERSARIAL = {
    "changed number": ("The model has 80 billion parameters.", PARAMS, "the number 80"),
    "negation flipped": ("Companies cannot run the model on their own servers.", SERVERS, "negation"),
    "negation dropped": ("The company plans to raise the price of its hosted version.", PRICE, "negation"),
    "headline-only passage": ("Aurora-3 will cut cloud bills by half.", TITLE, "only in the headline"),
    "hidden text": ("Helios Labs paid a fine of 40 million dollars in 2024.", HIDDEN, "not in the article"),
    "three common words": ("The company said more will follow.", "the company said", "not a full clause"),
    "name changed": ("Chief executive John Smith said companies can run it.", SERVERS, "name “John”"),
    "date changed": ("Helios Labs released Aurora-3 on 18 December 2026.", LEAD, "month 12"),
}


def card_with_takeaway(text: str, passage: str) -> fa.Responder:
    """A valid card (grounded, from the fake) whose first takeaway is replaced."""

    def respond(body, fake):
        card = fa.card_for(body)
        card["takeaways"][0] = {"text": text, "passage": passage}
        return fa.Reply(200, fa.message(body, fake, text=json.dumps(card)))

    return respond


@pytest.mark.parametrize("case", ADVERSARIAL)
def test_an_adversarial_claim_from_the_model_is_not_shown(fake, client, case):
    claim, passage, reason = ADVERSARIAL[case]
    article = extracted_article()
    assert HIDDEN not in article.text and TITLE not in article.text.splitlines()[1:]
    fake.queue(card_with_takeaway(claim, passage))
    assert enrich_article(article.pk).startswith("enriched by claude")
    insight = Insight.objects.get(article=article)
    assert claim not in [t["text"] for t in insight.takeaways]
    assert insight.unsupported_claims >= 1
    dropped = [d for d in insight.dropped if d["text"] == claim]
    assert dropped and reason in dropped[0]["reason"], insight.dropped
    html = client.get(article.get_absolute_url()).content.decode()
    assert claim not in html
    # The rest of the card stands: its claims are the article's own.
    assert len(insight.takeaways) == 2 and insight.grounded_claims >= 5


def test_hook_and_tldr_are_checked_the_same_way_and_their_passages_kept(fake, client):
    article = extracted_article()
    fake.queue(
        fa.valid_card(
            hook="Aurora-3 has 90 billion parameters",
            hook_passage=PARAMS,
            what_changed="Helios Labs released Aurora-3 in Port Calder.",
            what_changed_passage=LEAD,
            why_it_matters="Companies cannot run it on their own servers.",
            why_it_matters_passage=SERVERS,
        )
    )
    enrich_article(article.pk)
    insight = Insight.objects.get(article=article)
    assert insight.hook == "" and insight.why_it_matters == ""
    assert insight.what_changed == "Helios Labs released Aurora-3 in Port Calder."
    assert insight.support == {"what_changed": LEAD}
    assert {d["part"] for d in insight.dropped} == {"hook", "why it matters"}
    html = client.get(article.get_absolute_url()).content.decode()
    assert "90 billion" not in html and "cannot run" not in html
    assert "The passage it rests on" in html and LEAD in html


def test_a_grounded_translated_claim_passes():
    article = ArticleText(
        body="Helios Labs veröffentlichte am 18. November 2026 das Modell Aurora-3 mit 70 Milliarden "
        "Parametern. Die EU-Kommission prüft den Fall nicht.",
        language="de",
        claim_language="en",
    )
    passage = (
        "Helios Labs veröffentlichte am 18. November 2026 das Modell Aurora-3 mit 70 Milliarden Parametern."
    )
    assert (
        check_claim(
            "Helios Labs released Aurora-3, with 70 billion parameters, in November 2026.", passage, article
        )
        == ""
    )
    assert "80" in check_claim("Helios Labs released Aurora-3 with 80 billion parameters.", passage, article)
    assert "negation" in check_claim(
        "The Commission is examining the case.", "Die EU-Kommission prüft den Fall nicht.", article
    )


def test_numbers_are_read_the_way_each_language_writes_them():
    assert set(numbers("1,000 and 1.000 and 2,5 and 2.5")) == {"1000", "2.5"}
    assert 7e10 in numbers("参数规模达700亿")["700"] and 7e10 in numbers("70 billion")["70"]
    assert 7e10 in numbers("70 Milliarden")["70"]


def test_a_passage_cut_out_of_words_is_not_in_the_text():
    article = ArticleText(body=SERVERS)
    assert "not in the article" in check_claim(
        "Companies can run the model.",
        "ief executive Mara Lindqvist said companies can now run the mo",
        article,
    )
