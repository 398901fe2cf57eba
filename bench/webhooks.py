"""Webhook receiver throughput and acknowledgement latency, beside a bare FastAPI endpoint measured in the same run.

  POST /webhooks/github, N signed pull_request deliveries at C concurrent   vs  a bare FastAPI POST answering 202
  (`taskmaster serve --no-worker`: stored and acknowledged only)             (uvicorn, one process, no work)

Goals: nothing lost (rows = N); p99 under 50 ms on PostgreSQL; throughput at least a third of the bare endpoint's.
Run: ./dev python bench/webhooks.py [--count 2000] [--concurrency 50] [--databases sqlite,postgresql]
       [--profile DIR (server under cProfile)] [--server-env NAME=VALUE (e.g. DB_POOL_SIZE=50)]
The server remembers the project for a few seconds; `--server-env TASKMASTER_WEBHOOK_PROJECT_CACHE_SECONDS=0`
measures a lookup per delivery instead.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import free_port, percentile, wait_until_up

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = ROOT / "tests" / "forges" / "fixtures" / "webhooks" / "github" / "pull_request" / "opened.json"
PG_ADMIN = os.environ.get("TASKMASTER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REPOSITORY = "Codertocat/Hello-World"
SECRET = "It's a Secret to Everybody"
TIMED_HOOK, WARMUP_HOOK = "2000", "1000"
"""Hook ids: warm-up deliveries are stored too, so the timed ones are counted by their own hook id."""
UNLIMITED = "1000000"
"""Rate and burst for both token buckets: the bench measures the receiver, not the limiter refusing it."""

BARE_APP = """
import sys

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/webhooks/github")
async def receive(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "received"}, status_code=202)


@app.get("/health")
async def health() -> JSONResponse:
    return JSONResponse({"status": "ok"})


if __name__ == "__main__":
    # The same uvicorn arguments `taskmaster serve` passes.
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False, server_header=False)
"""


# -------------------------------------------------------------------------------- the client (its own process)


def deliveries(count: int, hook_id: str, first_number: int) -> list[tuple[bytes, dict[str, str]]]:
    """Bodies and headers, each body its own (the PR number varies) with a real HMAC and a unique delivery id."""
    payload = json.loads(PAYLOAD.read_bytes())
    prepared = []
    for n in range(first_number, first_number + count):
        payload["number"] = payload["pull_request"]["number"] = n
        body = json.dumps(payload).encode()
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-GitHub-Hook-ID": hook_id,
            "X-Hub-Signature-256": f"sha256={digest}",
            "User-Agent": "GitHub-Hookshot/bench",
        }
        prepared.append((body, headers))
    return prepared


async def fire_all(
    clients: list[httpx.AsyncClient], url: str, batch: list[tuple[bytes, dict[str, str]]]
) -> tuple[list[float], Counter[str], float]:
    """Send every delivery from one loop per client, sharing one queue; latencies (ms), statuses, wall seconds."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    pending = iter(batch)

    async def loop(http: httpx.AsyncClient) -> None:
        for body, headers in pending:
            started = time.perf_counter()
            try:
                response = await http.post(url, content=body, headers=headers)
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(http) for http in clients))
    return latencies, statuses, time.perf_counter() - started


async def fire(url: str, count: int, concurrency: int, warmup: int) -> dict[str, Any]:
    """The `--fire` mode: warm the connections up, then time `count` deliveries. Everything is prepared beforehand.

    C clients of one keep-alive connection each, not one client with a pool of C: httpcore's pool scans every
    connection on each request and release (encode/httpcore#1035), which cost ~6 ms of client CPU per request at
    C=50 and made the client, not the server, the bottleneck.
    """
    warm = deliveries(warmup, WARMUP_HOOK, first_number=1_000_000)
    timed = deliveries(count, TIMED_HOOK, first_number=1)
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with AsyncExitStack() as stack:
        # verify=False: plain HTTP on loopback, and it spares each client loading the CA bundle.
        clients = [httpx.AsyncClient(limits=one, timeout=120, verify=False) for _ in range(concurrency)]
        for http in clients:
            await stack.enter_async_context(http)
        _, warm_statuses, _ = await fire_all(clients, url, warm)
        cpu = time.process_time()
        latencies, statuses, seconds = await fire_all(clients, url, timed)
        cpu = time.process_time() - cpu
    return {
        "latencies_ms": latencies,
        "statuses": dict(statuses),
        "warmup_statuses": dict(warm_statuses),
        "seconds": seconds,
        "client_cpu_seconds": cpu,
    }


