"""The one HTTP client for feeds and pages.

Every request goes through `fetch()`: http/https only, a connect timeout and a total
deadline, a cap on the body before and after decompression, a cap on redirects, and
no connection to a private, loopback, link-local or reserved address on any hop
(checked on the resolved address we actually connect to, so DNS rebinding cannot
slip past), unless `FETCH_ALLOWED_NETWORKS` allows that network.

One SSL context per process, and one client per host a fetch starts at (and per set of
allowed networks), kept and reused with its pooled keep-alive connections: a pool per
host, because httpcore checks every connection of a pool each time it hands out one
(a poll() system call for each idle connection), so one pool for every host cost a
re-poll of 100 feeds on 25 hosts twice the CPU of the same feeds on one host. The
`MAX_HOST_CLIENTS` most recently used are kept; an older one is closed once no fetch
is using it. The address check happens whenever a connection is opened, and a pooled
connection only ever carries requests to the origin it was opened (and checked) for. The total deadline belongs to each fetch, not to the client:
it travels in a context variable that every connect, read and write consults. At most
`FETCH_PER_HOST` fetches to one host run at once in a process.
"""

from __future__ import annotations

import contextvars
import http.cookiejar
import ipaddress
import logging
import os
import socket
import ssl
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

logger = logging.getLogger(__name__)


class FetchError(Exception):
    """A fetch that failed; the message is meant for an editor's eyes."""


class BlockedAddress(FetchError):
    pass


class TooLarge(FetchError):
    pass


@dataclass
class FetchResult:
    url: str
    status: int
    headers: Mapping[str, str]
    content: bytes = b""
    elapsed: float = 0.0
    redirects: list[str] = field(default_factory=list)

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


def _networks(allowed: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in allowed]


# IPv6 forms that carry an IPv4 address inside them, and reach it: a connection to one
# of these is a connection to that IPv4 address (through a translator or a tunnel).
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local use: any layout
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")


def embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address reaches through a transition mechanism.

    Decoded by hand rather than with `ipaddress`'s own properties and `is_global`,
    whose lists of these ranges differ from one Python release to the next."""
    value = int(addr)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if value >> 32 == 0xFFFF:  # IPv4-mapped ::ffff:a.b.c.d
        return [low32]
    if addr in _IPV4_COMPATIBLE or addr in _NAT64:
        return [low32]
    if addr in _SIXTOFOUR:
        return [ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)]
    if addr in _TEREDO:
        server = ipaddress.IPv4Address((value >> 64) & 0xFFFFFFFF)
        client = ipaddress.IPv4Address(~value & 0xFFFFFFFF)  # sent obfuscated (inverted)
        return [server, client]
    return []


def _public_ipv4(addr: ipaddress.IPv4Address, networks) -> bool:
    if any(addr in net for net in networks):
        return True
    return addr.is_global and not addr.is_multicast


def is_public_address(ip: str, allowed: Iterable[str] = ()) -> bool:
    """May we connect to `ip`? Only to a global unicast address, or one in `allowed`.

    An IPv6 address that embeds an IPv4 address (mapped, compatible, NAT64, 6to4,
    Teredo) is refused when any IPv4 address inside it would be."""
    addr = ipaddress.ip_address(ip)
    networks = _networks(allowed)
    if isinstance(addr, ipaddress.IPv4Address):
        return _public_ipv4(addr, networks)
    if any(addr in net for net in networks):
        return True
    if addr in _NAT64_LOCAL:
        return False  # where the IPv4 address sits depends on the operator's prefix length
    inner = embedded_ipv4(addr)
    if inner:
        if not all(_public_ipv4(v4, networks) for v4 in inner):
            return False
        if addr.ipv4_mapped or addr in _IPV4_COMPATIBLE or addr in _NAT64:
            return True  # nothing but the IPv4 address: it decides
    return addr.is_global and not addr.is_multicast


class DeadlinePassed(httpcore.ReadTimeout):
    """The total deadline ran out during a connect, read or write."""


# The monotonic time by which the current fetch must be done (None: no deadline). Each
# thread has its own context, so concurrent fetches sharing a pool keep their own.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("fetch_deadline", default=None)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits no longer than the time left to
    the fetch that is using it (a pooled connection serves many fetches in turn).

    httpx's timeouts apply to each operation; without this, a server that sends one
    byte of its headers (or body) a second could hold a fetch open indefinitely."""

    def __init__(self, stream: httpcore.NetworkStream):
        self.stream = stream

    def _clamp(self, timeout: float | None) -> tuple[float | None, bool]:
        deadline = _deadline.get()
        if deadline is None:
            return timeout, False
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlinePassed("the total deadline passed")
        if timeout is None or left < timeout:
            return left, True
        return timeout, False

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        timeout, clamped = self._clamp(timeout)
        try:
            return self.stream.read(max_bytes, timeout)
        except httpcore.ReadTimeout as exc:
            if clamped:
                raise DeadlinePassed("the total deadline passed") from exc
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        timeout, clamped = self._clamp(timeout)
        try:
            self.stream.write(buffer, timeout)
        except httpcore.WriteTimeout as exc:
            if clamped:
                raise DeadlinePassed("the total deadline passed") from exc
            raise

    def close(self) -> None:
        self.stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        timeout, clamped = self._clamp(timeout)
        try:
            return DeadlineStream(self.stream.start_tls(ssl_context, server_hostname, timeout))
        except httpcore.ConnectTimeout as exc:
            if clamped:
                raise DeadlinePassed("the total deadline passed") from exc
            raise

    def get_extra_info(self, info: str):
        return self.stream.get_extra_info(info)


