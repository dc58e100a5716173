"""Honest CI: under CI=true a test skipped for want of a part fails the run; only a
PostgreSQL-only test may skip, and only in the SQLite run."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

PROBE = """
import pytest

def test_without_its_part():
    pytest.skip("no Chromium found")

def test_postgres_only():
    pytest.skip("concurrent clustering is exercised on PostgreSQL (CI's second run)")
"""


def run_probe(tmp_path, **env_vars: str) -> str:
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401\n"
    )
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "test_module_skip.py").write_text(
        'import pytest\npytest.importorskip("no_such_module_here")\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "DATABASE_URL"}}
    env.update(PYTHONPATH=str(REPO), DJANGO_SETTINGS_MODULE="tests.settings", **env_vars)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rA",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:django",
            "--continue-on-collection-errors",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout


def test_a_developer_without_a_part_sees_skips(tmp_path):
    out = run_probe(tmp_path)
    assert "3 skipped" in out and "failed" not in out


def test_under_ci_a_missing_part_fails_the_run(tmp_path):
    out = run_probe(tmp_path, CI="true")
    assert "FAILED" in out and "test_without_its_part" in out and "may not be skipped" in out
    assert "ERROR tests" in out or "ERROR test_module_skip" in out  # the module-level skip fails too
    assert "1 skipped" in out  # the PostgreSQL-only test, in the SQLite run


def test_under_ci_on_postgresql_nothing_may_skip(tmp_path):
    out = run_probe(tmp_path, CI="true", DATABASE_URL="postgres://postgres@127.0.0.1:5432/none")
    assert "skipped" not in out.splitlines()[-1]
