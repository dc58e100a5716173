"""A fake Claude Messages API on loopback, spoken to by the real `anthropic` SDK
(`base_url`). It answers /v1/messages with queued replies or, by default, a valid card
built from the article in the request (passages copied from it verbatim), and imitates
the Message Batches endpoints (results in reverse order, so clients must match by
custom_id). Usage, including prompt-cache reads and writes, is reported as the real API
would. Every answer passes the SDK's `_strict_response_validation=True`.

    with FakeAnthropic() as fake:
        fake.queue(error(429, "rate_limit_error", retry_after=0.01), valid_card(hook="Short"))
        client = anthropic.Anthropic(api_key="test", base_url=fake.url)

A responder is a `Reply`, or a callable of the request body (or of body and the fake)
returning one; the constructors below (valid_card, card_json, raw_text, ungrounded,
refusal, max_tokens, error, slow, valid_recap) return such callables.

    python -m tests.fake_anthropic --port 8900     # then ANTHROPIC_BASE_URL=http://127.0.0.1:8900
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# A sentence: no terminator and no line break inside, then a terminator. Findall yields
# exact substrings of the text, so a stripped match is a verbatim passage.
_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]")
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")
UNGROUNDED_PASSAGE = "A law called the Synthetic Media Act was passed in 2025."
MISSING_ID = 999


@dataclass
class Reply:
    """One HTTP answer. `body` is JSON-encoded unless it is a str (sent as is)."""

    status: int = 200
    body: dict | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Responder = Reply | Callable[[dict], Reply] | Callable[[dict, "FakeAnthropic"], Reply]


# ---------------------------------------------------------------------------- the card


def article_text(body: dict) -> str:
    """The `source.data` of the first document block of the request, or ""."""
    for msg in body.get("messages", []):
        content = msg.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "document":
                    source = block.get("source") or {}
                    if isinstance(source.get("data"), str):
                        return source["data"]
    return ""


_NUMBERED = re.compile(r"^\[(\d+)\] (.+)$", re.MULTILINE)


def sentences(text: str) -> list[str]:
    """Whole sentences of the text, verbatim, long enough to be a passage (8..600 chars)."""
    return [s for s in (m.strip() for m in _SENTENCE.findall(text)) if 12 <= len(s) <= 600]


def numbered_sentences(text: str) -> list[tuple[int, str]]:
    """(id, sentence) of a document sent as numbered sentences ("[n] sentence" lines),
    long enough to carry a claim; for a document of plain text, its sentences from 1."""
    found = [(int(m.group(1)), m.group(2).strip()) for m in _NUMBERED.finditer(text)]
    if not found:
        found = list(enumerate(sentences(text), 1))
    return [(n, s) for n, s in found if len(s) >= 12 and len(s.split()) >= 6 or len(s) >= 12 and _cjk(s)]


def _cjk(text: str) -> bool:
    return len(re.findall(r"[\u3400-\u9fff]", text)) >= 12


# The site languages the task names ("... in English."), by code.
_LANGUAGE_CODES = {
    "English": "en", "German": "de", "French": "fr", "Spanish": "es", "Simplified Chinese": "zh",
    "Japanese": "ja", "Italian": "it", "Portuguese": "pt", "Dutch": "nl",
}  # fmt: skip
_CONTEXT_LANGUAGE = re.compile(r"in language ([\w-]+)")
_TASK_LANGUAGE = re.compile(r" in ([A-Z][\w ]+)\.\s*$")


def _languages(body: dict) -> tuple[str, str]:
    """(the article's language code, the site's) as the request states them, or ""."""
    article = site = ""
    for msg in body.get("messages", []):
        for block in msg.get("content") if isinstance(msg.get("content"), list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "document":
                found = _CONTEXT_LANGUAGE.search(block.get("context") or "")
                article = found.group(1).split("-")[0].lower() if found else ""
            elif block.get("type") == "text":
                found = _TASK_LANGUAGE.search(block.get("text") or "")
                site = _LANGUAGE_CODES.get(found.group(1), "") if found else site
    return article, site


def _dates(sentence: str) -> str:
    """The date a model gives a timeline entry citing `sentence`: none when the sentence
    states a single date (the prompt says it is read from there), else its first year."""
    from enrichment.text import single_date

    return "" if single_date(sentence) else _YEAR.search(sentence).group(0)


def card_for(body: dict, *, verbatim: bool = False, whole_claims: bool = False) -> dict:
    """A card that validates against ClaudeCard and passes grounding, as a model following
    the prompt writes it: every claim cites one sentence of the article by its number and
    says it in fewer words (`_claim`: the sentence's own words, so its numbers, names and
    negation are the sentence's); no title when the article is in the site's language; no
    timeline date when the sentence states a single one.

    `verbatim=True`: the same claims as the answer was written before issue 13 (the cost
    benchmark's baseline): the headline as title, every timeline date, a reason for each
    audience, and each cited sentence copied as the passage. `whole_claims=True`: every claim as long as its
    sentence (what this fake wrote before; the benchmark's sensitivity check)."""
    sents = numbered_sentences(article_text(body)) or [(1, "The article has no usable text at all.")]
    pick = (sents * 3)[:3]
    dated = [(n, s) for n, s in sents if _YEAR.search(s)][:3]
    last = sents[-1]
    hook = sents[min(1, len(sents) - 1)]
    _claim = _whole if whole_claims else _gist
    article_language, site_language = _languages(body)
    same_language = bool(article_language) and article_language == site_language

    def cite(n: int, s: str) -> dict:
        return {"passage": s} if verbatim else {"ids": [n]}

    def tldr(name: str, n: int, s: str) -> dict:
        return {f"{name}_passage": s} if verbatim else {f"{name}_ids": [n]}

    def date(s: str) -> dict:
        given = _YEAR.search(s).group(0) if verbatim else _dates(s)
        return {"date": given} if given else {}

    headline = _document_title(body) or "Fake headline in English"
    if verbatim:
        title = {"title": headline[:200]}
    else:  # a "translated" headline, or none when the article is in the site's language
        title = {} if same_language else {"title": "Fake headline in English"}
    return {
        **title,
        "hook": _claim(hook[1], 90),
        **tldr("hook", *hook),
        "what_changed": _claim(sents[0][1], 200),
        **tldr("what_changed", *sents[0]),
        "why_it_matters": _claim(last[1], 200),
        **tldr("why_it_matters", *last),
        "what_next": "Read the full article and check the sources it cites.",
        "category": "ai",
        "audiences": (
            [{"slug": "developers", "reason": "The article is about tools developers use."}]
            if verbatim
            else ["developers"]
        ),
        "takeaways": [{"text": _claim(s, 200), **cite(n, s)} for n, s in pick],
        "implications": [
            {"prediction": _claim(last[1], 160), "reasoning": "The article says so.", **cite(*last)}
        ],
        "timeline": [{**date(s), "text": _claim(s, 120), **cite(n, s)} for n, s in dated],
    }


def _document_title(body: dict) -> str:
    for msg in body.get("messages", []):
        for block in msg.get("content") if isinstance(msg.get("content"), list) else []:
            if isinstance(block, dict) and block.get("type") == "document":
                return str(block.get("title") or "")
    return ""


# Where a sentence may be cut to its gist: before a subordinate or added clause, or an
# attribution ("…, the company said"); CJK: at a clause comma.
_CLAUSE = re.compile(
    r",\s|;\s|\s[—–-]\s|\s(?:and|which|while|whereas|after|because|although|as well as|"
    r"während|nachdem|weil|obwohl|sowie|alors que|parce que|mientras|porque)\s|[，；]"
)
_NUMBER = re.compile(r"\d")
_MIN_GIST_WORDS = 6
_MIN_GIST_CJK = 12


def _gist(sentence: str, limit: int) -> str:
    """A claim as a model writes one from a sentence: its gist, in fewer words. Here: the
    sentence's leading clause (up to a comma, a dash, "and" or a subordinate clause), when
    it has six words or more (CJK: twelve characters), keeps the sentence's negation, and
    has a number and a year if the rest has; the whole sentence otherwise; within `limit`
    characters. Made of the sentence's own words, its numbers, names and negation are the
    sentence's, as grounding wants."""
    from enrichment.grounding import negated

    cjk = " " not in sentence.strip()
    head = sentence
    for cut in _CLAUSE.finditer(sentence):
        candidate = sentence[: cut.start()].rstrip(" ,;—–-，；")
        if (len(candidate) < _MIN_GIST_CJK) if cjk else (len(candidate.split()) < _MIN_GIST_WORDS):
            continue
        rest = sentence[cut.start() :]
        if negated(candidate) != negated(sentence):
            continue
        if (_NUMBER.search(rest) and not _NUMBER.search(candidate)) or (
            _YEAR.search(rest) and not _YEAR.search(candidate)
        ):
            continue
        head = candidate.rstrip(".!?。！？") + ("。" if cjk else ".")
        break
    return _whole(head, limit)


def _whole(sentence: str, limit: int) -> str:
    """The sentence's words, as many as fit in `limit` characters."""
    words, out = sentence.split(), ""
    for word in words:
        if len(out) + len(word) + 1 > limit:
            break
        out = f"{out} {word}".strip()
    return out or sentence[:limit]


# ------------------------------------------------------------------------- the message


_STORY_TITLE = re.compile(r"^Story (\d+):")


def story_documents(body: dict) -> list[tuple[int, list[tuple[int, str]]]]:
    """(story id, [(sentence id, sentence)]) of a recap request: one document a story,
    titled "Story N: headline", its text the lead report's numbered sentences."""
    found = []
    for msg in body.get("messages", []):
        for block in msg.get("content") if isinstance(msg.get("content"), list) else []:
            if isinstance(block, dict) and block.get("type") == "document":
                m = _STORY_TITLE.match(block.get("title") or "")
                if m:
                    found.append((int(m.group(1)), numbered_sentences(block["source"].get("data", ""))))
    return found


def recap_for(body: dict) -> dict:
    """A weekly recap that validates against RecapDraft and passes grounding: each
    story's summary is made of its first usable sentence's words and cites it by number;
    the introduction says nothing a sentence must support, and cites the first story's."""
    stories = [(pk, sents) for pk, sents in story_documents(body) if sents]
    items = [
        {"story_id": pk, "summary": _whole(sents[0][1], 300), "sentences": [sents[0][0]]}
        for pk, sents in stories
    ]
    return {
        "intro": "A busy week in the news.",
        "intro_cites": [{"story_id": items[0]["story_id"], "sentences": items[0]["sentences"]}]
        if items
        else [],
        "sections": [{"theme": "Top stories", "items": items}],
    }


def valid_recap(edit: Callable[[dict], None] | None = None) -> Responder:
    """200: `recap_for` the request, changed by `edit(answer)` when given."""

    def respond(body, fake):
        answer = recap_for(body)
        if edit:
            edit(answer)
        return Reply(200, message(body, fake, text=json.dumps(answer)))

    return respond


def _system_text(system) -> str:
    if isinstance(system, list):
        return "".join(b.get("text", "") for b in system if isinstance(b, dict))
    return system if isinstance(system, str) else ""


def usage_for(body: dict, fake: FakeAnthropic, text: str) -> dict:
    """Token counts as the API reports them: `input_tokens` is the uncached part only;
    a cache_control'd system prompt is written the first time its text is seen, read
    afterwards (unless it is shorter than `fake.cache_min_tokens`: then nothing is cached,
    silently, as on the real API)."""
    system = body.get("system")
    system_text = _system_text(system)
    system_tokens = len(system_text) // 4
    marked = (
        isinstance(system, list) and any(isinstance(b, dict) and b.get("cache_control") for b in system)
    ) or bool(body.get("cache_control"))
    cache_write = cache_read = 0
    if marked and system_tokens >= fake.cache_min_tokens:
        with fake.lock:
            if system_text in fake.seen_systems:
                cache_read = system_tokens
            else:
                cache_write = system_tokens
                fake.seen_systems.add(system_text)
    total = count_tokens(body)
    return {
        "input_tokens": max(total - cache_read - cache_write, 1),
        "output_tokens": text_tokens(text),
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
    }


def text_tokens(text: str) -> int:
    """The fake's estimate of a text's tokens: one per four characters."""
    return max(len(text) // 4, 1)


def count_tokens(body: dict) -> int:
    """The fake's estimate of a request's input tokens (what /v1/messages/count_tokens
    answers and usage reports): a token per four characters of the request's JSON."""
    return max(len(json.dumps(body, ensure_ascii=False)) // 4, 1)


def message(body: dict, fake: FakeAnthropic, *, text: str, stop_reason: str = "end_turn", **extra) -> dict:
    """A Messages API `Message` with one text block, for the request `body`."""
    with fake.lock:
        msg_id = f"msg_{next(fake.message_ids)}"
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-haiku-5-5"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage_for(body, fake, text),
        **extra,
    }


# ------------------------------------------------------------------- reply constructors


def valid_card(**overrides) -> Responder:
    """200: a card that validates against ClaudeCard; `overrides` replace top-level keys."""
    return lambda body, fake: Reply(
        200, message(body, fake, text=json.dumps({**card_for(body), **overrides}))
    )


def card_json(card: dict) -> Responder:
    """200 with exactly this dict as the JSON text (for schema violations)."""
    return lambda body, fake: Reply(200, message(body, fake, text=json.dumps(card)))


def raw_text(text: str) -> Responder:
    """200 with exactly this text (for invalid JSON)."""
    return lambda body, fake: Reply(200, message(body, fake, text=text))


def ungrounded() -> Responder:
    """A valid card whose first takeaway states what the article does not (UNGROUNDED_PASSAGE)
    and cites a sentence number the article does not have."""

    def respond(body, fake):
        card = card_for(body)
        card["takeaways"][0] = {"text": UNGROUNDED_PASSAGE, "ids": [MISSING_ID]}
        return Reply(200, message(body, fake, text=json.dumps(card)))

    return respond


def refusal() -> Responder:
    """200 with stop_reason "refusal" (and stop_details, as the API sends)."""
    return lambda body, fake: Reply(
        200,
        message(
            body,
            fake,
            text="I can't help with that.",
            stop_reason="refusal",
            stop_details={"type": "refusal", "category": None, "explanation": None},
        ),
    )


def max_tokens() -> Responder:
    """200 with stop_reason "max_tokens" and a truncated JSON text."""
    return lambda body, fake: Reply(
        200, message(body, fake, text='{"title": "Trunc', stop_reason="max_tokens")
    )


def error(
    status: int,
    type: str,  # the API's own name for the error kind
    message: str = "fake error",
    retry_after: float | None = None,
) -> Responder:
    """An API error: `status` with {"type": "error", "error": {"type", "message"}} and a
    `retry-after` header when given. The SDK ignores retry-after <= 0 (it then backs off
    0.5 s or more); pass e.g. 0.01 for a fast retry."""
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    return lambda body, fake: Reply(
        status,
        {"type": "error", "error": {"type": type, "message": message}, "request_id": fake.next_request_id()},
        headers,
    )


def slow(seconds: float, then: Responder | None = None) -> Responder:
    """Sleep `seconds` in the server thread, then answer with `then` (default valid_card())."""

    def respond(body, fake):
        reply = fake.resolve(then or valid_card(), body)
        return dataclasses.replace(reply, delay=seconds)

    return respond


def refused_request(body: dict) -> str:
    """What the real API refuses before any model runs, as its 400 says it; "" if nothing.
    Claude Haiku 5.x rejects manual extended thinking (`budget_tokens`) and non-default
    sampling parameters (platform.claude.com, "What's new in Claude Haiku 5.5": breaking
    changes)."""
    if not str(body.get("model", "")).startswith("claude-haiku-5"):
        return ""
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled" or "budget_tokens" in thinking:
        return "thinking.type.enabled is not supported for this model. Use thinking.type.adaptive."
    for name in ("temperature", "top_p", "top_k"):
        if name in body:
            return f"{name} is not supported for this model."
    return ""


def _not_found(path: str) -> Reply:
    return Reply(
        404, {"type": "error", "error": {"type": "not_found_error", "message": f"Not found: {path}"}}
    )


# ----------------------------------------------------------------------------- server


class FakeAnthropic:
    """The fake API, as a context manager. Knobs and records:

    url                     base_url for the SDK, "http://127.0.0.1:PORT"
    requests                every request: {"method", "path", "headers", "body"}
    message_requests        the POST /v1/messages ones
    queue(*responders)      answers for the next calls, in order (batch results use it too)
    default                 answer when the queue is empty (valid_card())
    batch_polls_before_end  GETs of a batch that still say "in_progress" (1)
    batch_errors            {custom_id: "canceled" | "expired" | message}: that result
                            instead of "succeeded" (anything else: "errored" with it as message)
    cache_min_tokens        below this many system tokens nothing is cached (0)
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.requests: list[dict] = []
        self.replies: list[Responder] = []
        self.default: Responder = valid_card()
        self.seen_systems: set[str] = set()
        self.cache_min_tokens = 0
        self.batches: dict[str, dict] = {}
        self.batch_polls_before_end = 1
        self.batch_errors: dict[str, str] = {}
        self.lock = threading.RLock()
        self.message_ids = itertools.count(1)
        self.batch_ids = itertools.count(1)
        self.request_ids = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                data = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                payload = data.encode()
                headers = {k.lower(): v for k, v in reply.headers.items()}
                headers.setdefault("content-type", "application/json")
                headers.setdefault("request-id", fake.next_request_id())
                headers["content-length"] = str(len(payload))
                with contextlib.suppress(OSError):  # the client may have timed out and gone
                    self.send_response(reply.status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)

            def _record(self, body) -> None:
                with fake.lock:
                    fake.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": dict(self.headers.items()),
                            "body": body,
                        }
                    )

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = None
                self._record(body)
                path = self.path.split("?")[0]
                if not isinstance(body, dict):
                    error_body = {
                        "type": "invalid_request_error",
                        "message": "The body is not a JSON object.",
                    }
                    self._send(Reply(400, {"type": "error", "error": error_body}))
                elif path == "/v1/messages" and (refused := refused_request(body)):
                    error_body = {"type": "invalid_request_error", "message": refused}
                    self._send(Reply(400, {"type": "error", "error": error_body}))
                elif path == "/v1/messages":
                    self._send(fake.resolve(fake.next_responder(), body))
                elif path == "/v1/messages/count_tokens":
                    self._send(Reply(200, {"input_tokens": count_tokens(body)}))
                elif path == "/v1/messages/batches":
                    self._send(Reply(200, fake.create_batch(body.get("requests") or [])))
                else:
                    self._send(_not_found(path))

            def do_GET(self):  # noqa: N802
                self._record(None)
                path = self.path.split("?")[0]
                match = re.fullmatch(r"/v1/messages/batches/([\w-]+)(/results)?", path)
                if not match or match.group(1) not in fake.batches:
                    self._send(_not_found(path))
                elif match.group(2):
                    results = fake.batch_results(match.group(1))
                    if results is None:
                        self._send(_not_found(path))
                    else:
                        lines = "".join(json.dumps(r) + "\n" for r in results)
                        self._send(Reply(200, lines, {"content-type": "application/binary"}))
                else:
                    self._send(Reply(200, fake.batch_status(match.group(1))))

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True  # a slow() answer never holds up shutdown
        self.host, self.port = self.httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    # replies
    def queue(self, *responders: Responder) -> None:
        with self.lock:
            self.replies.extend(responders)

    def next_responder(self) -> Responder:
        with self.lock:
            return self.replies.pop(0) if self.replies else self.default

    def resolve(self, responder: Responder, body: dict) -> Reply:
        """The Reply a responder gives for this request body."""
        if isinstance(responder, Reply):
            return responder
        try:
            takes_fake = len(inspect.signature(responder).parameters) >= 2
        except (TypeError, ValueError):
            takes_fake = True
        return responder(body, self) if takes_fake else responder(body)

    def next_request_id(self) -> str:
        with self.lock:
            return f"req_{next(self.request_ids)}"

    @property
    def message_requests(self) -> list[dict]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r["method"] == "POST" and r["path"].split("?")[0] == "/v1/messages"
            ]

    # Message Batches
    def create_batch(self, requests: list[dict]) -> dict:
        with self.lock:
            batch_id = f"msgbatch_{next(self.batch_ids)}"
            self.batches[batch_id] = {
                "requests": requests,
                "polls": 0,
                "created": datetime.now(UTC),
                "ended": None,
            }
        return self._batch_object(batch_id)

    def batch_status(self, batch_id: str) -> dict:
        with self.lock:
            batch = self.batches[batch_id]
            batch["polls"] += 1
            if batch["ended"] is None and batch["polls"] > self.batch_polls_before_end:
                batch["ended"] = datetime.now(UTC)
        return self._batch_object(batch_id)

    def _result_type(self, custom_id: str) -> str:
        if custom_id not in self.batch_errors:
            return "succeeded"
        return (
            self.batch_errors[custom_id]
            if self.batch_errors[custom_id] in ("canceled", "expired")
            else "errored"
        )

    def _batch_object(self, batch_id: str) -> dict:
        batch = self.batches[batch_id]
        ended = batch["ended"]
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        for request in batch["requests"]:
            counts[self._result_type(request["custom_id"]) if ended else "processing"] += 1
        created = batch["created"]
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": created.isoformat(),
            "expires_at": (created + timedelta(days=1)).isoformat(),
            "ended_at": ended.isoformat() if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch_id}/results" if ended else None,
        }

    def batch_results(self, batch_id: str) -> list[dict] | None:
        """One line per request, in REVERSE order of submission; None before it ended.
        Each succeeded request consumes a queued responder like a /v1/messages call; a
        responder answering with an error status yields an "errored" result."""
        batch = self.batches[batch_id]
        if batch["ended"] is None:
            return None
        results = []
        for request in reversed(batch["requests"]):
            custom_id = request["custom_id"]
            kind = self._result_type(custom_id)
            if kind in ("canceled", "expired"):
                result = {"type": kind}
            elif kind == "errored":
                text = self.batch_errors[custom_id]
                text = "fake error" if text == "errored" else text
                result = {
                    "type": "errored",
                    "error": {"type": "error", "error": {"type": "invalid_request_error", "message": text}},
                }
            else:
                reply = self.resolve(self.next_responder(), request["params"])
                if reply.status == 200 and isinstance(reply.body, dict):
                    reply.body["usage"]["service_tier"] = "batch"
                    result = {"type": "succeeded", "message": reply.body}
                elif isinstance(reply.body, dict) and reply.body.get("type") == "error":
                    result = {"type": "errored", "error": reply.body}
                else:
                    error_body = {"type": "api_error", "message": f"status {reply.status}"}
                    result = {"type": "errored", "error": {"type": "error", "error": error_body}}
            results.append({"custom_id": custom_id, "result": result})
        return results

    def __enter__(self) -> FakeAnthropic:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake Claude Messages API for local demos and tests.")
    parser.add_argument("--port", type=int, default=8900)
    args = parser.parse_args()
    fake = FakeAnthropic(port=args.port)
    fake.batch_polls_before_end = 0  # batches end at once, so a demo shows Claude cards within minutes
    print(
        f"Fake Messages API on {fake.url} (ANTHROPIC_BASE_URL={fake.url} ANTHROPIC_API_KEY=anything)",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        fake.httpd.serve_forever(0.2)


if __name__ == "__main__":
    main()
