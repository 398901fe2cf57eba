"""Dependency-graph algorithms at 1k/10k/100k tasks, each as a ratio against a baseline measured in the same run.

  baseline     building the plain adjacency dict of the same graph (`core.graph.adjacency`): one pass, no analysis
  realistic    projects of 10..3000 tasks (chains, trees, diamonds, mixed), UUID ids, with injected faults (self,
               missing, duplicate edges and three loops) for validate/fix; counts/critical/topo on the clean graph
  chain        one chain of N tasks, the deepest graph (recursion would fail) and the largest single bitset
  wide         N/2 tasks in a chain, each with its own dependency that the chain's end also needs: the most
               bitsets alive at once, so `transitive_dependents_counts` must split its work into blocks
Goal (issue 3): validate on 100k tasks under 2 s. Peak memory is the growth of the process's RSS during one call.

Run: ./dev python bench/graph.py [--sizes 1000,10000,100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import random
import resource
import statistics
import time
import uuid
from collections.abc import Callable, Hashable
from typing import Any

from taskmaster.core import graph

Edges = list[tuple[Hashable, Hashable]]


def realistic(n: int, seed: int = 7) -> tuple[list[Hashable], Edges]:
    """Projects of 10..3000 tasks; a task depends on 0-3 earlier tasks of its project, mostly nearby ones."""
    rng = random.Random(seed)
    nodes: list[Hashable] = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(n)]
    edges: Edges = []
    start = 0
    while start < n:
        size = min(n - start, int(10 ** rng.uniform(1, 3.5)))
        shape = rng.choice(["chain", "tree", "diamond", "mixed"])
        for i in range(start + 1, start + size):
            if shape == "chain":
                picks = [i - 1]
            elif shape == "tree":
                picks = [rng.randrange(start, i)]
            elif shape == "diamond":
                picks = [max(start, i - 1 - (i % 3)), max(start, i - 2)]
            else:
                picks = [rng.randrange(max(start, i - 40), i) for _ in range(rng.randint(0, 3))]
            edges.extend((nodes[i], nodes[p]) for p in dict.fromkeys(picks))
        start += size
    return nodes, edges


def with_faults(nodes: list[Hashable], edges: Edges, seed: int = 11) -> tuple[list[Hashable], Edges]:
    """Three each of self, missing and duplicate edges, and loops of 2, 3 and 50 new tasks."""
    rng = random.Random(seed)
    nodes, faulty = list(nodes), list(edges)
    faulty += [(node, node) for node in rng.sample(nodes, 3)]
    faulty += [(node, uuid.UUID(int=rng.getrandbits(128))) for node in rng.sample(nodes, 3)]
    faulty += rng.sample(edges, 3)
    for length in (2, 3, 50):
        loop = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(length)]
        nodes.extend(loop)
        faulty += [(loop[k], loop[(k + 1) % length]) for k in range(length)]
    return nodes, faulty


def chain(n: int) -> tuple[list[Hashable], Edges]:
    nodes: list[Hashable] = [uuid.UUID(int=k) for k in range(n)]
    return nodes, list(zip(nodes[1:], nodes, strict=False))


def wide(n: int) -> tuple[list[Hashable], Edges]:
    half = n // 2
    xs: list[Hashable] = [uuid.UUID(int=k) for k in range(half)]
    ys: list[Hashable] = [uuid.UUID(int=half + k) for k in range(half)]
    edges: Edges = list(itertools.pairwise(xs))
    edges += list(zip(xs, ys, strict=True)) + [(xs[-1], y) for y in ys[:-1]]
    return xs + ys, edges


def seconds(runs: int, fn: Callable[..., Any], *args: Any) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn(*args)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _peak_child(fn: Callable[..., Any], args: tuple[Any, ...], out: Any) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn(*args)
    out.send((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)


def peak_mib(fn: Callable[..., Any], *args: Any) -> float:
    """RSS growth during one call, in a forked child so that earlier peaks do not hide it."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_peak_child, args=(fn, args, sender))
    child.start()
    grown: float = receiver.recv()
    child.join()
    return grown


def report(name: str, took: float, baseline: float, note: str = "") -> None:
    print(f"  {name:<36} {took * 1000:9.1f} ms  {took / baseline:7.1f}x baseline  {note}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    runs = args.runs

    for n in sizes:
        nodes, edges = realistic(n)
        faulty_nodes, faulty = with_faults(nodes, edges)
        base = seconds(runs, graph.adjacency, faulty_nodes, faulty)
        problems = len(graph.validate(faulty_nodes, faulty))
        removed = len(graph.fix(faulty_nodes, faulty).removed)
        print(f"realistic: {n} tasks, {len(faulty)} edges")
        report("baseline: adjacency dict", base, base)
        goal = "goal < 2 s" if n >= 100_000 else ""
        report(f"validate ({problems} problems)", seconds(runs, graph.validate, faulty_nodes, faulty), base, goal)
        report(f"fix ({removed} edges removed)", seconds(runs, graph.fix, faulty_nodes, faulty), base)
        for fn in (graph.transitive_dependents_counts, graph.critical_path_lengths, graph.topological_order):
            report(fn.__name__, seconds(runs, fn, nodes, edges), base)

    n = max(sizes)
    nodes, edges = chain(n)
    base = seconds(runs, graph.adjacency, nodes, edges)
    print(f"chain: {n} tasks, {len(edges)} edges")
    report("baseline: adjacency dict", base, base)
    report("validate", seconds(runs, graph.validate, nodes, edges), base)
    counts = graph.transitive_dependents_counts
    report(
        counts.__name__, seconds(runs, counts, nodes, edges), base, f"peak +{peak_mib(counts, nodes, edges):.0f} MiB"
    )
    closed = [*edges, (nodes[0], nodes[-1])]
    report("fix (chain closed into one loop)", seconds(runs, graph.fix, nodes, closed), base)

    nodes, edges = wide(n)
    base = seconds(runs, graph.adjacency, nodes, edges)
    print(f"wide: {n} tasks, {len(edges)} edges")
    report("baseline: adjacency dict", base, base)
    report(counts.__name__, seconds(1, counts, nodes, edges), base, f"peak +{peak_mib(counts, nodes, edges):.0f} MiB")


if __name__ == "__main__":
    main()
