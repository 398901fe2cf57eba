"""AgentAPI server costs, each beside a direct PTY read of the same scripted test agent in the same run.

1. last output -> `stable` (goal: the stability window + under 100 ms)
2. one screen snapshot + diff on an 80x1000 screen (goal: under 5 ms), against pyte's full `display` redraw
3. resident memory per idle session (goal: under 30 MB), server side and the agent process itself

Run: .venv/bin/python bench/agentapi.py [--window 2.0] [--rounds 5] [--sessions 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from taskmaster.agents.agentapi.conversation import Conversation, SessionConfig
from taskmaster.agents.agentapi.pty import PtyProcess
from taskmaster.agents.agentapi.screen import Terminal, diff

AGENT = Path(__file__).resolve().parent.parent / "tests" / "agentapi" / "agents" / "fake_agent.py"


def agent_argv() -> list[str]:
    return [sys.executable, str(AGENT), "--think", "0.3"]


def rss_kib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def direct_reply_time(rounds: int) -> list[float]:
    """Baseline: a bare PTY reader; seconds from Enter to the agent's last output byte of the reply."""
    times = []
    for _ in range(rounds):
        process = PtyProcess.spawn(agent_argv(), lines=1000)
        last = [time.monotonic()]

        def on_output(_data: bytes, last: list[float] = last) -> None:
            last[0] = time.monotonic()

        process.on_output = on_output
        await asyncio.sleep(0.5)
        sent = time.monotonic()
        process.write(b"\x1b[200~lines 50\x1b[201~\r")
        await asyncio.sleep(1.5)  # the reply is complete well before this
        times.append(last[0] - sent)
        await process.terminate()
    return times


async def stable_latency(window: float, rounds: int) -> list[float]:
    """Ours: seconds from the agent's last output to the `stable` status_change."""
    latencies = []
    conv = Conversation(SessionConfig(argv=agent_argv(), agent_type="claude", stability_window=window))
    last = [0.0]
    await conv.start()
    assert conv._process is not None
    feed = conv._process.on_output

    def on_output(data: bytes) -> None:
        last[0] = time.monotonic()
        feed(data)

    conv._process.on_output = on_output
    _, queue = conv.subscribe()
    try:
        for _ in range(rounds):
            while conv.status != "stable":
                await asyncio.sleep(0.01)
            while not queue.empty():
                queue.get_nowait()
            await conv.send_user("lines 50")
            while True:
                event = await queue.get()
                if event is not None and event.name == "status_change" and event.data["status"] == "stable":
                    latencies.append(time.monotonic() - last[0])
                    break
    finally:
        await conv.close()
    return latencies


def snapshot_costs(samples: int = 300) -> tuple[float, float]:
    """(ours, baseline) median ms: one changed row on a full 80x1000 screen, then snapshot + diff."""
    terminal = Terminal(80, 1000)
    terminal.feed("".join(f"{i:04d} " + "x" * 70 + "\r\n" for i in range(999)).encode())
    screen = terminal._screen
    ours, baseline = [], []
    previous = terminal.rows()
    previous_display = list(screen.display)
    for i in range(samples):
        update = f"\x1b[500;1H\x1b[K{'⠋⠙⠹⠸'[i % 4]} Thinking… {i}".encode()
        started = time.perf_counter()
        terminal.feed(update)
        rows = terminal.rows()
        changed = diff(previous, rows)
        ours.append(time.perf_counter() - started)
        assert changed == [499]
        previous = rows
        started = time.perf_counter()
        terminal.feed(update)
        display = list(screen.display)  # the naive way: redraw every row, then compare
        _ = [j for j, (a, b) in enumerate(zip(previous_display, display, strict=True)) if a != b]
        baseline.append(time.perf_counter() - started)
        previous_display = display
    return statistics.median(ours) * 1000, statistics.median(baseline) * 1000


async def memory_per_session(count: int) -> tuple[float, float, float, float]:
    """(ours RSS, direct PTY RSS, ours Python heap, agent process) MiB per idle session."""
    import gc
    import tracemalloc

    gc.collect()
    before = rss_kib()
    direct = [PtyProcess.spawn(agent_argv(), lines=1000) for _ in range(count)]
    await asyncio.sleep(1.0)
    gc.collect()
    direct_delta = (rss_kib() - before) / count / 1024
    agent_rss = statistics.mean(rss_kib(p.pid) for p in direct) / 1024
    await asyncio.gather(*(p.terminate() for p in direct))
    gc.collect()
    tracemalloc.start()
    heap_before = tracemalloc.get_traced_memory()[0]
    before = rss_kib()
    sessions = [
        Conversation(SessionConfig(argv=agent_argv(), agent_type="claude", stability_window=0.5)) for _ in range(count)
    ]
    for conv in sessions:
        await conv.start()
    while any(c.status != "stable" for c in sessions):
        await asyncio.sleep(0.05)
    gc.collect()
    ours_delta = (rss_kib() - before) / count / 1024
    heap = (tracemalloc.get_traced_memory()[0] - heap_before) / count / (1 << 20)
    tracemalloc.stop()
    await asyncio.gather(*(c.close() for c in sessions))
    return ours_delta, direct_delta, heap, agent_rss


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=10)
    args = parser.parse_args()

    mine, bare, heap, agent = await memory_per_session(args.sessions)
    direct = await direct_reply_time(args.rounds)
    latency = await stable_latency(args.window, args.rounds)
    overhead_ms = (statistics.median(latency) - args.window) * 1000
    print(f"direct PTY read: reply complete {statistics.median(direct) * 1000:.0f} ms after Enter (median)")
    print(
        f"last output -> stable: {statistics.median(latency) * 1000:.0f} ms median, max {max(latency) * 1000:.0f} ms"
        f" = window {args.window * 1000:.0f} ms + {overhead_ms:.1f} ms (goal < 100 ms)"
        f" [{'ok' if overhead_ms < 100 else 'MISSED'}]"
    )

    ours, baseline = snapshot_costs()
    print(
        f"snapshot + diff, 80x1000: {ours:.3f} ms (goal < 5 ms) [{'ok' if ours < 5 else 'MISSED'}];"
        f" pyte full redraw + diff {baseline:.3f} ms; ratio {baseline / ours:.0f}x"
    )

    server = max(mine, heap)
    print(
        f"memory per idle session ({args.sessions} sessions): server RSS +{mine:.2f} MiB, Python heap +{heap:.2f} MiB"
        f" (direct PTY read: RSS +{bare:.2f} MiB) + agent process {agent:.1f} MiB"
        f" = {server + agent:.1f} MiB (goal < 30 MB) [{'ok' if server + agent < 30 else 'MISSED'}]"
    )


if __name__ == "__main__":
    asyncio.run(main())
