"""Settings read from the environment fail loudly: a typo stops start-up, naming the
variable and the values it accepts, instead of quietly meaning something else."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from aggregator.settings import env_bool, env_float, env_int
from tests.conftest import REPO


@pytest.mark.parametrize("value", ["ture", "yes please", "2", "enabled", "y"])
def test_it_refuses_an_unknown_switch_value(monkeypatch, value):
    monkeypatch.setenv("SOME_SWITCH", value)
    with pytest.raises(ImproperlyConfigured) as caught:
        env_bool("SOME_SWITCH", True)
    message = str(caught.value)
    assert f"SOME_SWITCH={value!r}" in message
    assert "1, true, yes, on" in message and "0, false, no, off" in message


@pytest.mark.parametrize(
    "value, expected",
    [
        ("1", True),
        ("TRUE", True),
        (" yes ", True),
        ("On", True),
        ("0", False),
        ("false", False),
        ("No", False),
    ],
)
def test_it_reads_the_accepted_switch_values(monkeypatch, value, expected):
    monkeypatch.setenv("SOME_SWITCH", value)
    assert env_bool("SOME_SWITCH", not expected) is expected


def test_an_unset_or_empty_switch_takes_its_default(monkeypatch):
    monkeypatch.delenv("SOME_SWITCH", raising=False)
    assert env_bool("SOME_SWITCH", True) is True
    monkeypatch.setenv("SOME_SWITCH", "")
    assert env_bool("SOME_SWITCH", False) is False


@pytest.mark.parametrize("value", ["ten", "1.5", "12 minutes", "-3"])
def test_it_refuses_what_is_not_a_whole_number(monkeypatch, value):
    monkeypatch.setenv("SOME_NUMBER", value)
    with pytest.raises(ImproperlyConfigured, match=r"SOME_NUMBER='.*'.*(whole number|too small)"):
        env_int("SOME_NUMBER", 30)


@pytest.mark.parametrize("value", ["five dollars", "nan", "inf", "-1"])
def test_it_refuses_what_is_not_a_sensible_number(monkeypatch, value):
    monkeypatch.setenv("SOME_PRICE", value)
    with pytest.raises(ImproperlyConfigured, match="SOME_PRICE="):
        env_float("SOME_PRICE", 1.0)


def test_it_reads_numbers(monkeypatch):
    monkeypatch.setenv("SOME_NUMBER", " 42 ")
    assert env_int("SOME_NUMBER", 30) == 42
    monkeypatch.setenv("SOME_NUMBER", "2.5")
    assert env_float("SOME_NUMBER", 1.0) == 2.5


@pytest.mark.parametrize(
    "name, value, says",
    [
        ("DEBUG", "ture", "1, true, yes, on"),
        ("CLAUDE_PROMPT_CACHE", "yes please", "0, false, no, off"),
        ("Q_WORKERS", "two", "whole number"),
        ("CLAUDE_DAILY_BUDGET", "5 dollars", "not a number"),
    ],
)
def test_a_typo_stops_start_up_and_names_the_variable(tmp_path, name, value, says):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "aggregator.settings",
        "SECRET_KEY": "x" * 50,
        "DATA_DIR": str(tmp_path),
        name: value,
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert f"{name}={value!r}" in done.stderr and says in done.stderr
