"""Clean shutdown: SIGTERM to the workers' process group (what systemd and Docker send)
stops a real cluster within 10 seconds, a task mid-run included, and leaves no process
behind; on the ORM broker, and on Redis when REDIS_URL is set (CI's second run)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def alive_in_session(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields: state ppid pgrp session …
            pids.append(int(entry))
    return pids


def test_sigterm_to_the_group_stops_the_workers_within_ten_seconds(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(
        DATA_DIR=str(tmp_path),
        SECRET_KEY="shutdown-test",
        DEBUG="0",
        LOG_LEVEL="INFO",
        Q_CLUSTER_NAME=f"stop-{uuid.uuid4().hex[:8]}",
    )
    run = {"cwd": REPO, "env": env, "check": True, "capture_output": True, "timeout": 120}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], **run)
    log = tmp_path / "workers.log"
    workers = subprocess.Popen(
        [sys.executable, "manage.py", "workers"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        start_new_session=True,
    )
    try:
        # A task that would run for a minute: the stop must not wait for it.
        enqueue = "from django_q.tasks import async_task; async_task('time.sleep', 60)"
        subprocess.run([sys.executable, "manage.py", "shell", "-c", enqueue], **run)
        deadline = time.monotonic() + 90
        while "running" not in log.read_text() and time.monotonic() < deadline:
            assert workers.poll() is None, log.read_text()[-2000:]
            time.sleep(0.5)
        assert "running" in log.read_text(), log.read_text()[-2000:]
        time.sleep(3)  # the sleeping task is picked up
        cluster = int(re.search(r"qcluster running as process (\d+)", log.read_text()).group(1))

        os.killpg(workers.pid, signal.SIGTERM)
        started = time.monotonic()
        workers.wait(timeout=30)
        took = time.monotonic() - started
        print(f"workers stopped {took:.1f} s after SIGTERM to their group")
        assert took < 10, log.read_text()[-2000:]
        assert workers.returncode == 0
        time.sleep(0.5)
        assert alive_in_session(cluster) == [], "cluster processes outlived the stop"
    finally:
        if workers.poll() is None:
            os.killpg(workers.pid, signal.SIGKILL)
