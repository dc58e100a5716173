"""`make run`: the whole product on one machine, offline."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone


def wait_for(url: str, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (loopback, our own server)
                return True
        except OSError:
            time.sleep(0.2)
    return False


class Command(BaseCommand):
    help = "Migrate, create an admin, load demo sources, start demo server + web server + workers."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--demo-port", type=int, default=int(os.environ.get("DEMO_PORT", "0")))

    def handle(self, *args, port: int, demo_port: int, **options):
        demo_port = demo_port or port + 1000
        data_dir = Path(settings.DATA_DIR)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.stdout.write("Preparing the database …")
        call_command("migrate", interactive=False, verbosity=0)
        self.ensure_admin(data_dir)
        call_command("load_demo", base_url=f"http://127.0.0.1:{demo_port}")
        call_command("setup_schedules")

        python = sys.executable
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        children: list[subprocess.Popen] = []

        def start(*cmd: str) -> subprocess.Popen:
            proc = subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=True)
            children.append(proc)
            return proc

        def stop_all(*_):
            for proc in children:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in children:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)

        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            start(
                python,
                "-m",
                "aggregator.demo.server",
                "--port",
                str(demo_port),
                "--state",
                str(data_dir / "demo-clock.txt"),
            )
            if not wait_for(f"http://127.0.0.1:{demo_port}/"):
                raise CommandError(
                    f"The demo server did not start on port {demo_port}; "
                    "is the port taken? Set DEMO_PORT to another one."
                )
            start(python, manage, "runserver", f"127.0.0.1:{port}", "--noreload")
            start(python, manage, "workers")
            self.stdout.write("Polling the demo sources once now (workers then read each article) …")
            call_command("poll", all=True)
            if not wait_for(f"http://127.0.0.1:{port}/", 30):
                raise CommandError(f"The web server did not start on port {port}; set PORT to a free one.")
            self.publish_demo_recaps()
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nNewsdesk is running on http://127.0.0.1:{port}/  (admin: http://127.0.0.1:{port}/admin/)"
                    f"\nDemo publications on http://127.0.0.1:{demo_port}/ · Ctrl-C stops everything.\n"
                )
            )
            while all(proc.poll() is None for proc in children):
                time.sleep(1)
            dead = [p.args for p in children if p.poll() is not None]
            raise CommandError(f"A process stopped unexpectedly: {dead}")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping …")
        finally:
            stop_all()

    def publish_demo_recaps(self, seconds: float = 120) -> None:
        """Once the workers have read the demo articles, publish a recap of each demo week
        (editors do this by hand on a real site)."""
        from aggregator.models import Article, Source

        self.stdout.write("Waiting for the workers to read and enrich the demo articles …")
        deadline = time.monotonic() + seconds
        demo = Article.objects.filter(source__in=Source.objects.filter(is_demo=True))
        while time.monotonic() < deadline:
            waiting = demo.exclude(state=Article.State.ENRICHED).count()
            if waiting == 0:
                break
            self.stdout.write(f"  {demo.count() - waiting}/{demo.count()} articles ready")
            time.sleep(5)
        weeks = sorted(
            {timezone.localtime(a).isocalendar()[:2] for a in demo.values_list("sort_at", flat=True)}
        )
        for year, week in weeks[-2:]:
            call_command("build_recap", year=year, week=week, publish=True)

    def ensure_admin(self, data_dir: Path) -> None:
        password_file = data_dir / "admin-password.txt"
        user_model = get_user_model()
        if not password_file.exists() or not user_model.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            user, _ = user_model.objects.get_or_create(
                username="admin", defaults={"email": "admin@localhost"}
            )
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        password = password_file.read_text().strip()
        self.stdout.write(f"Admin login: user 'admin', password '{password}' (kept in {password_file}).")
