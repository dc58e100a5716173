"""The fake Messages API, driven by the real `anthropic` SDK with strict response validation."""

from __future__ import annotations

import json
import time

import anthropic
import pydantic
import pytest
from anthropic.types.messages import MessageBatchIndividualResponse

from enrichment.backends.claude_schema import ClaudeCard
from enrichment.sentences import numbered, passage_of, split
from enrichment.text import single_date
from tests.fake_anthropic import (
    MISSING_ID,
    UNGROUNDED_PASSAGE,
    FakeAnthropic,
    Reply,
    card_json,
    error,
    max_tokens,
    raw_text,
    refusal,
    slow,
    ungrounded,
    valid_card,
)

ARTICLE = (
    "Helios Labs released the open-weight model Aurora-3 on 18 November 2026 in Port Calder.\n\n"
    "The model has 70 billion parameters and beats Aurora-2 on coding benchmarks by 12 points. "
    "Aurora-2 was released in June 2025.\n\n"
    "Chief executive Mara Lindqvist said companies can now run the model on their own servers! "
    "The company plans a smaller version in 2027."
)
SYSTEM = "You write cards about AI news. " * 40  # long enough to be worth caching
MODEL = "claude-haiku-5-5"


def params(article: str = ARTICLE, system: str = SYSTEM) -> dict:
    """A card request as the site sends it: the article as numbered sentences."""
    return {
        "model": MODEL,
        "max_tokens": 2000,
        "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {
                            "type": "text",
                            "media_type": "text/plain",
                            "data": numbered(split(article)),
                        },
                        "title": "t",
                    },
                    {"type": "text", "text": "Write the card."},
                ],
            }
        ],
    }


@pytest.fixture
def fake():
    with FakeAnthropic() as server:
        yield server


def sdk(fake: FakeAnthropic, **kwargs) -> anthropic.Anthropic:
    kwargs.setdefault("max_retries", 0)
    return anthropic.Anthropic(api_key="test", base_url=fake.url, _strict_response_validation=True, **kwargs)


def test_parse_gets_a_grounded_claude_card(fake):
    msg = sdk(fake).messages.parse(**params(), output_format=ClaudeCard)
    card = msg.parsed_output
    assert isinstance(card, ClaudeCard) and card.category == "ai" and len(card.hook) <= 90
    assert msg.stop_reason == "end_turn" and msg.model == MODEL and msg.id == "msg_1"
    sentences = split(ARTICLE)
    cited = [t.ids for t in card.takeaways] + [i.ids for i in card.implications]
    assert len(card.takeaways) == 3 and all(ids and passage_of(sentences, ids) for ids in cited)
    # Each claim is made of the words of the sentence it cites, dates included; a
    # sentence stating a single date gets none (the site reads it from the sentence), as
    # the prompt asks.
    assert [(t.date, single_date(passage_of(sentences, t.ids))) for t in card.timeline] == [
        ("", "2026-11-18"),
        ("", "2025-06"),
        ("", "2027"),
    ]
    assert all(t.text in passage_of(sentences, t.ids) for t in card.timeline)
    request = fake.message_requests[0]
    assert request["headers"]["Authorization"] == "Bearer test"
    assert request["body"]["output_config"]["format"]["type"] == "json_schema"


def test_the_system_prompt_is_written_to_cache_then_read(fake):
    client = sdk(fake)
    first = client.messages.parse(**params(), output_format=ClaudeCard).usage
    second = client.messages.parse(**params(), output_format=ClaudeCard).usage
    assert first.cache_creation_input_tokens == len(SYSTEM) // 4 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == len(SYSTEM) // 4 and second.cache_creation_input_tokens == 0
    assert first.input_tokens > 0 and first.output_tokens > 0
    fresh = client.messages.create(**params(system="Another system prompt, seen for the first time.")).usage
    assert fresh.cache_creation_input_tokens > 0 and fresh.cache_read_input_tokens == 0


def test_a_429_with_retry_after_is_retried_by_the_sdk(fake):
    fake.queue(error(429, "rate_limit_error", retry_after=0), valid_card(hook="Second try"))
    msg = sdk(fake, max_retries=1).messages.parse(**params(), output_format=ClaudeCard)
    assert msg.parsed_output.hook == "Second try" and len(fake.message_requests) == 2


def test_errors_raise_the_sdk_exception_with_the_api_body(fake):
    fake.queue(error(529, "overloaded_error", "Overloaded"), error(400, "invalid_request_error", "bad"))
    client = sdk(fake)
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client.messages.create(**params())
    assert (
        overloaded.value.status_code == 529 and overloaded.value.body["error"]["type"] == "overloaded_error"
    )
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(**params())


