"""`python -m taskmaster.worker`: the worker without the CLI (settings from the environment)."""

from __future__ import annotations

import sys

from taskmaster.config import ConfigurationError, load_settings
from taskmaster.worker.main import run_worker


def main() -> int:
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"taskmaster worker: invalid configuration\n{exc}", file=sys.stderr)
        return 2
    return run_worker(settings)


if __name__ == "__main__":
    sys.exit(main())
