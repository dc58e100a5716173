"""What Claude cards cost, before and after claims cite sentence numbers (issue 13), in
the same run on the demo corpus:

- before: the article sent as plain text and every passage copied verbatim into the
  answer (the prompt and answer the site used until then);
- after: the article sent as numbered sentences and every claim citing ids ([3, 4]).

Tokens are counted with the SDK's `messages.count_tokens` against the real API when
ANTHROPIC_API_KEY is set (and ANTHROPIC_BASE_URL is not); otherwise input tokens come
from the fake Messages API's count_tokens on loopback and answers and prompts from its
estimate (a token per four characters, what it reports as usage). The
answers are the fake API's card for each article, the same claims written both ways.
Each call's figures are written to a JSON-lines file (printed at the end). Then the
"after" pipeline runs end to end through the fake API (enrich_article, one call per
article, then Message Batches) and its recorded spend is printed beside the counts.

Dollars per 1,000 articles are given at the configured model's prices and at Claude
Haiku 4.5's list prices ($1 / $5 per million, the issue's yardstick), with and without
batches. The cacheable prefix (the system prompt) is printed next to the model's minimum
(CACHE_MIN_TOKENS, 4,096 assumed); a cache saving is counted only above it.

    .venv/bin/python bench/claude_cost.py
"""

from __future__ import annotations

import io
import json
import os
import statistics
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REAL_KEY = os.environ.get("ANTHROPIC_API_KEY", "") if not os.environ.get("ANTHROPIC_BASE_URL") else ""
os.environ.update(
    DATA_DIR=tempfile.mkdtemp(prefix="bench-claude-"),
    SECRET_KEY="bench",
    LOG_LEVEL="WARNING",
    FETCH_ALLOWED_NETWORKS="127.0.0.0/8",
    DJANGO_SETTINGS_MODULE="aggregator.settings",
)
os.environ.pop("DATABASE_URL", None)
os.environ.pop("REDIS_URL", None)

import django  # noqa: E402

django.setup()

import anthropic  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Count, Sum  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402

from aggregator.demo.server import make_server  # noqa: E402
from aggregator.ingest.clean import strip_invisible  # noqa: E402
from aggregator.models import Article  # noqa: E402
from enrichment.backends import claude  # noqa: E402
from enrichment.batches import collect_batches, submit_batch  # noqa: E402
from enrichment.models import ApiCall, Insight  # noqa: E402
from enrichment.sentences import passage_of  # noqa: E402
from enrichment.service import enrich_article, source_text  # noqa: E402
from tests import fake_anthropic as fa  # noqa: E402

HAIKU_45 = {"input": 1.00, "output": 5.00, "cache_write": 1.25, "cache_read": 0.10}

# The grounding rules of the prompt before issue 13 (passages copied verbatim); the rest
# of the prompt is the same in both.
VERBATIM_RULES = """\
Grounding rules, which decide whether a claim is shown at all:
- Every takeaway, implication and timeline entry has a `passage`: one or two sentences
  copied VERBATIM from the document, in the document's original language, that support
  it. Copy the characters exactly; do not translate, shorten or paraphrase the passage.
- The hook, what_changed and why_it_matters rest on passages too (hook_passage,
  what_changed_passage, why_it_matters_passage), copied the same way.
- A passage is the article's body, never its headline, and at least one full sentence.
  Every number, date and name in a claim must appear in its passage, and a claim keeps
  the passage's negation ("not", "no", "never"). A claim that breaks this is not shown.
- A claim you cannot support with such a passage must be left out."""


# The card schema before issue 13 (git c6f9489: enrichment/backends/claude_schema.py),
# every claim with a verbatim passage: the baseline's output format.
ISO_DATE = r"^\d{4}(-\d{2}(-\d{2})?)?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VerbatimTakeaway(_Strict):
    text: str = Field(min_length=1, max_length=300, description="One takeaway, in the site's language.")
    passage: str = Field(
        min_length=8,
        max_length=600,
        description="The exact sentence(s) of the document it rests on, copied verbatim.",
    )


class VerbatimImplication(_Strict):
    prediction: str = Field(min_length=1, max_length=300, description="What is likely to follow.")
    reasoning: str = Field(min_length=1, max_length=400, description="Why, from the document.")
    passage: str = Field(
        min_length=8, max_length=600, description="The passage of the document it rests on, verbatim."
    )


class VerbatimTimelineItem(_Strict):
    date: str = Field(
        pattern=ISO_DATE, description="YYYY, YYYY-MM or YYYY-MM-DD, as precise as the text allows."
    )
    text: str = Field(min_length=1, max_length=240, description="What happened then, in the site's language.")
    passage: str = Field(
        min_length=8, max_length=600, description="The passage of the document stating it, verbatim."
    )


class VerbatimAudience(_Strict):
    slug: str = Field(description="One of the audience slugs listed in the instructions.")
    reason: str = Field(min_length=1, max_length=200, description="Why this audience should care.")


