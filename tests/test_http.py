"""The one HTTP client, against real servers on loopback: every refusal the product
relies on (private addresses on every hop, other schemes, caps, bombs, loops, slow
servers). No mocks: each case is a real socket and a real HTTP exchange."""

from __future__ import annotations

import gzip
import threading
import time
import tracemalloc
from collections.abc import Callable

import pytest

from aggregator.ingest.http import BlockedAddress, FetchError, TooLarge, fetch, is_public_address
from tests.servers import LoopbackServer, Reply


class Stream:
    """A route that writes its own response: a head, then up to `count` pieces of body
    `interval` seconds apart, stopping early once the client hangs up. `exhausted` is
    set only when every piece went out, so `not exhausted` proves the client gave up
    (or stopped reading) first; the bound on `count` keeps a broken client from
    hanging the suite."""

    def __init__(
        self,
        head: bytes,
        piece: bytes | Callable[[int], bytes],
        *,
        count: int = 100,
        interval: float = 0.0,
        tail: bytes = b"",
    ):
        self.head, self.piece, self.count, self.interval, self.tail = head, piece, count, interval, tail
        self.hung_up = threading.Event()
        self.exhausted = threading.Event()

    def __call__(self, handler) -> None:
        handler.close_connection = True
        try:
            handler.wfile.write(self.head)
            handler.wfile.flush()
            for i in range(self.count):
                if self.interval:
                    time.sleep(self.interval)
                handler.wfile.write(self.piece(i) if callable(self.piece) else self.piece)
                handler.wfile.flush()
            handler.wfile.write(self.tail)
            handler.wfile.flush()
            self.exhausted.set()
        except OSError:  # BrokenPipe / ConnectionReset: the client went away
            self.hung_up.set()


