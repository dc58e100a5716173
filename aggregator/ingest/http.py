"""The one HTTP client for feeds and pages.

Every request goes through `fetch()`: http/https only, a connect timeout and a total
deadline, a cap on the body before and after decompression, a cap on redirects, and
no connection to a private, loopback, link-local or reserved address on any hop
(checked on the resolved address we actually connect to, so DNS rebinding cannot
slip past), unless `FETCH_ALLOWED_NETWORKS` allows that network.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Iterable, Mapping
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


def is_public_address(ip: str, allowed: Iterable[str] = ()) -> bool:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if any(addr in net for net in _networks(allowed)):
        return True
    return addr.is_global and not addr.is_multicast


class GuardedBackend(httpcore.SyncBackend):
    """Resolve the host ourselves, check every address, connect to a checked one."""

    def __init__(self, allowed_networks: Iterable[str]):
        self.allowed = list(allowed_networks)

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from exc
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
            try:
                return super().connect_tcp(ip, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
        raise httpcore.ConnectError(f"cannot connect to {host}: {last_error}")


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self, *, allowed_networks: Iterable[str], **kwargs):
        super().__init__(**kwargs)
        # httpx has no public hook for the network backend; swap the pool for one
        # that connects only through the guarded backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=self._pool._ssl_context,
            max_connections=10,
            network_backend=GuardedBackend(allowed_networks),
        )


def _check_url(url: str) -> None:
    parts = urlsplit(url)
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
    client = httpx.Client(
        transport=GuardedTransport(allowed_networks=allowed, retries=0),
        timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
        follow_redirects=True,
        max_redirects=max_redirects,
        trust_env=False,
        headers=request_headers,
    )
    try:
        with client, client.stream("GET", url) as response:
            redirects = [str(r.url) for r in response.history]
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise TooLarge(f"the response is {int(length):,} bytes, over the {max_bytes:,} byte cap")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes or response.num_bytes_downloaded > max_bytes:
                    raise TooLarge(f"the response grew past the {max_bytes:,} byte cap")
                if time.monotonic() > deadline:
                    raise FetchError(f"the server did not finish sending within {total_timeout:g} seconds")
                chunks.append(chunk)
            return FetchResult(
                url=str(response.url),
                status=response.status_code,
                headers={k.lower(): v for k, v in response.headers.items()},
                content=b"".join(chunks),
                elapsed=time.monotonic() - started,
                redirects=redirects,
            )
    except FetchError:
        raise
    except httpx.TooManyRedirects as exc:
        raise FetchError(f"more than {max_redirects} redirects (a redirect loop?)") from exc
    except httpx.TimeoutException as exc:
        raise FetchError(f"timed out after {time.monotonic() - started:.0f} seconds") from exc
    except httpx.UnsupportedProtocol as exc:
        raise FetchError(f"redirected to an unsupported URL: {exc}") from exc
    except httpx.DecodingError as exc:
        raise FetchError(f"the response could not be decompressed: {exc}") from exc
    except httpx.HTTPError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, BlockedAddress):
            raise cause from None
        raise FetchError(f"network error: {exc}") from exc
