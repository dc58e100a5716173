#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    from pathlib import Path

    from dotenv import load_dotenv

    # A local .env (`make run` writes one) fills in what the environment does not set.
    load_dotenv(Path(__file__).resolve().with_name(".env"), override=False)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aggregator.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