class GuardedBackend(httpcore.SyncBackend):
    """Resolve the host ourselves, check every address, connect to a checked one, and
    hold every connection to the deadline of the fetch using it, if there is one."""

    def __init__(self, allowed_networks: Iterable[str]):
        self.allowed = list(allowed_networks)

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from exc
        except UnicodeError as exc:  # a host name IDNA cannot encode (an empty label: a..b)
            raise httpcore.ConnectError(f"cannot resolve {host}: not a valid host name") from exc
        addresses = []
        for _family, _type, _proto, _name, sockaddr in infos:
            ip = sockaddr[0]
            if not is_public_address(ip, self.allowed):
                raise BlockedAddress(
                    f"refused to connect to {host} ({ip}): private, loopback, link-local or "
                    "reserved address (set FETCH_ALLOWED_NETWORKS to allow it)"
                )
            addresses.append(ip)
        last_error: Exception | None = None
        for ip in dict.fromkeys(addresses):
            deadline = _deadline.get()
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeadlinePassed("the total deadline passed")
                timeout = left if timeout is None else min(timeout, left)
            try:
                stream = super().connect_tcp(ip, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
            else:
                return DeadlineStream(stream)
        raise httpcore.ConnectError(f"cannot connect to {host}: {last_error}")


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self, *, allowed_networks: Iterable[str], **kwargs):
        super().__init__(**kwargs)
        # httpx has no public hook for the network backend; swap the pool for one
        # that connects only through the guarded backend (same SSL context).
        self._pool = httpcore.ConnectionPool(
            ssl_context=self._pool._ssl_context,
            max_connections=100,
            max_keepalive_connections=50,
            keepalive_expiry=30,
            network_backend=GuardedBackend(allowed_networks),
        )


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """The shared client must not carry one site's cookies to another fetch."""

    def set_ok(self, cookie, request) -> bool:
        return False

    def return_ok(self, cookie, request) -> bool:
        return False


MAX_HOST_CLIENTS = 256


@dataclass
class _HostClient:
    client: httpx.Client
    in_use: int = 0


_clients: OrderedDict[tuple[tuple[str, ...], str], _HostClient] = OrderedDict()
_clients_pid = 0
_clients_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


