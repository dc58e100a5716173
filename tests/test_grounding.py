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
from enrichment.grounding import ArticleText, check_cited, check_claim, numbers
from enrichment.models import Insight
from enrichment.sentences import passage_of, sentences_of
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


HEADLINE, MISSING, SIX = "headline", "missing", "six sentences"
ADVERSARIAL = {
    "changed number": ("The model has 80 billion parameters.", PARAMS, "the number 80"),
    "negation flipped": ("Companies cannot run the model on their own servers.", SERVERS, "negation"),
    "negation dropped": ("The company plans to raise the price of its hosted version.", PRICE, "negation"),
    # The headline has no number: the document's sentences are the body's only.
    "headline cited": ("Aurora-3 will cut cloud bills by half.", HEADLINE, "does not have"),
    "missing id": ("Helios Labs paid a fine of 40 million dollars in 2024.", MISSING, "does not have"),
    "hidden text's number": ("Helios Labs paid a fine of 40 million dollars in 2024.", LEAD, "the number 40"),
    "too many sentences": ("Helios Labs released a model.", SIX, "at most 4"),
    "name changed": ("Chief executive John Smith said companies can run it.", SERVERS, "name “John”"),
    "date changed": ("Helios Labs released Aurora-3 on 18 December 2026.", LEAD, "month 12"),
}


def ids_in(body: dict, cite: str) -> list[int]:
    """The sentence ids a claim cites, read from the numbered document the model got."""
    numbered = dict((s, n) for n, s in fa.numbered_sentences(fa.article_text(body)))
    if cite == HEADLINE:
        return [0]
    if cite == MISSING:
        return [max(numbered.values()) + 1]
    if cite == SIX:
        return sorted(numbered.values())[:6]
    return [numbered[cite]]


def card_with_takeaway(text: str, cite: str) -> fa.Responder:
    """A valid card (grounded, from the fake) whose first takeaway is replaced."""

    def respond(body, fake):
        card = fa.card_for(body)
        card["takeaways"][0] = {"text": text, "ids": ids_in(body, cite)}
        return fa.Reply(200, fa.message(body, fake, text=json.dumps(card)))

    return respond


@pytest.mark.parametrize("case", ADVERSARIAL)
def test_an_adversarial_claim_from_the_model_is_not_shown(fake, client, case, settings):
    claim, cite, reason = ADVERSARIAL[case]
    article = extracted_article()
    assert HIDDEN not in article.text and TITLE not in article.text.splitlines()[1:]
    fake.queue(card_with_takeaway(claim, cite))
    assert enrich_article(article.pk).startswith("enriched by claude")
    insight = Insight.objects.get(article=article)
    assert claim not in [t["text"] for t in insight.takeaways]
    assert insight.unsupported_claims >= 1
    dropped = [d for d in insight.dropped if d["text"] == claim]
    assert dropped and reason in dropped[0]["reason"], insight.dropped
    html = client.get(article.get_absolute_url()).content.decode()
    assert claim not in html
    # The rest of the card stands: its claims are the article's own, and every passage
    # shown is the stored sentences it cites, never text from the model.
    article.refresh_from_db()
    assert len(insight.takeaways) == 2 and insight.grounded_claims >= 5
    for item in insight.takeaways + insight.implications + insight.timeline:
        assert item["sentences"] and item["passage"] == passage_of(article.sentences, item["sentences"])
    for part, passage in insight.support.items():
        assert passage == passage_of(article.sentences, insight.support_sentences[part])


def test_the_headline_is_never_a_numbered_sentence_and_never_a_passage():
    article = extracted_article()
    sentences = sentences_of(article)
    assert TITLE not in sentences and sentences[0] == LEAD
    # Even a sentence equal to the headline (a headline changed after the split) is refused.
    text = ArticleText(body=article.text, title=LEAD, sentences=sentences)
    passage, reason = check_cited("Helios Labs released Aurora-3 in Port Calder.", [1], text)
    assert passage == LEAD and "only in the headline" in reason


def test_a_shown_passage_is_the_stored_sentences_whatever_the_claim_quotes(fake, client):
    article = extracted_article()
    fake.queue(fa.valid_card())
    enrich_article(article.pk)
    article.refresh_from_db()
    insight = Insight.objects.get(article=article)
    assert insight.backend == "claude" and insight.takeaways
    html = client.get(article.get_absolute_url()).content.decode()
    for item in insight.takeaways:
        assert item["passage"] == passage_of(article.sentences, item["sentences"])
        assert item["passage"] in article.sentences
    assert insight.dropped == []
    # The model was sent the body as numbered sentences, the headline apart.
    document = fa.article_text(fake.message_requests[-1]["body"])
    assert document.splitlines()[0] == f"[1] {LEAD}" and TITLE not in document
    assert LEAD in html


def test_hook_and_tldr_are_checked_the_same_way_and_their_passages_kept(fake, client):
    article = extracted_article()
    ids = {s: n for n, s in enumerate(sentences_of(article), 1)}
    fake.queue(
        fa.valid_card(
            hook="Aurora-3 has 90 billion parameters",
            hook_ids=[ids[PARAMS]],
            what_changed="Helios Labs released Aurora-3 in Port Calder.",
            what_changed_ids=[ids[LEAD]],
            why_it_matters="Companies cannot run it on their own servers.",
            why_it_matters_ids=[ids[SERVERS]],
        )
    )
    enrich_article(article.pk)
    insight = Insight.objects.get(article=article)
    assert insight.hook == "" and insight.why_it_matters == ""
    assert insight.what_changed == "Helios Labs released Aurora-3 in Port Calder."
    assert insight.support == {"what_changed": LEAD}
    assert insight.support_sentences == {"what_changed": [ids[LEAD]]}
    assert {d["part"] for d in insight.dropped} == {"hook", "why it matters"}
    html = client.get(article.get_absolute_url()).content.decode()
    assert "90 billion" not in html and "cannot run" not in html
    assert "The passage it rests on" in html and LEAD in html


def test_an_older_card_with_verbatim_passages_still_renders(client):
    article = extracted_article()
    Article.objects.filter(pk=article.pk).update(state=Article.State.ENRICHED)
    Insight.objects.create(
        article=article,
        backend="claude",
        model_name="claude-haiku-4-5",
        what_changed="Helios Labs released Aurora-3.",
        support={"what_changed": LEAD},
        takeaways=[{"text": "Aurora-3 has 70 billion parameters.", "passage": PARAMS, "supported": True}],
        generated_at=timezone.now(),
    )
    html = client.get(article.get_absolute_url()).content.decode()
    assert "Aurora-3 has 70 billion parameters." in html and PARAMS in html and LEAD in html


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
