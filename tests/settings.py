"""Settings for the test suite: production settings, with tasks run inline and
loopback fetches allowed (the tests' feed and page servers live there)."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")

from aggregator.settings import *  # noqa: E402,F403
from aggregator.settings import LOGGING, Q_CLUSTER, STORAGES  # noqa: E402

Q_CLUSTER = {**Q_CLUSTER, "sync": True}
FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
FETCH_TOTAL_TIMEOUT = 5
FETCH_CONNECT_TIMEOUT = 2
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
LOGGING = {**LOGGING, "loggers": {**LOGGING["loggers"], "django-q": {"level": "WARNING"}}}
PAGE_CACHE_SECONDS = 0  # tests that want the page cache turn it on (tests/test_pagecache.py)
CLAUDE_STORY_CARDS = False  # tests that want Claude story cards turn them on (tests/test_story_claude.py)
INGEST_PROCESSES = 1  # tests that want reader processes ask for them (tests/test_readers.py)