@contextmanager
def host_client(allowed_networks: Iterable[str], host: str) -> Iterator[httpx.Client]:
    """This process's client for fetches starting at `host` under one set of allowed
    networks, made on first use (so a forked worker never inherits its parent's sockets)
    with the process's one SSL context, and marked in use while the fetch runs."""
    global _clients_pid, _ssl_context
    key = (tuple(sorted(allowed_networks)), host)
    with _clients_lock:
        if _clients_pid != os.getpid():
            _clients.clear()  # a fork: the parent's connections are not ours to use
            _clients_pid = os.getpid()
            _ssl_context = None
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context()  # 15-30 ms of CPU: once a process
        entry = _clients.get(key)
        if entry is None:
            entry = _clients[key] = _HostClient(
                httpx.Client(
                    transport=GuardedTransport(allowed_networks=key[0], verify=_ssl_context, retries=0),
                    follow_redirects=False,  # followed in fetch(), hop by hop, without reading their bodies
                    trust_env=False,
                    cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
                )
            )
        _clients.move_to_end(key)
        entry.in_use += 1
        idle = [k for k, e in _clients.items() if e.in_use == 0]
        retired = [_clients.pop(k).client for k in idle[: max(0, len(_clients) - MAX_HOST_CLIENTS)]]
    for client in retired:  # out of the table and in no fetch: nobody else can reach them
        client.close()
    try:
        yield entry.client
    finally:
        with _clients_lock:
            entry.in_use -= 1


def close_clients() -> None:
    with _clients_lock:
        for entry in _clients.values():
            entry.client.close()
        _clients.clear()


_host_slots: dict[str, threading.BoundedSemaphore] = {}
_host_slots_lock = threading.Lock()


def _host_slot(host: str) -> threading.BoundedSemaphore:
    with _host_slots_lock:
        slot = _host_slots.get(host)
        if slot is None:
            slot = _host_slots[host] = threading.BoundedSemaphore(max(settings.FETCH_PER_HOST, 1))
        return slot


_STEP = 64 * 1024  # the most a decompressor may produce from one call