def head(status: str = "200 OK", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/xml"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


# 1. An ordinary fetch


def test_it_fetches_content_url_and_lower_cased_headers(server):
    url = server.route("/feed.xml", Reply(200, b"<rss/>", {"ETag": '"x"', "X-Custom-Thing": "Yes"}))
    result = fetch(url)
    assert result.status == 200
    assert result.content == b"<rss/>"
    assert result.url == url
    assert result.redirects == []
    assert result.headers["etag"] == '"x"'
    assert result.headers["x-custom-thing"] == "Yes"
    assert result.content_type == "application/xml"
    assert all(key == key.lower() for key in result.headers)


def test_it_identifies_itself_with_a_descriptive_user_agent(server, settings):
    url = server.route("/feed.xml", Reply(200, b"<rss/>"))
    fetch(url)
    (path, seen), *_ = server.requests
    assert path == "/feed.xml"
    agent = seen["User-Agent"]
    assert agent == settings.FETCH_USER_AGENT
    assert agent.startswith("NewsdeskBot/") and "+http" in agent
    assert "python-httpx" not in agent


# 2. Conditional requests


def test_it_passes_conditional_headers_through_and_reports_304(server):
    def conditional(handler):
        if handler.headers.get("If-None-Match") == '"v1"':
            return Reply(304, b"", {"ETag": '"v1"'})
        return Reply(200, b"body", {"ETag": '"v1"'})

    url = server.route("/f", conditional)
    unchanged = fetch(
        url, headers={"If-None-Match": '"v1"', "If-Modified-Since": "Tue, 24 Nov 2026 09:00:00 GMT"}
    )
    assert unchanged.not_modified and unchanged.status == 304 and unchanged.content == b""
    assert server.requests[0][1]["If-None-Match"] == '"v1"'
    assert server.requests[0][1]["If-Modified-Since"] == "Tue, 24 Nov 2026 09:00:00 GMT"

    changed = fetch(url)
    assert not changed.not_modified and changed.content == b"body"
    assert "If-None-Match" not in server.requests[1][1]


# 3. Private addresses, refused before a byte is sent


def test_it_refuses_a_loopback_address_unless_allowed_and_sends_nothing(server):
    url = server.route("/f", Reply(200, b"secret"))
    with pytest.raises(BlockedAddress, match="private, loopback"):
        fetch(url, allowed_networks=[])
    assert server.requests == []


def test_it_refuses_localhost_by_name_too(server):
    server.route("/f", Reply(200, b"secret"))
    with pytest.raises(BlockedAddress):
        fetch(f"http://localhost:{server.port}/f", allowed_networks=[])
    assert server.requests == []


# 4. ... and on every hop of a redirect


def test_it_refuses_a_redirect_to_a_disallowed_address(server):
    with LoopbackServer(host="127.0.0.2") as inner:
        inner.route("/admin", Reply(200, b"secret"))
        url = server.route("/r", Reply(302, b"", {"Location": inner.url("/admin")}))
        with pytest.raises(BlockedAddress):
            fetch(url, allowed_networks=["127.0.0.1/32"])
        assert [path for path, _ in server.requests] == ["/r"]
        assert inner.requests == []

        # The same hop is followed when its network is allowed.
        assert fetch(url, allowed_networks=["127.0.0.0/8"]).content == b"secret"
        assert [path for path, _ in inner.requests] == ["/admin"]


def test_it_refuses_a_redirect_to_the_cloud_metadata_address(server):
    url = server.route("/r", Reply(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"}))
    with pytest.raises(BlockedAddress, match="169.254.169.254"):
        fetch(url, allowed_networks=["127.0.0.1/32"])


# 5. Other schemes


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/pub/file",
        "javascript:alert(1)",
        "gopher://127.0.0.1/",
        "http://",
    ],
)
def test_it_refuses_anything_but_http_and_https(url):
    with pytest.raises(FetchError):
        fetch(url)


def test_it_refuses_a_redirect_to_a_file_url(server):
    url = server.route("/r", Reply(302, b"", {"Location": "file:///etc/passwd"}))
    with pytest.raises(FetchError) as raised:
        fetch(url)
    assert "root:" not in str(raised.value)


# 6. The size cap


def test_it_refuses_a_declared_length_over_the_cap(server):
    url = server.route("/big", Reply(200, b"x" * 5000))
    with pytest.raises(TooLarge, match="5,000 bytes"):
        fetch(url, max_bytes=1000)


def test_it_accepts_a_body_exactly_at_the_cap(server):
    url = server.route("/just", Reply(200, b"x" * 1000))
    assert len(fetch(url, max_bytes=1000).content) == 1000


def test_it_stops_reading_an_endless_chunked_body_at_the_cap(server):
    stream = Stream(head(Transfer_Encoding="chunked"), chunk(b"y" * 16_384), count=4000, tail=b"0\r\n\r\n")
    with pytest.raises(TooLarge, match="cap"):
        fetch(server.route("/chunked", stream), max_bytes=100_000)
    assert stream.hung_up.wait(2) and not stream.exhausted.is_set()


def test_it_stops_reading_an_endless_unframed_body_at_the_cap(server):
    stream = Stream(head(Connection="close"), b"y" * 16_384, count=4000)
    with pytest.raises(TooLarge, match="cap"):
        fetch(server.route("/stream", stream), max_bytes=100_000)
    assert stream.hung_up.wait(2) and not stream.exhausted.is_set()


# 7. Decompression bombs


def test_it_refuses_a_gzip_bomb(server):
    bomb = gzip.compress(b"\0" * 10_000_000)
    assert len(bomb) < 20_000
    url = server.route("/bomb", Reply(200, bomb, {"Content-Encoding": "gzip"}))
    with pytest.raises(TooLarge, match="cap"):
        fetch(url, max_bytes=1_000_000)


def test_it_never_inflates_a_gzip_bomb_far_past_the_cap(server):
    bomb = gzip.compress(b"\0" * 10_000_000)
    url = server.route("/bomb", Reply(200, bomb, {"Content-Encoding": "gzip"}))
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge):
            fetch(url, max_bytes=1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # the 10 MB were never held at once


def test_it_still_decompresses_ordinary_gzip_and_deflate(server):
    import zlib

    text = b"<rss>" + b"news " * 20_000 + b"</rss>"
    server.route("/gz", Reply(200, gzip.compress(text), {"Content-Encoding": "gzip"}))
    server.route("/zlib", Reply(200, zlib.compress(text), {"Content-Encoding": "deflate"}))
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    server.route("/raw", Reply(200, raw.compress(text) + raw.flush(), {"Content-Encoding": "deflate"}))
    for path in ("/gz", "/zlib", "/raw"):
        assert fetch(server.url(path), max_bytes=len(text)).content == text
    with pytest.raises(TooLarge):
        fetch(server.url("/gz"), max_bytes=len(text) - 1)


def test_it_reports_a_corrupt_compressed_body(server):
    url = server.route("/bad", Reply(200, b"this is not gzip at all", {"Content-Encoding": "gzip"}))
    with pytest.raises(FetchError, match="decompress"):
        fetch(url)


# 8. Redirects


def test_it_follows_a_few_redirects_and_reports_the_final_url(server):
    for i in range(4):
        server.route(f"/{i}", Reply(301, b"", {"Location": f"/{i + 1}"}))
    server.route("/4", Reply(200, b"arrived"))
    result = fetch(server.url("/0"), max_redirects=4)
    assert result.content == b"arrived"
    assert result.url == server.url("/4")
    assert result.redirects == [server.url(f"/{i}") for i in range(4)]


def test_it_refuses_more_redirects_than_allowed(server):
    for i in range(4):
        server.route(f"/{i}", Reply(301, b"", {"Location": f"/{i + 1}"}))
    server.route("/4", Reply(200, b"arrived"))
    with pytest.raises(FetchError, match="redirects"):
        fetch(server.url("/0"), max_redirects=2)
    assert [path for path, _ in server.requests] == ["/0", "/1", "/2"]


def test_it_refuses_a_redirect_loop(server):
    server.route("/a", Reply(302, b"", {"Location": "/b"}))
    server.route("/b", Reply(302, b"", {"Location": "/a"}))
    with pytest.raises(FetchError, match="redirects"):
        fetch(server.url("/a"))
    assert len(server.requests) <= 6


def test_it_does_not_read_the_body_of_a_redirect(server):
    server.route("/ok", Reply(200, b"arrived"))
    endless = Stream(head("302 Found", Location="/ok", Connection="close"), b"r" * 65_536, count=1000)
    result = fetch(server.route("/r", endless), max_bytes=100_000)
    assert result.content == b"arrived" and result.url == server.url("/ok")
    assert not endless.exhausted.is_set()  # 64 MB were on offer; the client walked away


# 9. Slow servers and the total deadline


def test_it_gives_up_on_a_body_that_never_finishes(server):
    trickle = Stream(head(Content_Length="1000000"), b"z", count=100, interval=0.2)
    with pytest.raises(FetchError, match="did not finish"):
        fetch(server.route("/slow", trickle), total_timeout=1)
    assert not trickle.exhausted.is_set()


def test_it_gives_up_on_headers_that_never_finish(server):
    trickle = Stream(b"HTTP/1.1 200 OK\r\n", lambda i: f"X-Pad-{i}: z\r\n".encode(), count=100, interval=0.05)
    with pytest.raises(FetchError, match="did not finish|timed out"):
        fetch(server.route("/slow-head", trickle), total_timeout=1)
    assert not trickle.exhausted.is_set()  # gave up on the deadline, not when the server did


def test_it_gives_up_on_a_server_that_goes_silent(server):
    # Promises ten bytes, then sends nothing for two seconds (empty writes) and hangs up.
    silent = Stream(head(Content_Length="10"), b"", count=20, interval=0.1)
    with pytest.raises(FetchError, match="timed out"):
        fetch(server.route("/silent", silent), total_timeout=1)
    assert not silent.exhausted.is_set()


# 10. What counts as a public address


@pytest.mark.parametrize(
    "ip, public",
    [
        ("8.8.8.8", True),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("169.254.1.1", False),
        ("::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
    ],
)
def test_it_tells_public_addresses_from_private_ones(ip, public):
    assert is_public_address(ip) is public


@pytest.mark.parametrize(
    "ip",
    [
        "64:ff9b::7f00:1",  # NAT64 (well-known prefix) of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::a00:7",  # NAT64 of 10.0.0.7
        "64:ff9b:1::a00:7",  # local-use NAT64 prefix: refused whatever it holds
        "64:ff9b:1:808:8:800::",  # ... even what could be 8.8.8.8 in a /48 layout
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
        "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
        "2001:0:7f00:1::808:808",  # Teredo, server 127.0.0.1
        "2001:0:808:808:0:0:f5ff:fffe",  # Teredo, client 10.0.0.1 (obfuscated)
        "2001:0:808:808:8000:0:80ff:fffe",  # Teredo, client 127.0.0.1 (obfuscated)
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
        "::ffff:a9fe:a9fe",  # IPv4-mapped 169.254.169.254
        "::ffff:10.0.0.1",
    ],
)
def test_it_refuses_ipv6_forms_that_embed_a_refused_ipv4_address(ip):
    assert is_public_address(ip) is False
    assert is_public_address(ip, ["192.0.2.0/24"]) is False


@pytest.mark.parametrize("ip", ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "2606:4700::1111"])
def test_it_lets_ipv6_forms_of_public_addresses_through(ip):
    assert is_public_address(ip) is True


def test_it_lets_allowed_networks_open_a_private_range():
    assert is_public_address("127.0.0.1", ["127.0.0.0/8"])
    assert is_public_address("::ffff:127.0.0.1", ["127.0.0.0/8"])
    assert not is_public_address("10.0.0.1", ["127.0.0.0/8"])


# 11. One pooled client per process


def test_it_reuses_one_connection_for_successive_fetches_to_one_host(server):
    ports = []

    def record(handler):
        ports.append(handler.client_address[1])
        return Reply(200, b"ok")

    url = server.route("/k", record)
    for _ in range(3):
        assert fetch(url).content == b"ok"
    assert len(ports) == 3 and len(set(ports)) == 1  # one TCP connection, kept alive


def test_it_still_checks_the_address_when_a_warm_pool_holds_a_connection(server):
    url = server.route("/f", Reply(200, b"secret"))
    assert fetch(url, allowed_networks=["127.0.0.0/8"]).content == b"secret"
    with pytest.raises(BlockedAddress):
        fetch(url, allowed_networks=[])
    assert len(server.requests) == 1


def test_it_holds_a_reused_connection_to_the_deadline_of_the_fetch_using_it(server):
    url = server.route("/fast", Reply(200, b"ok", {"Content-Length": "2"}))
    assert fetch(url, total_timeout=1).content == b"ok"
    # Same connection, slower answer: this fetch's own one-second deadline applies.
    trickle = Stream(head(Content_Length="1000000"), b"z", count=100, interval=0.2)
    started = time.monotonic()
    with pytest.raises(FetchError, match="did not finish"):
        fetch(server.route("/slow", trickle), total_timeout=1)
    assert time.monotonic() - started < 5
    assert fetch(url, total_timeout=1).content == b"ok"


def test_each_host_has_its_own_pool_with_the_one_ssl_context_and_old_ones_are_closed(monkeypatch):
    """A pool per host (httpcore checks every connection of a pool each time it hands one
    out), all with the process's one SSL context; beyond MAX_HOST_CLIENTS the least
    recently used client no fetch is using is closed, and its host gets a new one."""
    from aggregator.ingest import http

    monkeypatch.setattr(http, "MAX_HOST_CLIENTS", 2)
    http.close_clients()
    servers = [LoopbackServer(host=f"127.0.0.{n}") for n in (1, 2, 3)]
    for srv in servers:
        srv.__enter__()
    try:
        urls = [srv.route("/x", Reply(200, b"ok")) for srv in servers]
        for url in urls[:2]:
            assert fetch(url).content == b"ok"
        first = [entry.client for entry in http._clients.values()]
        assert len(first) == 2
        contexts = {id(client._transport._pool._ssl_context) for client in first}
        assert len(contexts) == 1
        assert fetch(urls[2]).content == b"ok"  # a third host: 127.0.0.1's client goes
        assert [key[1] for key in http._clients] == ["127.0.0.2", "127.0.0.3"]
        assert first[0].is_closed and not first[1].is_closed
        assert fetch(urls[0]).content == b"ok"  # a new client for it, 127.0.0.2's closed
        assert [key[1] for key in http._clients] == ["127.0.0.3", "127.0.0.1"]
        assert first[1].is_closed
    finally:
        for srv in servers:
            srv.__exit__(None, None, None)
        http.close_clients()


def test_a_client_in_use_is_never_closed_for_another_host(monkeypatch):
    from aggregator.ingest import http

    monkeypatch.setattr(http, "MAX_HOST_CLIENTS", 1)
    http.close_clients()
    with LoopbackServer(host="127.0.0.1") as slow, LoopbackServer(host="127.0.0.2") as quick:
        started = threading.Event()

        def late(handler):
            started.set()
            time.sleep(0.5)
            return Reply(200, b"late")

        slow_url, quick_url = slow.route("/s", late), quick.route("/q", Reply(200, b"ok"))
        result = {}
        worker = threading.Thread(target=lambda: result.update(body=fetch(slow_url).content))
        worker.start()
        assert started.wait(5)
        for _ in range(3):  # over the limit while the slow fetch runs: its client stays
            assert fetch(quick_url).content == b"ok"
        worker.join(10)
        assert result == {"body": b"late"}
        assert fetch(quick_url).content == b"ok"  # now idle, 127.0.0.1's client goes
        assert [key[1] for key in http._clients] == ["127.0.0.2"]
    http.close_clients()


def test_it_keeps_cookies_of_one_fetch_away_from_the_next(server):
    url = server.route("/c", Reply(200, b"ok", {"Set-Cookie": "session=abc; Path=/"}))
    fetch(url)
    fetch(url)
    assert "Cookie" not in server.requests[1][1]


def test_it_runs_at_most_the_configured_number_of_fetches_to_one_host_at_once(server, settings):
    settings.FETCH_PER_HOST = 2
    lock = threading.Lock()
    running = [0]
    most = [0]

    def slow(handler):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return Reply(200, b"ok")

    from aggregator.ingest import http

    http._host_slots.clear()
    url = server.route("/slow", slow)
    threads = [threading.Thread(target=fetch, args=(url,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    http._host_slots.clear()
    assert len(server.requests) == 6
    assert most[0] == 2
