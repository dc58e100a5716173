"""What Claude cards cost: the demo corpus enriched through the fake Messages API (the
real SDK, on loopback), reported as calls, tokens and dollars per 1,000 articles at the
configured prices, with and without prompt caching and Message Batches. The first row
(no cache, no batch) is the baseline the others are compared with.

    .venv/bin/python bench/claude_cost.py
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
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

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Count, Sum  # noqa: E402

from aggregator.demo.server import make_server  # noqa: E402
from aggregator.models import Article  # noqa: E402
from enrichment.batches import collect_batches, submit_batch  # noqa: E402
from enrichment.models import ApiCall, Insight  # noqa: E402
from enrichment.service import enrich_article  # noqa: E402
from tests.fake_anthropic import FakeAnthropic  # noqa: E402


def run(fake: FakeAnthropic, *, cache: bool, batch: bool) -> dict:
    settings.CLAUDE_PROMPT_CACHE = cache
    settings.CLAUDE_BATCH_THRESHOLD = -1 if batch else 10**9
    fake.seen_systems.clear()
    ApiCall.objects.all().delete()
    Insight.objects.update(claude_status="", batch_id="")
    ids = list(Article.objects.values_list("pk", flat=True))
    for pk in ids:
        enrich_article(pk, force=True, backend="claude")
    if batch:
        fake.batch_polls_before_end = 0
        submit_batch()
        collect_batches()
    totals = ApiCall.objects.aggregate(
        calls=Count("id"),
        i=Sum("input_tokens"),
        o=Sum("output_tokens"),
        r=Sum("cache_read_tokens"),
        w=Sum("cache_write_tokens"),
        usd=Sum("cost_usd"),
    )
    per = 1000 / len(ids)
    return {
        "articles": len(ids),
        "calls": totals["calls"],
        "in": (totals["i"] or 0) * per,
        "out": (totals["o"] or 0) * per,
        "read": (totals["r"] or 0) * per,
        "write": (totals["w"] or 0) * per,
        "usd": float(totals["usd"] or 0) * per,
        "done": Insight.objects.filter(claude_status=Insight.Claude.DONE).count(),
    }


def main() -> None:
    call_command("migrate", verbosity=0)
    httpd, site = make_server("127.0.0.1", 0, anchor=datetime.now(UTC).replace(microsecond=0))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    call_command("load_demo", base_url=site.base_url, stdout=io.StringIO())
    settings.ENRICHMENT_BACKEND = "extractive"
    call_command("poll", all=True, extract=True, stdout=io.StringIO())
    with FakeAnthropic() as fake:
        os.environ["ANTHROPIC_BASE_URL"] = fake.url
        settings.ANTHROPIC_API_KEY, settings.ENRICHMENT_BACKEND = "bench", "claude"
        settings.CLAUDE_DAILY_BUDGET = 10**6
        fake.cache_min_tokens = int(os.environ.get("CACHE_MIN_TOKENS", "4096"))
        from enrichment.backends.claude import request_params
        from enrichment.service import source_text

        system = request_params(source_text(Article.objects.first()))["system"]
        prefix = sum(len(b["text"]) for b in system) // 4  # the fake API's estimate
        print(
            f"cacheable prefix ~{prefix:,} tokens; the model's minimum assumed {fake.cache_min_tokens:,} "
            f"(CACHE_MIN_TOKENS): {'cached' if prefix >= fake.cache_min_tokens else 'too short, nothing cached, no saving counted'}"
        )
        PRICES = settings.CLAUDE_PRICES[settings.CLAUDE_MODEL]  # noqa: N806
        print(
            f"model {settings.CLAUDE_MODEL}; $/MTok in {PRICES['input']}, out "
            f"{PRICES['output']}, cache write {PRICES['cache_write']}, cache read "
            f"{PRICES['cache_read']}, batch ×{settings.CLAUDE_BATCH_DISCOUNT}"
        )
        print(
            f"{'mode':<18} {'articles':>8} {'calls':>6} {'in/1k':>10} {'cache rd/1k':>12} {'cache wr/1k':>12} "
            f"{'out/1k':>9} {'$/1k':>8} {'vs base':>8}"
        )
        base = None
        for cache, batch in [(False, False), (True, False), (False, True), (True, True)]:
            r = run(fake, cache=cache, batch=batch)
            base = base or r["usd"]
            mode = f"{'cache' if cache else 'no cache'}, {'batch' if batch else 'no batch'}"
            print(
                f"{mode:<18} {r['articles']:>8} {r['calls']:>6} {r['in']:>10,.0f} {r['read']:>12,.0f} "
                f"{r['write']:>12,.0f} {r['out']:>9,.0f} {r['usd']:>8.3f} {r['usd'] / base:>7.2f}x",
                flush=True,
            )
    httpd.shutdown()


if __name__ == "__main__":
    main()
