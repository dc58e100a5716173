"""The one HTTP client, against real servers on loopback: every refusal the product
relies on (private addresses on every hop, caps, bombs, loops, slow servers)."""

from __future__ import annotations

import gzip
import time

import pytest

from aggregator.ingest.http import BlockedAddress, FetchError, TooLarge, fetch, is_public_address
from tests.servers import LoopbackServer, Reply


def test_it_fetches_and_identifies_itself(server):
    url = server.route("/feed.xml", Reply(200, b"<rss/>", {"ETag": '"x"'}))
    result = fetch(url)
    assert result.status == 200 and result.content == b"<rss/>" and result.headers["etag"] == '"x"'
    assert "NewsdeskBot" in server.requests[0][1]["User-Agent"]


def test_it_sends_conditional_headers_and_reports_304(server):
    def conditional(handler):
        return Reply(304) if handler.headers.get("If-None-Match") == '"v1"' else Reply(200, b"body")

    url = server.route("/f", conditional)
    assert fetch(url, headers={"If-None-Match": '"v1"'}).not_modified
    assert not fetch(url).not_modified


def test_it_refuses_loopback_unless_allowed_and_sends_nothing(server):
    url = server.route("/f", Reply(200, b"secret"))
    with pytest.raises(BlockedAddress, match="private, loopback"):
        fetch(url, allowed_networks=[])
    assert server.requests == []


def test_it_refuses_a_redirect_to_a_disallowed_address(server):
    with LoopbackServer(host="127.0.0.2") as inner:
        inner.route("/admin", Reply(200, b"secret"))
        url = server.route("/r", Reply(302, b"", {"Location": inner.url("/admin")}))
        with pytest.raises(BlockedAddress):
            fetch(url, allowed_networks=["127.0.0.1/32"])
        assert inner.requests == []


def test_it_refuses_a_redirect_to_the_cloud_metadata_address(server):
    url = server.route("/r", Reply(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"}))
    with pytest.raises(BlockedAddress):
        fetch(url, allowed_networks=["127.0.0.1/32"])


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "javascript:alert(1)", "http://"])
def test_it_refuses_other_schemes(url):
    with pytest.raises(FetchError):
        fetch(url)


def test_it_refuses_a_redirect_to_a_file_url(server):
    url = server.route("/r", Reply(302, b"", {"Location": "file:///etc/passwd"}))
    with pytest.raises(FetchError):
        fetch(url)


def test_it_refuses_a_declared_body_over_the_cap(server):
    url = server.route("/big", Reply(200, b"x" * 5000))
    with pytest.raises(TooLarge, match="cap"):
        fetch(url, max_bytes=1000)


def test_it_stops_reading_an_undeclared_body_at_the_cap(server):
    def endless(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/xml")
        handler.send_header("Connection", "close")
        handler.end_headers()
        try:
            for _ in range(2000):
                handler.wfile.write(b"y" * 1024)
        except OSError:
            pass
        handler.close_connection = True

    with pytest.raises(TooLarge):
        fetch(server.route("/stream", endless), max_bytes=100_000)


def test_it_refuses_a_gzip_bomb(server):
    bomb = gzip.compress(b"\0" * 20_000_000)
    assert len(bomb) < 100_000
    url = server.route("/bomb", Reply(200, bomb, {"Content-Encoding": "gzip"}))
    with pytest.raises(TooLarge):
        fetch(url, max_bytes=1_000_000)


def test_it_refuses_a_redirect_loop(server):
    server.route("/a", Reply(302, b"", {"Location": "/b"}))
    server.route("/b", Reply(302, b"", {"Location": "/a"}))
    with pytest.raises(FetchError, match="redirect"):
        fetch(server.url("/a"))


def test_it_follows_a_few_redirects_but_not_too_many(server):
    for i in range(4):
        server.route(f"/{i}", Reply(301, b"", {"Location": f"/{i + 1}"}))
    server.route("/4", Reply(200, b"arrived"))
    assert fetch(server.url("/0")).content == b"arrived"
    with pytest.raises(FetchError, match="redirects"):
        fetch(server.url("/0"), max_redirects=2)


def test_it_gives_up_on_a_server_that_never_finishes(server):
    def trickle(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        try:
            for _ in range(100):
                handler.wfile.write(b"z")
                handler.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    with pytest.raises(FetchError, match="did not finish|timed out"):
        fetch(server.route("/slow", trickle), total_timeout=1)


def test_it_gives_up_on_a_server_that_goes_silent(server):
    def silent(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "10")
        handler.end_headers()
        time.sleep(3)

    with pytest.raises(FetchError, match="timed out|did not finish"):
        fetch(server.route("/silent", silent), total_timeout=1)


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
def test_public_addresses(ip, public):
    assert is_public_address(ip) is public


def test_allowed_networks_open_a_private_range():
    assert is_public_address("127.0.0.1", ["127.0.0.0/8"])
