from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

TRACKING_PARAMS = {"fbclid", "gclid", "dclid", "mc_cid", "mc_eid", "igshid", "ref", "ref_src", "cmpid"}


def canonicalize_url(url: str) -> str:
    """The form of an article URL we deduplicate on: lower-case scheme and host, no
    default port, no tracking parameters. Empty for non-http(s) URLs.

    The fragment is kept: link blogs and live blogs give each entry its own anchor on
    one page (`…/2002/09/29#When:6:56:02PM`), and those are different entries. Only a
    fragment that carries tracking parameters (`#utm_source=…`) is dropped."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return ""
    host = parts.hostname.lower()
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS
    ]
    path = parts.path or "/"
    fragment = parts.fragment
    if "utm_" in fragment.lower() or fragment.lower().startswith("ref="):
        fragment = ""
    return urlunsplit((scheme, host, path, urlencode(query), fragment))


def is_http_url(url: str) -> bool:
    return bool(canonicalize_url(url))
