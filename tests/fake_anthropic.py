"""A fake Claude Messages API on loopback, spoken to by the real `anthropic` SDK
(`base_url`). It answers /v1/messages with queued replies or, by default, a valid card
built from the article in the request (passages copied from it verbatim), and imitates
the Message Batches endpoints (results in reverse order, so clients must match by
custom_id). Usage, including prompt-cache reads and writes, is reported as the real API
would.

    python -m tests.fake_anthropic --port 8900     # then ANTHROPIC_BASE_URL=http://127.0.0.1:8900
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_SENTENCE = re.compile(r"[^.!?。！？]+[.!?。！？]")
_YEAR = re.compile(r"(19|20)\d\d")


@dataclass
class Reply:
    status: int = 200
    body: dict | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Responder = Callable[[dict, "FakeAnthropic"], Reply]


def article_text(body: dict) -> str:
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if block.get("type") == "document":
                    return block["source"]["data"]
    return ""


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text) if len(s.strip()) >= 12]


def card_for(body: dict) -> dict:
    sents = sentences(article_text(body)) or ["The article has no usable text at all."]
    pick = (sents * 3)[:3]
    dated = [s for s in sents if _YEAR.search(s)][:2]
    return {
        "title": "Fake headline in English",
        "hook": "Why this matters, in one short line",
        "what_changed": "Something happened, as the article reports.",
        "why_it_matters": "It affects the people named in the article.",
        "what_next": "Read the full article and check the sources it cites.",
        "category": "ai",
        "audiences": [{"slug": "developers", "reason": "The article is about tools developers use."}],
        "takeaways": [{"text": f"Takeaway {n + 1}", "passage": s} for n, s in enumerate(pick)],
        "implications": [
            {"prediction": "More will follow.", "reasoning": "The article says so.", "passage": pick[-1]}
        ],
        "timeline": [
            {"date": _YEAR.search(s).group(0), "text": "A dated event", "passage": s} for s in dated
        ],
    }


def message(body: dict, fake: FakeAnthropic, *, text: str, stop_reason: str = "end_turn") -> dict:
    system = body.get("system")
    system_text = "".join(b.get("text", "") for b in system) if isinstance(system, list) else (system or "")
    cached = isinstance(system, list) and any(b.get("cache_control") for b in system)
    cache_write = cache_read = 0
    if cached:
        if system_text in fake.seen_systems:
            cache_read = len(system_text) // 4
        else:
            cache_write = len(system_text) // 4
            fake.seen_systems.add(system_text)
    prompt = len(json.dumps(body.get("messages", []))) // 4
    return {
        "id": f"msg_{next(fake.counter)}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-haiku-5-5"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": prompt + (0 if cached else len(system_text) // 4),
            "output_tokens": max(len(text) // 4, 1),
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
        },
    }


def valid_card(**overrides) -> Responder:
    return lambda body, fake: Reply(
        200, message(body, fake, text=json.dumps({**card_for(body), **overrides}))
    )


def card_json(card: dict) -> Responder:
    return lambda body, fake: Reply(200, message(body, fake, text=json.dumps(card)))


def raw_text(text: str) -> Responder:
    return lambda body, fake: Reply(200, message(body, fake, text=text))


def ungrounded() -> Responder:
    def respond(body, fake):
        card = card_for(body)
        card["takeaways"][0]["passage"] = "A law called the Synthetic Media Act was passed in 2025."
        return Reply(200, message(body, fake, text=json.dumps(card)))

    return respond


def refusal() -> Responder:
    return lambda body, fake: Reply(
        200, message(body, fake, text="I can't help with that.", stop_reason="refusal")
    )


def max_tokens() -> Responder:
    return lambda body, fake: Reply(
        200, message(body, fake, text='{"title": "Trunc', stop_reason="max_tokens")
    )


def error(status: int, kind: str, msg: str = "fake error", retry_after: float | None = None) -> Responder:
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    return lambda body, fake: Reply(
        status, {"type": "error", "error": {"type": kind, "message": msg}}, headers
    )


def slow(seconds: float, then: Responder | None = None) -> Responder:
    def respond(body, fake):
        reply = (then or valid_card())(body, fake)
        reply.delay = seconds
        return reply

    return respond


class FakeAnthropic:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.requests: list[dict] = []
        self.replies: list[Responder] = []
        self.default: Responder = valid_card()
        self.seen_systems: set[str] = set()
        self.counter = itertools.count(1)
        self.batches: dict[str, dict] = {}
        self.batch_polls_before_end = 1
        self.batch_errors: dict[str, str] = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                data = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                payload = data.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.headers.get("content-type", "application/json"))
                self.send_header("request-id", f"req_{next(fake.counter)}")
                for key, value in reply.headers.items():
                    if key != "content-type":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(payload)

            def _record(self, body):
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
                body = json.loads(self.rfile.read(length) or b"{}")
                self._record(body)
                path = self.path.split("?")[0]
                if path == "/v1/messages":
                    with fake.lock:
                        responder = fake.replies.pop(0) if fake.replies else fake.default
                    self._send(responder(body, fake))
                elif path == "/v1/messages/batches":
                    self._send(Reply(200, fake.create_batch(body["requests"])))
                else:
                    self._send(
                        Reply(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})
                    )

            def do_GET(self):  # noqa: N802
                self._record(None)
                path = self.path.split("?")[0]
                match = re.fullmatch(r"/v1/messages/batches/([\w-]+)(/results)?", path)
                if not match or match.group(1) not in fake.batches:
                    self._send(
                        Reply(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})
                    )
                elif match.group(2):
                    lines = "\n".join(json.dumps(r) for r in fake.batch_results(match.group(1))) + "\n"
                    self._send(Reply(200, lines, {"content-type": "application/binary"}))
                else:
                    self._send(Reply(200, fake.batch_status(match.group(1))))

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def queue(self, *responders: Responder) -> None:
        self.replies.extend(responders)

    @property
    def message_requests(self) -> list[dict]:
        return [
            r
            for r in self.requests
            if r["path"].startswith("/v1/messages")
            and r["method"] == "POST"
            and r["path"].split("?")[0] == "/v1/messages"
        ]

    # Message Batches
    def create_batch(self, requests: list[dict]) -> dict:
        batch_id = f"msgbatch_{next(self.counter)}"
        self.batches[batch_id] = {"requests": requests, "polls": 0, "created": datetime.now(UTC)}
        return self._batch_object(batch_id, ended=False)

    def batch_status(self, batch_id: str) -> dict:
        batch = self.batches[batch_id]
        batch["polls"] += 1
        return self._batch_object(batch_id, ended=batch["polls"] > self.batch_polls_before_end)

    def _batch_object(self, batch_id: str, *, ended: bool) -> dict:
        batch = self.batches[batch_id]
        n = len(batch["requests"])
        errored = sum(1 for r in batch["requests"] if r["custom_id"] in self.batch_errors)
        created = batch["created"]
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": 0 if ended else n,
                "succeeded": n - errored if ended else 0,
                "errored": errored if ended else 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": created.isoformat(),
            "expires_at": (created + timedelta(days=1)).isoformat(),
            "ended_at": datetime.now(UTC).isoformat() if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch_id}/results" if ended else None,
        }

    def batch_results(self, batch_id: str) -> list[dict]:
        results = []
        for request in reversed(self.batches[batch_id]["requests"]):
            custom_id = request["custom_id"]
            if custom_id in self.batch_errors:
                results.append(
                    {
                        "custom_id": custom_id,
                        "result": {
                            "type": "errored",
                            "error": {
                                "type": "error",
                                "error": {
                                    "type": "invalid_request_error",
                                    "message": self.batch_errors[custom_id],
                                },
                            },
                        },
                    }
                )
                continue
            with self.lock:
                responder = self.replies.pop(0) if self.replies else self.default
            reply = responder(request["params"], self)
            results.append({"custom_id": custom_id, "result": {"type": "succeeded", "message": reply.body}})
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
