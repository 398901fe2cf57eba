"""How long `taskmaster mcp` (stdio) takes to answer `initialize`, as a ratio against a bare Python start.

  spawn -> initialize answered   vs  spawn -> `python -c pass` exited     goal: under 0.5 s (about 10x)

The state directory is migrated beforehand, as it is after a first run. Median of --runs, alternating the two.

Run: ./dev python bench/mcp_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"},
    },
}


def bare_python() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def initialize(env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskmaster", "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
    proc.stdin.flush()
    answer = json.loads(proc.stdout.readline())
    elapsed = time.perf_counter() - started
    assert answer.get("id") == 1 and "result" in answer, answer
    proc.stdin.close()
    proc.wait(timeout=30)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TASKMASTER_HOME": str(Path(home) / "state"), "TASKMASTER_ENV": "test"}
        env.pop("DATABASE_URL", None)
        subprocess.run([sys.executable, "-m", "taskmaster", "db", "migrate"], env=env, cwd=home, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        bare: list[float] = []
        mcp: list[float] = []
        for _ in range(args.runs):
            bare.append(bare_python())
            mcp.append(initialize(env, Path(home)))
    base, answered = statistics.median(bare), statistics.median(mcp)
    print(f"bare python start        {base * 1000:7.0f} ms")
    print(f"mcp initialize answered  {answered * 1000:7.0f} ms  ({answered / base:.1f}x the bare start)")
    print(f"goal: under 500 ms: {'met' if answered < 0.5 else 'not met'}")


if __name__ == "__main__":
    main()
