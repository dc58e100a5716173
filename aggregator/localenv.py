"""`make run` keeps a local .env, so that the operators' commands in the README work
as printed afterwards (manage.py reads it): development mode, a random SECRET_KEY made
once, loopback fetches allowed for the demo publications, and the port the site runs on
(SITE_URL follows it). Values already in .env are kept; the environment still wins."""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

from dotenv import dotenv_values, set_key

ENV = Path(__file__).resolve().parent.parent / ".env"


def ensure(path: Path, *, port: int) -> list[str]:
    """Write what is missing (and the port); returns the names written."""
    current = dotenv_values(path) if path.exists() else {}
    if not path.exists():
        path.write_text("# Written by `make run` for local development; see .env.example.\n")
    wanted = {
        "DEBUG": "1",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FETCH_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
    }
    written = []
    for name, value in wanted.items():
        if not current.get(name):
            set_key(path, name, value, quote_mode="never")
            written.append(name)
    if current.get("PORT") != str(port):
        set_key(path, "PORT", str(port), quote_mode="never")
        written.append("PORT")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--path", type=Path, default=ENV)
    args = parser.parse_args()
    written = ensure(args.path, port=args.port)
    if written:
        print(f"{args.path.name}: set {', '.join(written)} (manage.py reads it)")


if __name__ == "__main__":
    main()
