"""One settings file, driven by environment variables (see .env.example)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def env_bool(name: str, default: bool = False) -> bool:
    """A switch. Anything but the accepted words stops start-up: a typo such as
    DEBUG=ture must not quietly mean False."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a switch value. Use one of {', '.join(TRUE_WORDS)} to turn it on, "
        f"or one of {', '.join(FALSE_WORDS)} to turn it off (or leave {name} unset: "
        f"{'on' if default else 'off'})."
    )


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a whole number. Use digits only, such as {name}={default} "
            f"(or leave {name} unset: {default})."
        ) from exc
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} is too small: use a whole number of {minimum} or more.")
    return number


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a number. Use digits with an optional decimal point, such as "
            f"{name}={default} (or leave {name} unset: {default})."
        ) from exc
    if number != number or number in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name}={value!r} is not a finite number, such as {name}={default}.")
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} is too small: use a number of {minimum:g} or more.")
    return number


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


PRICE_KINDS = ("input", "output", "cache_write", "cache_read")


def claude_price_table(defaults: dict[str, dict[str, float]], *, model: str) -> dict[str, dict[str, float]]:
    """The price table: defaults, rows from CLAUDE_PRICES (JSON), then CLAUDE_PRICE_* for
    `model`. The configured model must have a complete row: checked here, at start-up."""
    table = {name: dict(row) for name, row in defaults.items()}
    raw = os.environ.get("CLAUDE_PRICES", "").strip()
    if raw:
        try:
            extra = json.loads(raw)
            if not isinstance(extra, dict) or not all(isinstance(r, dict) for r in extra.values()):
                raise ValueError("not an object of objects")
            for name, row in extra.items():
                table[name] = {**table.get(name, {}), **{k: float(v) for k, v in row.items()}}
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(
                'CLAUDE_PRICES must be JSON like {"claude-x": {"input": 1, "output": 5, '
                f'"cache_write": 1.25, "cache_read": 0.1}}: {exc}'
            ) from exc
    for kind in PRICE_KINDS:
        name = f"CLAUDE_PRICE_{kind.upper()}"
        if os.environ.get(name, "").strip():
            table.setdefault(model, {})[kind] = env_float(name, 0.0)
    row = table.get(model)
    if row is None:
        raise ImproperlyConfigured(
            f"CLAUDE_MODEL={model!r} has no prices. Set CLAUDE_MODEL to a model of the price table "
            f"({', '.join(sorted(table))}), or give its prices in CLAUDE_PRICES or CLAUDE_PRICE_INPUT, "
            "CLAUDE_PRICE_OUTPUT, CLAUDE_PRICE_CACHE_WRITE and CLAUDE_PRICE_CACHE_READ "
            "(US dollars per million tokens)."
        )
    missing = [k for k in PRICE_KINDS if k not in row]
    if missing:
        raise ImproperlyConfigured(
            f"CLAUDE_MODEL={model!r} lacks the {', '.join(missing)} price: set "
            + ", ".join(f"CLAUDE_PRICE_{k.upper()}" for k in missing)
            + " (or add them to its row in CLAUDE_PRICES)."
        )
    negative = [k for k, v in row.items() if v < 0]
    if negative:
        raise ImproperlyConfigured(
            f"CLAUDE_MODEL={model!r}: a price cannot be negative ({', '.join(negative)})."
        )
    return table


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY in the environment "
            "(or DEBUG=1 for local development; `make run` does this for you)."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
# `make run` serves on PORT; permalinks and feed ids follow it unless SITE_URL is set.
SITE_URL = env_str("SITE_URL", f"http://127.0.0.1:{env_int('PORT', 8000, minimum=1)}").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", SITE_URL)
SITE_NAME = env_str("SITE_NAME", "Newsdesk")
SITE_LANGUAGE = env_str("SITE_LANGUAGE", "en")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.sitemaps",
    "csp",
    "django_q",
    "aggregator",
    "enrichment",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "aggregator.pagecache.PageCacheMiddleware",
    "aggregator.pagecache.CompressionMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.http.ConditionalGetMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "aggregator.urls"
WSGI_APPLICATION = "aggregator.wsgi.application"
ASGI_APPLICATION = "aggregator.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "aggregator.context_processors.site",
            ],
        },
    },
]

# Database: a SQLite file in WAL mode with a busy timeout by default, so the web
# server and the qcluster workers can share it; PostgreSQL through DATABASE_URL.
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var")))
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            # Kept open between requests: opening a file and setting WAL per request
            # costs more than serving a cached page.
            "CONN_MAX_AGE": env_int("SQLITE_CONN_MAX_AGE", 600),
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 2000},
        }
    }
# Whole pages for anonymous readers (aggregator.pagecache): seconds a page is kept and
# browsers may reuse it (a change to the content is shown at once regardless; this
# bounds only how old "collected 5m ago" may get). 0 turns the cache off.
PAGE_CACHE_SECONDS = env_int("PAGE_CACHE_SECONDS", 60)
PAGE_CACHE_EXCLUDE = ("/admin/", "/static/")
# New content (the pipeline's new articles, cards and stories) may show this many seconds
# late: a page rendered before it is served that long (editors' changes show at once).
# 0: every change shows at once (every page rendered again after every new article).
PAGE_FRESH_SECONDS = env_int("PAGE_FRESH_SECONDS", 10)
# Seconds a request waits for another request's render of the same page (single flight).
PAGE_RENDER_WAIT = env_int("PAGE_RENDER_WAIT", 5)

