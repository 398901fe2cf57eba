"""Log capture for tests that read the JSON log lines."""

from __future__ import annotations

import io
import json
from typing import Any


class LogCapture(io.StringIO):
    """A text stream that is not a TTY, so `configure_logging(fmt='auto')` chooses JSON."""

    def isatty(self) -> bool:
        return False

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.getvalue().splitlines() if line.startswith("{")]