class VerbatimClaudeCard(_Strict):
    title: str = Field(min_length=1, max_length=200, description="The headline in the site's language.")
    hook: str = Field(min_length=1, max_length=90, description="One line, why to read on.")
    hook_passage: str = Field(
        min_length=8,
        max_length=600,
        description="The sentence(s) of the document the hook rests on, verbatim.",
    )
    what_changed: str = Field(min_length=1, max_length=400)
    what_changed_passage: str = Field(
        min_length=8, max_length=600, description="The sentence(s) stating what changed, verbatim."
    )
    why_it_matters: str = Field(min_length=1, max_length=400)
    why_it_matters_passage: str = Field(
        min_length=8, max_length=600, description="The sentence(s) saying why it matters, verbatim."
    )
    what_next: str = Field(min_length=1, max_length=300, description="A concrete next step for the reader.")
    category: str = Field(description="One of the category slugs listed in the instructions.")
    audiences: list[VerbatimAudience] = Field(max_length=3)
    takeaways: list[VerbatimTakeaway] = Field(min_length=3, max_length=5)
    implications: list[VerbatimImplication] = Field(max_length=3)
    timeline: list[VerbatimTimelineItem] = Field(max_length=8)


def before_params(source) -> dict:
    """The request as it was: plain text, the verbatim-passage prompt and schema."""
    params = claude.request_params(source)
    system = params["system"][0]["text"]
    start = system.index("Grounding rules")
    end = system.index("- Plain text only")
    params["system"] = [
        {**params["system"][0], "text": system[:start] + VERBATIM_RULES + "\n" + system[end:]}
    ]
    document = params["messages"][0]["content"][0]
    document["source"]["data"] = (
        strip_invisible(source.text)[: settings.CLAUDE_MAX_INPUT_CHARS] or "(no text)"
    )
    params["output_config"] = {
        "format": {
            "type": "json_schema",
            "schema": anthropic.transform_schema(VerbatimClaudeCard.model_json_schema()),
        }
    }
    return params


def after_params(source) -> dict:
    return {**claude.request_params(source), "output_config": claude.output_config()}


def dollars(tokens_in: int, tokens_out: int, prices: dict, *, batch: bool, cached: int = 0) -> float:
    """Dollars for one call; `cached` input tokens read from the cache (not the first call)."""
    rate = settings.CLAUDE_BATCH_DISCOUNT if batch else 1.0
    uncached = tokens_in - cached
    total = uncached * prices["input"] + cached * prices["cache_read"] + tokens_out * prices["output"]
    return total / 1e6 * rate


def verbatim_of(card, sentences: list[str]):
    """The same answer with every list of sentence ids written out as the passage."""
    if isinstance(card, list):
        return [verbatim_of(v, sentences) for v in card]
    if not isinstance(card, dict):
        return card
    out = {}
    for key, value in card.items():
        if key == "sentences" or key.endswith("_sentences"):
            out["passage" if key == "sentences" else key.replace("_sentences", "_passage")] = passage_of(
                sentences, value
            )
        else:
            out[key] = verbatim_of(value, sentences)
    return out


def text_tokens(counter, text: str) -> int:
    """Tokens of a text: count_tokens with a real key, else the fake API's estimate (what it
    reports as usage for an answer of that text)."""
    return claude.count_text_tokens(counter, text) if REAL_KEY else fa.text_tokens(text)


def counted(counter, articles: list[Article], log) -> dict[str, list[dict]]:
    """Per call, before and after: input and output tokens as count_tokens gives them.
    Both answers hold the same claims (the fake API's card for the article); before, each
    cites its sentences by copying them, after, by their ids."""
    rows: dict[str, list[dict]] = {"before": [], "after": []}
    for n, article in enumerate(articles, 1):
        source = source_text(article)
        after = after_params(source)
        card = fa.card_for(after)
        for name, params, answer_card in (
            ("before", before_params(source), verbatim_of(card, source.sentences)),
            ("after", after, card),
        ):
            answer = json.dumps(answer_card, ensure_ascii=False)
            if name == "before":
                VerbatimClaudeCard.model_validate_json(answer)  # the baseline is a valid old answer
            row = {
                "article": article.pk,
                "mode": name,
                "input_tokens": claude.count_input_tokens(counter, params),
                "output_tokens": text_tokens(counter, answer),
                "answer_chars": len(answer),
            }
            rows[name].append(row)
            log.write(json.dumps(row) + "\n")
        if n % 10 == 0 or n == len(articles):
            print(f"  counted {n}/{len(articles)} articles", file=sys.stderr, flush=True)
    return rows


