"""Pinned real agent CLIs, installed on first use into a cache outside the repository and reused after.

npm packages go into `<cache>/npm` (one prefix, stamped with the pins), Aider into its own venv; the cache is
`TASKMASTER_AGENTS_CACHE` or `~/.cache/taskmaster-agents`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

NPM_PINS = {
    "@anthropic-ai/claude-code": "2.1.197",
    "@openai/codex": "0.171.0",
    "@google/gemini-cli": "0.61.0",
}
AIDER_VERSION = "0.86.2"
INSTALL_TIMEOUT = 900


def cache_dir() -> Path:
    return Path(os.environ.get("TASKMASTER_AGENTS_CACHE", Path.home() / ".cache" / "taskmaster-agents"))


def ensure_installed(cache: Path | None = None) -> dict[str, Path]:
    """The CLIs' executables by agent type, installing what is missing (raises RuntimeError naming the failure)."""
    cache = cache or cache_dir()
    npm_prefix = cache / "npm"
    stamp = npm_prefix / ".pins"
    pins = " ".join(f"{name}@{version}" for name, version in sorted(NPM_PINS.items()))
    if not stamp.exists() or stamp.read_text() != pins:
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed to install the agent CLIs (./dev installs Debian's npm)")
        npm_prefix.mkdir(parents=True, exist_ok=True)
        _run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(npm_prefix), *pins.split()])
        stamp.write_text(pins)
    venv = cache / f"aider-{AIDER_VERSION}"
    aider = venv / "bin" / "aider"
    if not aider.exists():
        _run([sys.executable, "-m", "venv", str(venv)])
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"aider-chat=={AIDER_VERSION}"])
    bin_dir = npm_prefix / "node_modules" / ".bin"
    return {"claude": bin_dir / "claude", "codex": bin_dir / "codex", "gemini": bin_dir / "gemini", "aider": aider}


def litellm_price_map(aider: Path) -> Path:
    """The model price map bundled with Aider's litellm, which Aider otherwise downloads at every start."""
    found = sorted(
        aider.parent.parent.glob("lib/python*/site-packages/litellm/model_prices_and_context_window_backup.json")
    )
    if not found:
        raise RuntimeError(f"litellm's bundled price map is missing under {aider.parent.parent}")
    return found[0]


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} … failed ({done.returncode}): {done.stderr[-2000:]}")
