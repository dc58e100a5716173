"""Sign-in throttling for the admin: failed attempts counted in the cache (Redis when
REDIS_URL is set, so every web process shares the count), per user name and per
client address; past the limit, sign-in answers 429 until the lockout has passed."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)


def _keys(request: HttpRequest) -> list[tuple[str, int]]:
    """(cache key, limit) pairs this attempt counts against."""
    limit = settings.LOGIN_FAILURE_LIMIT
    username = request.POST.get("username", "").strip().casefold()
    address = request.META.get("REMOTE_ADDR", "")
    digest = hashlib.sha256(username.encode("utf-8", "replace")).hexdigest()[:32]
    return [(f"login-fail:user:{digest}", limit), (f"login-fail:addr:{address}", limit * 4)]


def _count(key: str) -> int:
    return cache.get(key, 0)


def _fail(key: str) -> None:
    timeout = settings.LOGIN_LOCKOUT_MINUTES * 60
    if cache.add(key, 1, timeout):
        return
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout)


def throttled(login_view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(login_view)
    def view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "POST":
            return login_view(request, *args, **kwargs)
        keys = _keys(request)
        if any(_count(key) >= limit for key, limit in keys):
            logger.warning("sign-in refused: too many failed attempts (%s)", request.META.get("REMOTE_ADDR"))
            minutes = settings.LOGIN_LOCKOUT_MINUTES
            response = HttpResponse(
                f"Too many failed sign-in attempts. Wait {minutes} minutes and try again, "
                "or ask another administrator to reset your password.",
                status=429,
                content_type="text/plain; charset=utf-8",
            )
            response["Retry-After"] = str(minutes * 60)
            return response
        response = login_view(request, *args, **kwargs)
        if request.user.is_authenticated and response.status_code in (301, 302, 303):
            cache.delete(keys[0][0])  # a success forgives the user name, not the address
        else:
            for key, _limit in keys:
                _fail(key)
        return response

    return view