# Workers. retry > timeout so a slow task is never handed out twice while it runs;
# max_attempts bounds a poison task; catch_up off so downtime does not cause a storm.
Q_CLUSTER = {
    "name": env_str("Q_CLUSTER_NAME", "newsdesk"),
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": env_int("Q_TIMEOUT", 120, minimum=1),
    "retry": env_int("Q_RETRY", 300, minimum=1),
    "max_attempts": 3,
    "catch_up": False,
    "save_limit": 500,
    "ack_failures": True,
    # Tasks a cluster takes from the broker ahead of its workers. Redis has no receipts:
    # what a killed cluster had taken is lost until the leases run out, so keep it small.
    "queue_limit": env_int("Q_QUEUE_LIMIT", env_int("Q_WORKERS", 2, minimum=1), minimum=1),
    "label": "Task queue",
    "poll": 1,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
Q_CLUSTER["sync"] = env_bool("Q_SYNC", False)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Fetching: limits for every outside request (feeds and article pages).
FETCH_CONNECT_TIMEOUT = env_int("FETCH_CONNECT_TIMEOUT", 5, minimum=1)
FETCH_TOTAL_TIMEOUT = env_int("FETCH_TOTAL_TIMEOUT", 20, minimum=1)
FETCH_MAX_BYTES = env_int("FETCH_MAX_BYTES", 15 * 1024 * 1024, minimum=1)
FETCH_MAX_REDIRECTS = env_int("FETCH_MAX_REDIRECTS", 5)
# Comma-separated networks that may be fetched although private (e.g. 127.0.0.0/8
# for the offline demo and the tests). Empty: private, loopback, link-local and
# reserved addresses are refused on every hop.
FETCH_ALLOWED_NETWORKS = env_list("FETCH_ALLOWED_NETWORKS", "")
FETCH_USER_AGENT = env_str(
    "FETCH_USER_AGENT",
    f"NewsdeskBot/0.1 (+{SITE_URL}/about/; feed reader and article summarizer)",
)
# At most this many fetches to one host at once in a process (politeness to publishers).
FETCH_PER_HOST = env_int("FETCH_PER_HOST", 4, minimum=1)
# Feeds and pages fetched at once by `poll` and each poll task (threads; parsing and
# extraction stay on one thread).
INGEST_THREADS = env_int("INGEST_THREADS", 8)
# Processes that read (extract, cluster, card) the new articles of `poll --extract`
# (aggregator.ingest.run), one per core by default; 1 reads them on the polling thread.
INGEST_PROCESSES = env_int("INGEST_PROCESSES", min(os.cpu_count() or 1, 4), minimum=1)
EXTRACT_MAX_BYTES = env_int("EXTRACT_MAX_BYTES", 3 * 1024 * 1024, minimum=1)
EXTRACT_TIME_LIMIT = env_int("EXTRACT_TIME_LIMIT", 15, minimum=1)

# The dispatcher claims due sources for at most this many seconds a run (it runs every
# minute), and hands them to workers POLL_BATCH to a task (fetched at once, in threads).
DISPATCH_SECONDS = env_int("DISPATCH_SECONDS", 40)
POLL_BATCH = env_int("POLL_BATCH", 10)
# Polling cadence, in minutes.
POLL_MIN_INTERVAL = env_int("POLL_MIN_INTERVAL", 5, minimum=1)
POLL_MAX_INTERVAL = env_int("POLL_MAX_INTERVAL", 24 * 60, minimum=1)
POLL_DEFAULT_INTERVAL = env_int("POLL_DEFAULT_INTERVAL", 30, minimum=1)
# A page with more links than this is a directory, not an article; an article's text is
# kept up to this many characters (long reads run to ~60,000).
EXTRACT_MAX_LINKS = env_int("EXTRACT_MAX_LINKS", 5000, minimum=1)
EXTRACT_MAX_CHARS = env_int("EXTRACT_MAX_CHARS", 100_000, minimum=1000)
# Seconds one poll may spend storing entries before it leaves the rest for the next
# poll (a minute later): well inside the worker's task timeout.
POLL_TIME_BUDGET = env_int("POLL_TIME_BUDGET", Q_CLUSTER["timeout"] * 7 // 10, minimum=0)
# Every unit of work (a source's poll, an article's next step) is claimed in the
# database for this many seconds and renewed every third of it while a worker works on
# it (aggregator.ingest.leases); a lease that runs out is handed out again by the next
# tick (every minute), whatever the broker lost.
LEASE_SECONDS = env_int("LEASE_SECONDS", 60, minimum=3)
# An article whose step (extract, cluster, card) raised this many times in a row is no
# longer handed out by the sweep: it stays readable, and the desk shows the step and the
# error until an editor retries it (admin action "Retry the step that kept failing").
STEP_MAX_FAILURES = env_int("STEP_MAX_FAILURES", 3, minimum=1)

ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
# Which enricher writes the cards: claude when a key is set, extractive (offline) otherwise.
ENRICHMENT_BACKEND = env_str("ENRICHMENT_BACKEND", "claude" if ANTHROPIC_API_KEY else "extractive")
# Claims whose passage is not found in the text: "drop" them, or "mark" them unsupported.
GROUNDING_MODE = env_str("GROUNDING_MODE", "drop")

# Claude. The model and its prices live here, never in code: prices move. The price
# table holds US dollars per million tokens for each model: input, output, five-minute
# cache write, cache read (Anthropic's published list prices). Add or change a row with
# CLAUDE_PRICES (JSON: {"model": {"input": .., "output": .., "cache_write": .., "cache_read": ..}});
# CLAUDE_PRICE_INPUT/_OUTPUT/_CACHE_WRITE/_CACHE_READ override the configured model's row.
# After a price change, `manage.py reprice` recomputes recorded spend from recorded tokens.
CLAUDE_MODEL = env_str("CLAUDE_MODEL", "claude-haiku-5-5")
CLAUDE_PRICES = claude_price_table(
    {"claude-haiku-5-5": {"input": 0.10, "output": 0.50, "cache_write": 0.125, "cache_read": 0.01}},
    model=CLAUDE_MODEL,
)
CLAUDE_BATCH_DISCOUNT = env_float("CLAUDE_BATCH_DISCOUNT", 0.5)
# Output limit per card; 0 sizes it from the card schema's own limits (enrichment.backends
# .claude.schema_max_tokens). An answer cut at the limit is retried once with twice as much.
CLAUDE_MAX_TOKENS = env_int("CLAUDE_MAX_TOKENS", 0)
# Extended thinking for cards: 0 sends `thinking: disabled` (cards need none, and hidden
# thinking tokens are billed as output); N >= 1024 allows N thinking tokens on top of the
# output limit (sent as adaptive thinking with that headroom to Claude Haiku 5.x, which
# refuses a `budget_tokens`).
CLAUDE_THINKING_BUDGET = env_int("CLAUDE_THINKING_BUDGET", 0)
if 0 < CLAUDE_THINKING_BUDGET < 1024:
    raise ImproperlyConfigured(
        "CLAUDE_THINKING_BUDGET must be 0 (thinking disabled) or at least 1024 tokens."
    )
# Mark the stable system prompt for prompt caching (off only to measure what it saves).
CLAUDE_PROMPT_CACHE = env_bool("CLAUDE_PROMPT_CACHE", True)
# Claude also writes each multi-publisher story's card (what happened, where reports
# differ) from its reports, when Claude writes the article cards; 0 keeps the offline one.
CLAUDE_STORY_CARDS = env_bool("CLAUDE_STORY_CARDS", True)
CLAUDE_MAX_INPUT_CHARS = env_int("CLAUDE_MAX_INPUT_CHARS", 24000)
# Seconds per HTTP call. One retry budget per article, across the SDK and our own retries:
# at most CLAUDE_MAX_CALLS HTTP calls for an article whatever fails (a persistent 429,
# 529, 5xx or timeout), waiting what the API's retry-after asks (up to
# CLAUDE_RETRY_MAX_WAIT seconds in the task; longer, the article is tried again later),
# all inside the task timeout (Q_TIMEOUT).
CLAUDE_TIMEOUT = env_int("CLAUDE_TIMEOUT", 30, minimum=1)
CLAUDE_MAX_CALLS = env_int("CLAUDE_MAX_CALLS", 3)
CLAUDE_RETRY_MAX_WAIT = env_int("CLAUDE_RETRY_MAX_WAIT", 10)
if CLAUDE_MAX_CALLS < 1:
    raise ImproperlyConfigured("CLAUDE_MAX_CALLS must be at least 1.")
# Dollars per UTC day; past it new articles keep their extractive card.
CLAUDE_DAILY_BUDGET = env_float("CLAUDE_DAILY_BUDGET", 5.0)
# More articles than this waiting for Claude: send them as one Message Batch instead.
CLAUDE_BATCH_THRESHOLD = env_int("CLAUDE_BATCH_THRESHOLD", 20)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "trafilatura": {"level": "WARNING"},
        "htmldate": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}

# Security headers. Scripts only from this site (the JSON-LD blocks are data, not
# scripts); images from anywhere on https (publishers' pictures); no frames, no plugins.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],  # the admin's own style attributes
        "img-src": ["'self'", "https:", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto (and strips it from
# clients): SECURE_PROXY_SSL_HEADER=1. The rest follow SITE_URL being https.
_HTTPS = SITE_URL.startswith("https://") and not DEBUG
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _HTTPS)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if _HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", _HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if SECURE_HSTS_SECONDS and not SECURE_HSTS_PRELOAD:
    # Preloading is a commitment for the whole domain, an operator's choice, not a default.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Admin sign-in throttling: after this many failed attempts for one user name (or from
# one address, four times as many) sign-in is refused for LOGIN_LOCKOUT_MINUTES.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