# -------------------------------------------------------------------------------- servers and measuring


@dataclass
class Stored:
    """What the database holds after a run, and how many sessions the server opened on PostgreSQL."""

    timed: int
    total: int
    sessions: int | None


@dataclass
class Run:
    """One target's figures."""

    label: str
    count: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[str, int]
    warmup_statuses: dict[str, int]
    client_cpu_seconds: float
    server_cpu_seconds: float | None

    @property
    def accepted(self) -> int:
        return self.statuses.get("202", 0)

    @property
    def per_second(self) -> float:
        return self.accepted / self.seconds

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 0.99)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU the process has used (Linux /proc), to show where the machine's time went."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_target(label: str, url: str, server: subprocess.Popen[bytes], args: argparse.Namespace) -> Run:
    """Fire at `url` from a separate process running this file with `--fire`."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--fire", url]
    argv += ["--count", str(args.count), "--concurrency", str(args.concurrency), "--warmup", str(args.warmup)]
    # The server's CPU is read around the whole client run: warm-up included, a small over-count.
    before = cpu_seconds(server.pid)
    done = subprocess.run(argv, capture_output=True, check=False)
    after = cpu_seconds(server.pid)
    if done.returncode != 0:
        raise RuntimeError(f"the client failed:\n{done.stderr.decode()[-3000:]}")
    result = json.loads(done.stdout)
    return Run(
        label=label,
        count=args.count,
        seconds=result["seconds"],
        latencies_ms=result["latencies_ms"],
        statuses=result["statuses"],
        warmup_statuses=result["warmup_statuses"],
        client_cpu_seconds=result["client_cpu_seconds"],
        server_cpu_seconds=None if before is None or after is None else after - before,
    )


def start(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT: uvicorn shuts down cleanly on it, and cProfile (when profiling) writes its file on the way out."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Until `url` answers 200; a server that exits first fails at once, with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            wait_until_up(url, timeout=1)
            return
        except TimeoutError:
            continue
    raise RuntimeError(f"{url} did not come up:\n{log.read_text()[-3000:]}")


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_URL", "TASKMASTER_"))}
    env["TASKMASTER_LOG_FORMAT"] = "json"
    return env


def taskmaster_env(home: Path, database_url: str | None, extra: list[str]) -> dict[str, str]:
    """The server's environment: its own home and database, limits out of the way, then `--server-env` pairs."""
    env = base_env()
    env["TASKMASTER_HOME"] = str(home)
    for name in ("SOURCE_RATE", "SOURCE_BURST", "PROJECT_RATE", "PROJECT_BURST"):
        env[f"TASKMASTER_WEBHOOK_{name}"] = UNLIMITED
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    for pair in extra:
        name, _, value = pair.partition("=")
        env[name] = value
    return env


async def prepare(environ: dict[str, str]) -> None:
    """Migrate and create the GitHub project with its webhook secret, through the services, before serving."""
    from taskmaster.config import load_settings
    from taskmaster.db import migrate
    from taskmaster.db.session import Database
    from taskmaster.projects import service as projects
    from taskmaster.projects.schemas import ProjectCreate
    from taskmaster.secrets import SecretBox

    settings = load_settings(environ)
    db = Database.from_settings(settings)
    try:
        await migrate.upgrade(db)
        async with db.transaction() as session:
            spec = ProjectCreate(name="hello-world", repository=REPOSITORY, forge="github", webhook_secret=SECRET)
            await projects.create_project(session, spec=spec, box=SecretBox.from_settings(settings))
    finally:
        await db.dispose()


