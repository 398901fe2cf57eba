"""The dashboard's Jinja2 environment: templates and filters from the package, HTML autoescaped."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.templating import Jinja2Templates

from taskmaster.core.clock import utcnow


def duration(ms: int | None) -> str:
    if ms is None:
        return "–"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def ago(moment: datetime | None) -> str:
    if moment is None:
        return "–"
    seconds = int((utcnow() - moment).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return moment.strftime("%Y-%m-%d %H:%M")


def short(value: object, length: int = 8) -> str:
    return str(value)[:length] if value is not None else "–"


@cache
def templates() -> Jinja2Templates:
    """Built on first use (never at import time)."""
    env = Environment(
        loader=PackageLoader("taskmaster.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(duration=duration, ago=ago, short=short)
    return Jinja2Templates(env=env)
