"""The baseline of a before/after benchmark: another git revision's code, checked out
once into a scratch directory (git archive: no worktree to clean up) and removed when
the benchmark ends."""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def checkout(rev: str) -> tuple[str, Path]:
    """(the short hash of `rev`, a directory holding its code)."""
    short = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    target = Path(tempfile.mkdtemp(prefix=f"bench-baseline-{short}-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return short, target