def _inflate(chunks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """Decompress gzip or deflate at most _STEP bytes at a time, so a bomb is caught by
    the size cap before it is inflated (httpx's own decoders inflate each network read
    whole: ~10 KB of gzip becomes 10 MB in one call)."""
    wbits = zlib.MAX_WBITS | 16 if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
    decompressor = zlib.decompressobj(wbits)
    first = True
    for data in chunks:
        while data:
            try:
                out = decompressor.decompress(data, _STEP)
            except zlib.error:
                if not (first and encoding == "deflate"):
                    raise
                # "deflate" is often sent raw, without the zlib wrapper.
                decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
                out = decompressor.decompress(data, _STEP)
            first = False
            data = decompressor.unconsumed_tail
            if out:
                yield out
    while out := decompressor.decompress(b"", _STEP):
        yield out


def _decoded(response: httpx.Response) -> Iterator[bytes]:
    """The body, with gzip and deflate undone in bounded steps (other encodings, which
    httpx would not decode either without extra packages, pass through as sent)."""
    chunks: Iterable[bytes] = response.iter_raw()
    codings = [c.strip().lower() for c in response.headers.get("content-encoding", "").split(",")]
    for coding in reversed([c for c in codings if c and c != "identity"]):
        if coding in ("gzip", "x-gzip", "deflate"):
            chunks = _inflate(chunks, coding)
    return iter(chunks)


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        httpx.URL(url)  # what httpx itself refuses (0177.0.0.1, bad IDNA, bad ports)
    except (ValueError, httpx.InvalidURL) as exc:
        raise FetchError(f"the address {url[:300]!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"only http and https URLs can be fetched, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise FetchError(f"the URL {url!r} has no host")


def fetch(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    max_bytes: int | None = None,
    total_timeout: float | None = None,
    connect_timeout: float | None = None,
    max_redirects: int | None = None,
    allowed_networks: Iterable[str] | None = None,
) -> FetchResult:
    """GET `url` within the configured limits; raise FetchError with a readable reason."""
    max_bytes = max_bytes or settings.FETCH_MAX_BYTES
    total_timeout = total_timeout or settings.FETCH_TOTAL_TIMEOUT
    connect_timeout = connect_timeout or settings.FETCH_CONNECT_TIMEOUT
    max_redirects = settings.FETCH_MAX_REDIRECTS if max_redirects is None else max_redirects
    allowed = settings.FETCH_ALLOWED_NETWORKS if allowed_networks is None else allowed_networks
    _check_url(url)

    started = time.monotonic()
    deadline = started + total_timeout
    request_headers = {
        "User-Agent": settings.FETCH_USER_AGENT,
        "Accept-Encoding": "gzip, deflate",
        **(headers or {}),
    }
    timeout = httpx.Timeout(total_timeout, connect=connect_timeout)
    host = (urlsplit(url).hostname or "").lower()
    slot = _host_slot(host)
    if not slot.acquire(timeout=total_timeout):
        raise FetchError(f"timed out waiting for a free connection to {host}")
    token = _deadline.set(deadline)
    try:
        with host_client(allowed, host) as client:
            return _fetch(
                client, url, request_headers, timeout, max_bytes, max_redirects, total_timeout, started
            )
    finally:
        _deadline.reset(token)
        slot.release()


def _fetch(
    client: httpx.Client,
    url: str,
    request_headers: Mapping[str, str],
    timeout: httpx.Timeout,
    max_bytes: int,
    max_redirects: int,
    total_timeout: float,
    started: float,
) -> FetchResult:
    deadline = started + total_timeout
    late = f"timed out: the server did not finish sending within {total_timeout:g} seconds"
    redirects: list[str] = []
    try:
        request = client.build_request("GET", url, headers=request_headers, timeout=timeout)
        while True:
            response = client.send(request, stream=True)
            if response.next_request is None:
                break
            # httpx would read a redirect's body whole, with no cap and no deadline;
            # nobody needs it, so hang up on it (it may be endless) and go on.
            response.close()
            if len(redirects) >= max_redirects:
                raise FetchError(f"more than {max_redirects} redirects (a redirect loop?)")
            redirects.append(str(response.url))
            request = response.next_request
        try:
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise TooLarge(f"the response is {int(length):,} bytes, over the {max_bytes:,} byte cap")
            chunks: list[bytes] = []
            size = 0
            for chunk in _decoded(response):
                size += len(chunk)
                if size > max_bytes or response.num_bytes_downloaded > max_bytes:
                    raise TooLarge(f"the response grew past the {max_bytes:,} byte cap")
                if time.monotonic() > deadline:
                    raise FetchError(late)
                chunks.append(chunk)
            return FetchResult(
                url=str(response.url),
                status=response.status_code,
                headers={k.lower(): v for k, v in response.headers.items()},
                content=b"".join(chunks),
                elapsed=time.monotonic() - started,
                redirects=redirects,
            )
        finally:
            response.close()
    except FetchError:
        raise
    except zlib.error as exc:
        raise FetchError(f"the response could not be decompressed: {exc}") from exc
    except httpx.TimeoutException as exc:
        if isinstance(exc.__cause__, DeadlinePassed):
            raise FetchError(late) from exc
        raise FetchError(f"timed out after {time.monotonic() - started:.0f} seconds") from exc
    except httpx.UnsupportedProtocol as exc:
        raise FetchError(f"redirected to an unsupported URL: {exc}") from exc
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise FetchError(f"not a valid URL: {exc}") from exc
    except httpx.DecodingError as exc:
        raise FetchError(f"the response could not be decompressed: {exc}") from exc
    except httpx.HTTPError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, BlockedAddress):
            raise cause from None
        raise FetchError(f"network error: {exc}") from exc