async def persisted(environ: dict[str, str]) -> tuple[int, int]:
    """Rows stored for the timed deliveries, and rows in all."""
    from sqlalchemy import func, select

    from taskmaster.config import load_settings
    from taskmaster.db.models import WebhookDelivery
    from taskmaster.db.session import Database

    db = Database.from_settings(load_settings(environ))
    try:
        async with db.session() as session:
            count = select(func.count()).select_from(WebhookDelivery)
            timed = await session.scalar(count.where(WebhookDelivery.hook_id == TIMED_HOOK))
            total = await session.scalar(count)
            return int(timed or 0), int(total or 0)
    finally:
        await db.dispose()


def create_pg_database() -> tuple[str, str]:
    import psycopg

    name = f"tm_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_sessions(name: str) -> int:
    """Sessions PostgreSQL has counted on database `name` (14+): shows a pool that opens and closes connections."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def server_argv(port: int, profile: Path | None) -> list[str]:
    serve = ["serve", "--no-worker", "--port", str(port)]
    if profile is None:
        return [str(BIN / "taskmaster"), *serve]
    return [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "taskmaster", *serve]


def measure_database(
    database: str, args: argparse.Namespace, work: Path, bare_url: str, bare: subprocess.Popen[bytes]
) -> tuple[Run, Run, Stored]:
    """The bare endpoint, then `taskmaster serve` on `database`; both fired at while the other sits idle."""
    home = work / database
    home.mkdir()
    pg_name, database_url = create_pg_database() if database == "postgresql" else (None, None)
    try:
        environ = {"TASKMASTER_HOME": str(home)}
        if database_url is not None:
            environ["DATABASE_URL"] = database_url
        asyncio.run(prepare(environ))
        port = free_port()
        profile = args.profile / f"{database}.prof" if args.profile else None
        log = home / "serve.log"
        sessions_before = pg_sessions(pg_name) if pg_name is not None else 0
        server = start(server_argv(port, profile), home, taskmaster_env(home, database_url, args.server_env), log)
        try:
            wait_for(f"http://127.0.0.1:{port}/health", server, log)
            baseline = measure_target("bare FastAPI endpoint", bare_url, bare, args)
            url = f"http://127.0.0.1:{port}/webhooks/github"
            ours = measure_target(f"{database} taskmaster serve", url, server, args)
        finally:
            stop(server)
        if ours.statuses.keys() - {"202"}:
            # A refusal's problem+json detail is in the access log only as a status; the reason is worth showing.
            print(f"{database}: non-202 answers; the server log ends with:\n{log.read_text()[-2000:]}")
        sessions = None
        if pg_name is not None:
            time.sleep(0.5)  # backends count their session as they exit, just after the server has gone
            sessions = pg_sessions(pg_name) - sessions_before
        timed, total = asyncio.run(persisted(environ))
        if profile is not None:
            print_profile(profile)
        return baseline, ours, Stored(timed, total, sessions)
    finally:
        if pg_name is not None:
            drop_pg_database(pg_name)


def print_profile(path: Path) -> None:
    import pstats

    print(f"\n---- cProfile of the server: {path} (top by own time, then by cumulative time) ----")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def goal(met: bool) -> str:
    return "met" if met else "MISSED"


def line(run: Run) -> str:
    statuses = ", ".join(f"{status} x{n}" for status, n in sorted(run.statuses.items()))
    return (
        f"{run.label:<28} {run.count} in {run.seconds:6.2f} s  {run.per_second:7.0f} accepted/s  "
        f"p50 {run.p50:7.2f} ms  p99 {run.p99:7.2f} ms  statuses {statuses}"
    )


def cpu_line(run: Run) -> str:
    server = "n/a" if run.server_cpu_seconds is None else f"{run.server_cpu_seconds * 1000 / run.count:.2f}"
    client = run.client_cpu_seconds * 1000 / run.count
    return f"{run.label:<28} CPU per request: server {server} ms (warm-up included), client {client:.2f} ms"


def report(database: str, bare: Run, ours: Run, stored: Stored, args: argparse.Namespace) -> None:
    ratio = ours.per_second / bare.per_second if bare.per_second else 0.0
    all_accepted = ours.statuses == {"202": args.count}
    print(line(bare) + "  (baseline)")
    print(line(ours) + f"  = {ratio:.2f}x the bare endpoint (goal >= 0.33x: {goal(ratio >= 1 / 3)})")
    print(
        f"{database + ' persisted':<28} {stored.timed} of {args.count} timed deliveries "
        f"({stored.total} rows with the warm-up); all 202: {goal(all_accepted)}; "
        f"nothing lost: {goal(stored.timed == args.count and all_accepted)}"
    )
    if database == "postgresql":
        # Little's law: with C requests always in flight, mean latency = C / throughput, whatever the server.
        print(
            f"{database + ' p99':<28} {ours.p99:.2f} ms (goal < 50 ms: {goal(ours.p99 < 50)}); with "
            f"{args.concurrency} in flight latency is about {args.concurrency} / throughput: the bare endpoint's "
            f"own p99 here is {bare.p99:.2f} ms"
        )
    if stored.sessions is not None:
        print(f"{database + ' sessions':<28} {stored.sessions} database sessions opened by the server")
    print(cpu_line(bare))
    print(cpu_line(ours))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000, help="timed deliveries per target")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight (and pooled connections)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed deliveries first, to fill the pool")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--profile", type=Path, help="run the server under cProfile; write DIR/<database>.prof")
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE", help="extra environment for the server"
    )
    parser.add_argument("--fire", metavar="URL", help=argparse.SUPPRESS)  # the client process
    args = parser.parse_args()
    if unknown := set(args.databases.split(",")) - {"sqlite", "postgresql"}:
        parser.error(f"--databases: unknown {', '.join(sorted(unknown))} (sqlite, postgresql)")
    if args.fire:
        import uvloop  # as uvicorn uses on both servers; the client's per-request CPU is what limits the baseline

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            print(json.dumps(runner.run(fire(args.fire, args.count, args.concurrency, args.warmup))))
        return
    # SIGTERM unwinds like Ctrl-C, so that the cleanup below (servers, database, temp dir) still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        args.profile = args.profile.resolve()

    work = Path(tempfile.mkdtemp(prefix="tm-bench-webhooks-"))
    bare: subprocess.Popen[bytes] | None = None
    try:
        (work / "bare").mkdir()
        (work / "bare" / "bare_app.py").write_text(BARE_APP)
        port = free_port()
        log = work / "bare" / "serve.log"
        bare = start([sys.executable, "bare_app.py", str(port)], work / "bare", base_env(), log)
        wait_for(f"http://127.0.0.1:{port}/health", bare, log)
        print(
            f"{args.count} signed pull_request deliveries ({PAYLOAD.stat().st_size // 1024} KiB each), "
            f"{args.concurrency} concurrent over HTTP/1.1 keep-alive, after {args.warmup} untimed; "
            f"client in its own process; {os.cpu_count()} CPUs shared by client, server and database."
        )
        print(
            "taskmaster serve --no-worker: deliveries are verified, stored and acknowledged; no worker processes "
            "them, so processing does not compete. Rate limits raised out of the way. JSON logs to a file."
            + (" PROFILED: cProfile slows the server." if args.profile else "")
            + (f" Server environment: {' '.join(args.server_env)}." if args.server_env else "")
        )
        print()
        bare_url = f"http://127.0.0.1:{port}/webhooks/github"
        for database in args.databases.split(","):
            baseline, ours, stored = measure_database(database, args, work, bare_url, bare)
            report(database, baseline, ours, stored, args)
    finally:
        if bare is not None:
            stop(bare)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