def pipeline(fake, *, batch: bool) -> dict:
    """The 'after' path end to end through the fake API: recorded calls and spend."""
    settings.CLAUDE_BATCH_THRESHOLD = -1 if batch else 10**9
    ApiCall.objects.all().delete()
    Insight.objects.update(claude_status="", batch_id="")
    ids = list(Article.objects.values_list("pk", flat=True))
    for pk in ids:
        enrich_article(pk, force=True, backend="claude")
    if batch:
        fake.batch_polls_before_end = 0
        submit_batch()
        collect_batches()
    totals = ApiCall.objects.aggregate(calls=Count("id"), o=Sum("output_tokens"), usd=Sum("cost_usd"))
    done = Insight.objects.filter(claude_status=Insight.Claude.DONE)
    return {
        "calls": totals["calls"],
        "out_per_card": (totals["o"] or 0) / max(totals["calls"], 1),
        "usd_per_1k": float(totals["usd"] or 0) * 1000 / len(ids),
        "done": done.count(),
        "kept": done.aggregate(k=Sum("grounded_claims"))["k"] or 0,
        "dropped": done.aggregate(d=Sum("unsupported_claims"))["d"] or 0,
    }


def main() -> None:
    call_command("migrate", verbosity=0)
    httpd, site = make_server("127.0.0.1", 0, anchor=datetime.now(UTC).replace(microsecond=0))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    call_command("load_demo", base_url=site.base_url, stdout=io.StringIO())
    settings.ENRICHMENT_BACKEND = "extractive"
    call_command("poll", all=True, extract=True, stdout=io.StringIO())
    articles = list(Article.objects.select_related("source", "category").order_by("pk"))
    minimum = int(os.environ.get("CACHE_MIN_TOKENS", "4096"))
    with fa.FakeAnthropic() as fake:
        os.environ["ANTHROPIC_BASE_URL"] = fake.url
        settings.ANTHROPIC_API_KEY, settings.ENRICHMENT_BACKEND = "bench", "claude"
        settings.CLAUDE_DAILY_BUDGET = 10**6
        fake.cache_min_tokens = minimum
        if REAL_KEY:
            counter, how = (
                anthropic.Anthropic(api_key=REAL_KEY, base_url="https://api.anthropic.com"),
                "the API",
            )
        else:
            counter, how = anthropic.Anthropic(api_key="bench", base_url=fake.url), "the fake API's estimate"
        log_path = Path(os.environ["DATA_DIR"]) / "claude_cost_calls.jsonl"
        print(f"{len(articles)} demo articles; tokens counted with messages.count_tokens ({how})")
        with log_path.open("w") as log:
            rows = counted(counter, articles, log)

        prices = settings.CLAUDE_PRICES[settings.CLAUDE_MODEL]
        source = source_text(articles[0])
        prefixes = {}
        for name, params in (("before", before_params(source)), ("after", after_params(source))):
            system = params["system"][0]["text"]
            prefixes[name] = text_tokens(counter, system)
        print(
            f"cacheable prefix (system prompt): before {prefixes['before']:,} tokens, after "
            f"{prefixes['after']:,}; the model's minimum {minimum:,} (CACHE_MIN_TOKENS): "
            + (
                "cached, saving counted"
                if min(prefixes.values()) >= minimum
                else "too short, nothing cached, no saving counted"
            )
        )
        print(
            f"{'':<8} {'in/card':>8} {'out/card':>9} {'out median':>10} {'out vs before':>13} "
            + " ".join(f"{h:>13}" for h in ("$/1k cfg", "$/1k cfg bat", "$/1k H4.5", "$/1k H4.5 bat"))
        )
        base_out = None
        for name in ("before", "after"):
            calls = rows[name]
            cin = statistics.mean(r["input_tokens"] for r in calls)
            cout = statistics.mean(r["output_tokens"] for r in calls)
            base_out = base_out or cout
            cached = prefixes[name] if prefixes[name] >= minimum else 0
            figures = []
            for table in (prices, HAIKU_45):
                for batch in (False, True):
                    usd = sum(
                        dollars(
                            r["input_tokens"],
                            r["output_tokens"],
                            table,
                            batch=batch,
                            cached=cached if i else 0,
                        )
                        for i, r in enumerate(calls)
                    )
                    figures.append(usd * 1000 / len(calls))
            print(
                f"{name:<8} {cin:>8,.0f} {cout:>9,.0f} {statistics.median(r['output_tokens'] for r in calls):>10,.0f} "
                f"{(cout / base_out - 1) * 100:>12.0f}% " + " ".join(f"{f:>13.3f}" for f in figures),
                flush=True,
            )
        print(f"model {settings.CLAUDE_MODEL}: $/MTok {prices}; Haiku 4.5 list: {HAIKU_45}")
        print("after, end to end through the fake API (its usage; recorded ApiCall rows):")
        for batch in (False, True):
            r = pipeline(fake, batch=batch)
            print(
                f"  {'batch' if batch else 'no batch':<9} calls {r['calls']}, cards by Claude {r['done']}, "
                f"claims kept {r['kept']}, dropped {r['dropped']}, out/call {r['out_per_card']:,.0f}, "
                f"${r['usd_per_1k']:.3f} per 1,000 articles",
                flush=True,
            )
        print(f"per-call counts: {log_path}")
    httpd.shutdown()


if __name__ == "__main__":
    main()