def test_refusal_and_max_tokens_make_parse_raise_so_look_at_stop_reason_first(fake):
    client = sdk(fake)
    for responder in (refusal(), max_tokens()):
        fake.queue(responder)
        with pytest.raises(pydantic.ValidationError):
            client.messages.parse(**params(), output_format=ClaudeCard)
    fake.queue(refusal(), max_tokens())
    refused = client.messages.create(**params())
    assert refused.stop_reason == "refusal" and refused.stop_details.type == "refusal"
    cut = client.messages.create(**params())
    assert cut.stop_reason == "max_tokens" and cut.content[0].text == '{"title": "Trunc'


def test_unusable_cards_come_back_as_written(fake):
    fake.queue(card_json({"title": "x"}), raw_text("not JSON {"), valid_card(hook="x" * 200), ungrounded())
    client = sdk(fake)
    texts = [client.messages.create(**params()).content[0].text for _ in range(4)]
    assert json.loads(texts[0]) == {"title": "x"} and texts[1] == "not JSON {"
    for text in texts[:3]:
        with pytest.raises(pydantic.ValidationError):
            ClaudeCard.model_validate_json(text)
    card = ClaudeCard.model_validate_json(texts[3])
    assert card.takeaways[0].ids == [MISSING_ID] and len(split(ARTICLE)) < MISSING_ID
    assert card.takeaways[0].text == UNGROUNDED_PASSAGE


def test_a_responder_can_be_a_reply_or_a_callable_of_the_body(fake):
    body = json.loads(sdk(fake).messages.create(**params()).model_dump_json())
    body["content"][0]["text"] = "static"
    fake.queue(Reply(200, body), lambda request: Reply(200, {**body, "model": request["model"] + "-echo"}))
    client = sdk(fake)
    assert client.messages.create(**params()).content[0].text == "static"
    assert client.messages.create(**params()).model == MODEL + "-echo"


def test_a_slow_answer_times_out_and_does_not_hold_up_shutdown():
    started = time.monotonic()
    with FakeAnthropic() as fake:
        fake.queue(slow(3))
        with pytest.raises(anthropic.APITimeoutError):
            sdk(fake, timeout=0.3).messages.create(**params())
    assert time.monotonic() - started < 2


def test_a_batch_ends_and_its_results_are_matched_by_custom_id(fake):
    client = sdk(fake)
    articles = {f"article-{n}": ARTICLE.replace("Aurora", f"Model{n}") for n in range(3)}
    fake.batch_errors = {"article-1": "errored"}
    batch = client.messages.batches.create(
        requests=[{"custom_id": cid, "params": params(text)} for cid, text in articles.items()]
    )
    assert batch.processing_status == "in_progress" and batch.request_counts.processing == 3
    assert batch.results_url is None
    polls = 0
    while (batch := client.messages.batches.retrieve(batch.id)).processing_status != "ended":
        polls += 1
    assert polls == fake.batch_polls_before_end == 1
    assert batch.request_counts.succeeded == 2 and batch.request_counts.errored == 1
    assert batch.results_url == f"{fake.url}/v1/messages/batches/{batch.id}/results"

    results = list(client.messages.batches.results(batch.id))
    assert [r.custom_id for r in results] == ["article-2", "article-1", "article-0"]  # not in order
    by_id = {r.custom_id: r.result for r in results}
    for result in results:  # lines are not validated by the SDK: do it strictly here
        MessageBatchIndividualResponse.model_validate(result.model_dump(mode="json"), strict=True)
    assert by_id["article-1"].type == "errored"
    assert by_id["article-1"].error.error.type == "invalid_request_error"
    for cid in ("article-0", "article-2"):
        assert by_id[cid].type == "succeeded" and by_id[cid].message.usage.service_tier == "batch"
        card = ClaudeCard.model_validate_json(by_id[cid].message.content[0].text)
        sentences = split(articles[cid])
        assert all(t.text.rstrip(".") in passage_of(sentences, t.ids) for t in card.takeaways)


def test_count_tokens_answers_the_fakes_estimate_through_the_sdk(fake, settings):
    from enrichment.backends.claude import count_input_tokens, count_text_tokens
    from tests.fake_anthropic import count_tokens

    client = sdk(fake)
    request = params()
    assert count_input_tokens(client, request) == count_tokens(
        {k: request[k] for k in ("model", "system", "messages")}
    )
    # A longer text counts more; one of four characters a token, as the fake's usage.
    short, long = count_text_tokens(client, "a" * 40), count_text_tokens(client, "a" * 400)
    assert long - short == 90
    assert [r["path"] for r in fake.requests][-1] == "/v1/messages/count_tokens"
