"""`manage.py workers`: django-q2's qcluster, stopped within seconds by SIGTERM.

What systemd and Docker send on stop is SIGTERM to every process of the group. Sent to
qcluster's own processes it kills the sentinel while it holds a lock the main process
then waits on for ever (seen with the Redis broker). So the cluster runs in a session of
its own, out of reach of that signal; this process forwards SIGTERM/SIGINT to the
cluster's main process alone (its orderly stop), and kills whatever is left after
`--grace` seconds. A task cut short there is done again: every step is idempotent and
the sweeps pick up what a stopped worker held.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the task workers (django-q2 qcluster); SIGTERM or Ctrl-C stops them within --grace seconds."

    def add_arguments(self, parser):
        parser.add_argument("--grace", type=float, default=8.0, help="Seconds an orderly stop may take.")

    def handle(self, *args, grace: float, **options):
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        cluster = subprocess.Popen([sys.executable, manage, "qcluster"], start_new_session=True)
        self.stderr.write(f"workers: qcluster running as process {cluster.pid}")
        stop: list[int] = []

        def on_signal(signum, frame):
            stop.append(signum)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while cluster.poll() is None and not stop:
            time.sleep(0.2)
        if cluster.poll() is not None:
            sys.exit(cluster.returncode or 1)  # it stopped on its own: say so to the supervisor
        self.stderr.write(f"workers: stopping (up to {grace:g} seconds)")
        cluster.send_signal(signal.SIGTERM)
        try:
            cluster.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.stderr.write("workers: the orderly stop took too long; killing the cluster")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cluster.pid, signal.SIGKILL)  # the sentinel and workers, if any are left
        cluster.wait()
