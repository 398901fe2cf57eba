"""Start-up and health latency, each as a ratio against a baseline measured in the same run.

  taskmaster --help     vs  a bare `python -c pass`             goal: under 3x
  GET /health p50/p99   vs  a minimal ASGI app under uvicorn    goal: p99 under 10 ms on SQLite
                          (`taskmaster serve` as the Quick start runs it: embedded SQLite, in-process worker)
  taskmaster worker     spawn to its "worker ready" line (embedded SQLite, schema already migrated), median

Run: ./dev python bench/startup.py [--requests 1000] [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
MINIMAL_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})
"""


def median_run_seconds(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def worker_ready_seconds(home: Path, runs: int) -> float:
    """Median time from spawning `taskmaster worker` to its "worker ready" log line; each run is stopped by SIGTERM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_URL", "TASKMASTER_"))}
    env.update(TASKMASTER_HOME=str(home), TASKMASTER_LOG_FORMAT="json")
    subprocess.run([str(BIN / "taskmaster"), "db", "migrate"], env=env, check=True, capture_output=True)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(BIN / "taskmaster"), "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if b'"worker ready"' in line:
                samples.append(time.perf_counter() - started)
                break
        else:
            raise RuntimeError("taskmaster worker exited before it was ready")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    return statistics.median(samples)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, timeout: float = 30) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def interleaved_latencies_ms(urls: dict[str, str], requests: int, batch: int = 50) -> dict[str, list[float]]:
    """Latency samples per server, sent in alternating batches so machine noise hits both alike."""
    samples: dict[str, list[float]] = {name: [] for name in urls}
    clients = {name: httpx.Client(timeout=10) for name in urls}
    try:
        for name, url in urls.items():  # warm-up: connection, caches, pool
            for _ in range(50):
                clients[name].get(url)
        while any(len(s) < requests for s in samples.values()):
            for name, url in urls.items():
                for _ in range(min(batch, requests - len(samples[name]))):
                    started = time.perf_counter()
                    response = clients[name].get(url)
                    samples[name].append((time.perf_counter() - started) * 1000)
                    if response.status_code != 200:
                        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
    finally:
        for client in clients.values():
            client.close()
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def serve(argv: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_URL", "TASKMASTER_"))}
    env["TASKMASTER_LOG_FORMAT"] = "json"
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    bare = median_run_seconds([sys.executable, "-c", "pass"], args.runs)
    helped = median_run_seconds([str(BIN / "taskmaster"), "--help"], args.runs)
    print(f"startup: python -c pass        {bare * 1000:8.1f} ms  (baseline)")
    print(f"startup: taskmaster --help     {helped * 1000:8.1f} ms  = {helped / bare:.2f}x baseline  (goal < 3x)")

    with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
        worker = worker_ready_seconds(Path(tmp), max(3, args.runs // 4))
    print(f"startup: taskmaster worker     {worker * 1000:8.1f} ms  = {worker / bare:.1f}x baseline  (to ready)")

    with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
        work = Path(tmp)
        (work / "baseline").mkdir()
        (work / "baseline" / "minimal_app.py").write_text(MINIMAL_APP)
        servers = {
            "baseline": [sys.executable, "-m", "uvicorn", "minimal_app:app", "--no-access-log"],
            "taskmaster": [str(BIN / "taskmaster"), "serve"],
        }
        processes, urls, startup = [], {}, {}
        try:
            for name, argv in servers.items():
                port = free_port()
                home = work / name  # each server its own state directory
                home.mkdir(exist_ok=True)
                processes.append(serve([*argv, "--port", str(port)], home, work / f"{name}.log"))
                urls[name] = f"http://127.0.0.1:{port}/health"
                startup[name] = wait_until_up(urls[name])
            samples = interleaved_latencies_ms(urls, args.requests)
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
    base50, base99 = percentile(samples["baseline"], 0.5), percentile(samples["baseline"], 0.99)
    print(f"health:  minimal ASGI app           p50 {base50:6.2f} ms  p99 {base99:6.2f} ms  (baseline)")
    p50, p99 = percentile(samples["taskmaster"], 0.5), percentile(samples["taskmaster"], 0.99)
    print(
        f"health:  taskmaster serve (SQLite)  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
        f"= {p50 / base50:.1f}x / {p99 / base99:.1f}x baseline  (goal p99 < 10 ms)"
    )
    print(f"health:  taskmaster serve answered /health {startup['taskmaster']:.2f} s after start (goal < 5 s)")


if __name__ == "__main__":
    main()
