"""Dependency-graph algorithms: cycle checks, validation, repair, ordering and "work unblocked" ranking.

Nodes are any hashable ids; an edge ``(a, b)`` means "a depends on b" (b comes first). Everything is iterative.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from taskmaster.core.errors import InvalidInput

N = TypeVar("N", bound=Hashable)
ProblemKind = Literal["self", "missing", "duplicate", "cycle"]
Label = Callable[[Any], str]

# Ceiling on the bitsets `transitive_dependents_counts` keeps alive at once (at most one per node).
_BITSET_BUDGET_BYTES = 32 << 20
_MIN_BLOCK_BITS = 256
# Dependency lists up to this long are sorted with list.sort (a few compares per item); longer ones by counting.
_SORT_IN_PLACE = 64


class GraphError(InvalidInput):
    """The graph cannot be worked on as given: an edge names an unknown node, or dependencies go round in a loop."""

    code = "invalid_dependency_graph"
    title = "Invalid dependency graph"


class CycleError(GraphError):
    """Dependencies are circular; `cycle` is one concrete loop, first node repeated at the end."""

    code = "dependency_cycle"
    title = "Circular dependency"

    def __init__(self, cycle: Sequence[Hashable], label: Label = str) -> None:
        names = [label(node) for node in cycle]
        super().__init__(f"circular dependency: {' -> '.join(names)}", cycle=names)
        self.cycle = tuple(cycle)


@dataclass(frozen=True, slots=True)
class GraphProblem(Generic[N]):
    """One thing `validate` found. `edge` is set for self/missing/duplicate, `cycle` (closed) for self/cycle."""

    kind: ProblemKind
    node: N
    message: str
    edge: tuple[N, N] | None = None
    cycle: tuple[N, ...] | None = None


@dataclass(frozen=True, slots=True)
class Removal(Generic[N]):
    """One edge occurrence `fix` drops, why, and for a cycle the loop it would close if it stayed."""

    edge: tuple[N, N]
    kind: ProblemKind
    message: str
    cycle: tuple[N, ...] | None = None


@dataclass(frozen=True, slots=True)
class FixResult(Generic[N]):
    """`removed` has one entry per dropped edge occurrence; `kept` holds every other edge once, in input order."""

    removed: tuple[Removal[N], ...]
    kept: tuple[tuple[N, N], ...]


def format_cycle(cycle: Iterable[Any], label: Label = str) -> str:
    """``a -> b -> c -> a`` for a closed cycle."""
    return " -> ".join(label(node) for node in cycle)


def adjacency(nodes: Iterable[N], edges: Iterable[tuple[N, N]]) -> dict[N, list[N]]:
    """Each node's dependencies, in edge order, for `find_path`/`cycle_if_added`. O(V + E)."""
    deps: dict[N, list[N]] = {node: [] for node in nodes}
    for a, b in edges:
        deps.setdefault(a, []).append(b)
    return deps


def find_path(adjacency: Mapping[N, Iterable[N]], start: N, goal: N) -> list[N] | None:
    """A shortest path ``[start, ..., goal]`` following dependencies, or None when `goal` is not reachable.

    Breadth-first, O(V + E) over the part of the graph reachable from `start`; nodes absent from the mapping have
    no dependencies. ``find_path(adj, start, start) == [start]``.
    """
    if start == goal:
        return [start]
    parent: dict[N, N] = {start: start}
    queue = [start]
    for node in queue:  # the list grows while it is read: a queue without deque's per-item cost
        for nxt in adjacency.get(node, ()):
            if nxt in parent:
                continue
            parent[nxt] = node
            if nxt == goal:
                path = [nxt]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                path.reverse()
                return path
            queue.append(nxt)
    return None


def cycle_if_added(adjacency: Mapping[N, Iterable[N]], dependent: N, dependency: N) -> list[N] | None:
    """The loop ``[dependent, dependency, ..., dependent]`` that a new edge would close, or None if it is safe.

    A new edge a -> b closes a loop exactly when b already reaches a, so one `find_path` answers it: O(V + E).
    A self-dependency gives ``[a, a]``.
    """
    back = find_path(adjacency, dependency, dependent)
    return None if back is None else [dependent, *back]


def validate(nodes: Iterable[N], edges: Iterable[tuple[N, N]], *, label: Label = str) -> list[GraphProblem[N]]:
    """Every self-dependency, dependency on a missing node, duplicated edge and circular dependency.

    Problems come grouped by kind (self, missing, duplicate, cycle), then in node order (nodes as given, unknown
    ones in order of first mention); the result does not depend on the order of `edges`. An edge between unknown
    nodes counts once, as missing. Each strongly connected component of two or more nodes gives one "cycle"
    problem whose `node` is its first node and whose `cycle` is a shortest loop through that node. A duplicated
    self or missing edge is reported once, under its own kind. `label` renders a node in messages.
    O(V + E) time and memory; never raises.
    """
    graph = _index(nodes, edges)
    ids = graph.ids
    problems: list[GraphProblem[N]] = []
    for s, _, _ in graph.selfs:
        node = ids[s]
        problems.append(
            GraphProblem("self", node, f"{label(node)} depends on itself", edge=(node, node), cycle=(node, node))
        )
    for s, t, _ in graph.missing:
        a, b = ids[s], ids[t]
        problems.append(
            GraphProblem("missing", b if t >= graph.known else a, _missing_message(graph, s, t, label), (a, b))
        )
    for s, t, count in graph.duplicates:
        a, b = ids[s], ids[t]
        problems.append(GraphProblem("duplicate", a, f"{label(a)} depends on {label(b)} {count} times", edge=(a, b)))
    comps = _strong_components(graph.deps)
    for group in sorted(comps.tangles.values()):  # by first node: members are ascending and disjoint
        cycle = tuple(ids[x] for x in _shortest_cycle(group[0], graph.deps, comps.of))
        message = f"circular dependency: {format_cycle(cycle, label)}"
        if len(group) > len(cycle) - 1:
            message += f" ({len(group)} nodes depend on each other through this and other loops)"
        problems.append(GraphProblem("cycle", cycle[0], message, cycle=cycle))
    return problems


def fix(nodes: Iterable[N], edges: Iterable[tuple[N, N]], *, label: Label = str) -> FixResult[N]:
    """The edges to drop so that what is left has no self, missing or duplicate edge and no cycle.

    Every self and missing edge goes, and every copy of an edge after its first. Cycles are broken per strongly
    connected component with the Eades–Lin–Smyth greedy order (O(V + E)): edges pointing backwards in that order
    are candidates, and each candidate is put back when that closes no loop, so every edge removed for a cycle
    would close one if it alone were restored (the removal is minimal; minimum is NP-hard). A simple cycle costs
    exactly one edge. Ties in the greedy order go to the node given last, so with nodes listed oldest first the
    edge dropped from a loop tends to be the one pointing from an older node to a newer one.

    Time: O(V + E) for the faults and the greedy order, plus one breadth-first search per candidate, bounded by
    the candidate's component (so O(k * (V_c + E_c)) in the worst case for k candidates in one component of
    V_c nodes and E_c edges; realistic graphs have few, small cycles). Deterministic; removals come grouped by
    kind, cycle removals per component in `validate`'s order. Never raises.
    """
    edge_list = list(edges)
    graph = _index(nodes, edge_list)
    ids = graph.ids
    removed: list[Removal[N]] = []
    for s, _, count in graph.selfs:
        node = ids[s]
        removal = Removal((node, node), "self", f"{label(node)} depends on itself", (node, node))
        removed.extend([removal] * count)
    for s, t, count in graph.missing:
        removed.extend([Removal((ids[s], ids[t]), "missing", _missing_message(graph, s, t, label))] * count)
    for s, t, count in graph.duplicates:
        a, b = ids[s], ids[t]
        message = f"{label(a)} depends on {label(b)} more than once: removed a duplicate"
        removed.extend([Removal((a, b), "duplicate", message)] * (count - 1))

    comps = _strong_components(graph.deps)
    cut: set[tuple[int, int]] = set()
    for group in sorted(comps.tangles.values()):
        for s, t, loop in _break_cycles(group, graph.deps, comps.of):
            cut.add((s, t))
            a, b = ids[s], ids[t]
            cycle = tuple(ids[x] for x in loop)
            message = f"{label(a)} depends on {label(b)}: removed to break {format_cycle(cycle, label)}"
            removed.append(Removal((a, b), "cycle", message, cycle))

    kept: list[tuple[N, N]] = []
    seen: set[tuple[int, int]] = set()
    known = graph.known
    for edge, s, t in zip(edge_list, graph.sources, graph.targets, strict=True):
        key = (s, t)
        if s == t or s >= known or t >= known or key in seen or key in cut:
            continue
        seen.add(key)
        kept.append(edge)
    return FixResult(tuple(removed), tuple(kept))


def topological_order(nodes: Iterable[N], edges: Iterable[tuple[N, N]], *, label: Label = str) -> list[N]:
    """Every node once, each after all of its dependencies.

    Depth-first in the given order, so nodes already in a valid order come back unchanged. Duplicate edges are
    harmless. O(V + E).
    Raises `GraphError` for an edge naming a node not in `nodes`, `CycleError` (naming one loop) for circular
    dependencies, self-dependencies included.
    """
    graph = _index(nodes, edges)
    ids = graph.ids
    if graph.missing:
        s, t, _ = graph.missing[0]
        raise GraphError(_missing_message(graph, s, t, label), edge=[label(ids[s]), label(ids[t])])
    if graph.selfs:
        node = ids[graph.selfs[0][0]]
        raise CycleError((node, node), label)
    deps = graph.deps
    state = [0] * graph.known  # 0 unseen, 1 on the current path, 2 placed
    cursor = [0] * graph.known
    order: list[N] = []
    for root in range(graph.known):
        if state[root]:
            continue
        path = [root]
        state[root] = 1
        while path:
            v = path[-1]
            targets = deps[v]
            i = cursor[v]
            while i < len(targets) and state[targets[i]] == 2:
                i += 1
            cursor[v] = i + 1
            if i == len(targets):
                path.pop()
                state[v] = 2
                order.append(ids[v])
                continue
            w = targets[i]
            if state[w] == 1:
                loop = path[path.index(w) :]
                raise CycleError([ids[x] for x in (*loop, w)], label)
            state[w] = 1
            path.append(w)
    return order


def transitive_dependents_counts(
    nodes: Iterable[N], edges: Iterable[tuple[N, N]], *, block_bits: int | None = None
) -> dict[N, int]:
    """For each node, how many distinct other nodes depend on it, directly or through others. Exact.

    Self, missing and duplicate edges are ignored; the nodes of one cycle all count each other. Strongly connected
    components are condensed, then each weakly connected component (V_w nodes, E_w edges) is walked dependents
    first with one Python int per component as the bitset of the nodes that reach it, freed once passed on; a
    component with a single dependent takes its count from that one (chains, tree branches). If the bitsets alive
    at once (W of them, measured first, each up to V_w bits) could exceed 32 MiB, the walk repeats over blocks of
    B = 2**28 / W target bits, each pass starting at its block since no earlier node reaches into it
    (`block_bits` forces B, for tests).

    Time: O(V + E) steps plus O(E_w * V_w / 64) machine words of bitset work per weakly connected component and
    pass; one pass when V_w * W <= 2**28, which trees, diamonds and chains meet even at 100,000 nodes. The worst
    case, W near V_w, takes V_w**2 / 2**28 passes (37 at 100,000 nodes) over half the component on average.
    Memory: O(V + E) plus at most 32 MiB of live bitsets. Never raises.
    """
    graph = _index(nodes, edges)
    deps = graph.deps
    comps = _strong_components(deps)
    comp, tangles = comps.of, comps.tangles
    ncomp = len(comps.first)
    size = [1] * ncomp
    for c, group in tangles.items():
        size[c] = len(group)

    # Weakly connected components, by union-find with path halving over the edges.
    root = list(range(graph.known))
    for v, targets in enumerate(deps):
        for w in targets:
            x, y = v, w
            while root[x] != x:
                root[x] = x = root[root[x]]
            while root[y] != y:
                root[y] = y = root[root[y]]
            if x != y:
                root[max(x, y)] = min(x, y)
    groups: dict[int, list[int]] = {}
    for c in range(ncomp - 1, -1, -1):  # components are numbered dependencies-first: walk dependents-first
        x = comps.first[c]
        while root[x] != x:
            x = root[x]
        groups.setdefault(x, []).append(c)

    found = [0] * ncomp
    slot = [0] * ncomp
    for group in groups.values():
        if len(group) == 1:
            continue
        for j, c in enumerate(group):
            slot[c] = j
        local_deps = [
            [slot[comp[w]] for w in deps[comps.first[c]]] if size[c] == 1 else _tangle_deps(c, comps, deps, slot)
            for c in group
        ]
        sizes = [size[c] for c in group]
        starts = [0] * len(group)
        for j in range(1, len(group)):
            starts[j] = starts[j - 1] + sizes[j - 1]
        total = starts[-1] + sizes[-1]
        # A component with exactly one dependent component p is reached by p and by what reaches p, and by nothing
        # else: its count is count(p) + size(p), no bitset count needed. This covers chains and tree branches.
        single = [-1] * len(group)  # -1: none yet, -2: several, else the one dependent
        for j, targets in enumerate(local_deps):
            for d in targets:
                single[d] = j if single[d] == -1 else -2
        block = block_bits or total
        if block_bits is None and total * total > _BITSET_BUDGET_BYTES * 8:
            block = max(_MIN_BLOCK_BITS, min(total, _BITSET_BUDGET_BYTES * 8 // _alive_at_once(local_deps)))
        counted = [0] * len(group)
        first = 0
        for lo in range(0, total, block):
            while starts[first] + sizes[first] <= lo:
                first += 1
            _count_block(local_deps, single, starts, sizes, lo, lo + block, first, counted)
        for j, c in enumerate(group):
            p = single[j]
            if p >= 0:
                counted[j] = counted[p] + sizes[p]
            found[c] = counted[j]
    ids = graph.ids
    return {ids[v]: found[comp[v]] + size[comp[v]] - 1 for v in range(graph.known)}


def critical_path_lengths(nodes: Iterable[N], edges: Iterable[tuple[N, N]]) -> dict[N, int]:
    """For each node, the number of edges on the longest chain of dependents waiting on it (0 when none).

    A cheap O(V + E) alternative to `transitive_dependents_counts`. Self, missing and duplicate edges are ignored;
    a cycle counts as a single step. Never raises.
    """
    graph = _index(nodes, edges)
    deps = graph.deps
    comps = _strong_components(deps)
    comp = comps.of
    length = [0] * len(comps.first)
    for c in range(len(comps.first) - 1, -1, -1):
        step = length[c] + 1
        for v in comps.tangles.get(c, (comps.first[c],)):
            for w in deps[v]:
                d = comp[w]
                if d != c and length[d] < step:
                    length[d] = step
    return {graph.ids[v]: length[comp[v]] for v in range(graph.known)}


# --- internals: nodes become ints 0..V-1 in the order given, unknown nodes follow in order of first mention ---


@dataclass(slots=True)
class _Indexed(Generic[N]):
    ids: list[N]
    index: dict[N, int]
    known: int
    deps: list[list[int]]  # per known node: distinct known dependencies, ascending, no self-edges
    selfs: list[tuple[int, int, int]]  # (s, t, occurrences), ascending
    missing: list[tuple[int, int, int]]
    duplicates: list[tuple[int, int, int]]
    sources: list[int]  # per edge as given: its source's number
    targets: list[int]


def _index(nodes: Iterable[N], edges: Iterable[tuple[N, N]]) -> _Indexed[N]:
    """Number the nodes, and sort the edges into clean dependency lists and faults."""
    ids = list(nodes)
    index = dict(zip(ids, range(len(ids)), strict=True))
    if len(index) < len(ids):  # a node listed twice keeps its first place
        ids = list(dict.fromkeys(ids))
        index = dict(zip(ids, range(len(ids)), strict=True))
    known = len(ids)
    edge_list = edges if isinstance(edges, list) else list(edges)
    try:
        # When every node is known (the common case) the lookups run in C: hashing ids is most of the cost here.
        sources = list(map(index.__getitem__, [a for a, _ in edge_list]))
        targets = list(map(index.__getitem__, [b for _, b in edge_list]))
    except KeyError:
        sources, targets = [], []
        for a, b in edge_list:
            for node, numbers in ((a, sources), (b, targets)):
                i = index.setdefault(node, len(ids))
                if i == len(ids):
                    ids.append(node)
                numbers.append(i)
    targets_of: list[list[int]] = [[] for _ in range(len(ids))]
    for s, t in zip(sources, targets, strict=True):
        targets_of[s].append(t)
    # Sorted dependency lists make every result depend on the node order only, not on the order edges arrive in,
    # and put copies side by side. Short lists (all of them, in practice) are sorted in place in O(d); longer ones
    # by one counting sort over all targets, which keeps the whole O(V + E).
    long_lists = [s for s, numbers in enumerate(targets_of) if len(numbers) > _SORT_IN_PLACE]
    if long_lists:
        sources_of: list[list[int]] = [[] for _ in range(len(ids))]
        for s in long_lists:
            for t in targets_of[s]:
                sources_of[t].append(s)
            targets_of[s] = []
        for t, numbers in enumerate(sources_of):
            for s in numbers:
                targets_of[s].append(t)

    deps = targets_of[:known]  # most lists are clean already, and are shared rather than copied
    selfs: list[tuple[int, int, int]] = []
    missing: list[tuple[int, int, int]] = []
    duplicates: list[tuple[int, int, int]] = []
    for s, numbers in enumerate(targets_of):
        if not numbers:
            continue
        if 1 < len(numbers) <= _SORT_IN_PLACE:
            numbers.sort()
        if s < known and numbers[-1] < known and s not in numbers and len(set(numbers)) == len(numbers):
            continue
        clean: list[int] = []
        if s < known:
            deps[s] = clean
        i, end = 0, len(numbers)
        while i < end:
            t = numbers[i]
            j = i + 1
            while j < end and numbers[j] == t:
                j += 1
            count, i = j - i, j
            if s >= known or t >= known:
                missing.append((s, t, count))
            elif s == t:
                selfs.append((s, t, count))
            else:
                clean.append(t)
                if count > 1:
                    duplicates.append((s, t, count))
    return _Indexed(ids, index, known, deps, selfs, missing, duplicates, sources, targets)


def _missing_message(graph: _Indexed[Any], s: int, t: int, label: Label) -> str:
    a, b = label(graph.ids[s]), label(graph.ids[t])
    if s >= graph.known and t >= graph.known:
        return f"{a} depends on {b}, and neither exists"
    if s >= graph.known:
        return f"{a} depends on {b} but does not exist"
    return f"{a} depends on {b}, which does not exist"


@dataclass(slots=True)
class _Components:
    of: list[int]  # node -> strongly connected component, numbered dependencies-first
    first: list[int]  # component -> its first node
    tangles: dict[int, list[int]]  # component -> its nodes, ascending, for components of two or more nodes only


def _strong_components(deps: list[list[int]]) -> _Components:
    """Strongly connected components in O(V + E), without recursion and without a list per lone node."""
    n = len(deps)
    # Dependency graphs are mostly acyclic: peeling, Kahn-style, the nodes that nothing left depends on costs a
    # fraction of Tarjan per edge, and only what cannot be peeled (loops and what they depend on) goes to Tarjan.
    waiting = [0] * n
    for targets in deps:
        for w in targets:
            waiting[w] += 1
    peeled = [v for v in range(n) if not waiting[v]]
    for v in peeled:  # the list grows while it is read
        for w in deps[v]:
            waiting[w] -= 1
            if not waiting[w]:
                peeled.append(w)
    comp = [-1] * n
    first: list[int] = []
    tangles: dict[int, list[int]] = {}
    if len(peeled) < n:
        rest = [v for v in range(n) if waiting[v]]
        first = [0] * _tarjan(deps, rest, comp)
        found: dict[int, list[int]] = {}
        for v in rest:
            found.setdefault(comp[v], []).append(v)
        for c, group in found.items():
            first[c] = group[0]
            if len(group) > 1:
                tangles[c] = group
    for v in reversed(peeled):  # peeled dependents-first, so numbered after everything they depend on
        comp[v] = len(first)
        first.append(v)
    return _Components(comp, first, tangles)


def _tarjan(deps: list[list[int]], roots: list[int], comp: list[int]) -> int:
    """Tarjan's algorithm, iterative, from `roots` (whose dependencies must all be roots too); returns the count."""
    n = len(deps)
    order = [-1] * n
    low = [0] * n
    cursor = [0] * n
    stack: list[int] = []
    counter = ncomp = 0
    for root in roots:
        if order[root] >= 0:
            continue
        order[root] = low[root] = counter
        counter += 1
        stack.append(root)
        path = [root]
        while path:
            v = path[-1]
            targets = deps[v]
            i, end = cursor[v], len(targets)
            while i < end:
                w = targets[i]
                i += 1
                if order[w] < 0:
                    break
                if comp[w] < 0 and order[w] < low[v]:  # w is still on the stack: same component as v
                    low[v] = order[w]
            else:
                path.pop()
                if path and low[v] < low[path[-1]]:
                    low[path[-1]] = low[v]
                if low[v] == order[v]:
                    while True:
                        w = stack.pop()
                        comp[w] = ncomp
                        if w == v:
                            break
                    ncomp += 1
                continue
            cursor[v] = i
            order[w] = low[w] = counter
            counter += 1
            stack.append(w)
            path.append(w)
    return ncomp


def _tangle_deps(c: int, comps: _Components, deps: list[list[int]], slot: list[int]) -> list[int]:
    """The other components a component of several nodes depends on, as slots in its weakly connected component."""
    of = comps.of
    return list(dict.fromkeys(slot[of[w]] for v in comps.tangles[c] for w in deps[v] if of[w] != c))


def _alive_at_once(local_deps: list[list[int]]) -> int:
    """How many bitsets a dependents-first walk holds at its peak: one per component reached but not yet walked."""
    reached = [False] * len(local_deps)
    waiting = 0  # reached, not yet walked
    peak = 1
    for j, targets in enumerate(local_deps):
        if reached[j]:
            waiting -= 1
        for d in targets:
            if not reached[d]:
                reached[d] = True
                waiting += 1
        peak = max(peak, waiting + 1)  # plus the one being walked
    return peak


def _shortest_cycle(start: int, deps: list[list[int]], comp: list[int]) -> list[int]:
    """A shortest closed loop ``[start, ..., start]`` inside `start`'s component (which must have a loop)."""
    home = comp[start]
    parent = {start: start}
    queue = [start]
    for v in queue:
        for w in deps[v]:
            if w == start:
                loop = [v]
                while loop[-1] != start:
                    loop.append(parent[loop[-1]])
                loop.reverse()
                loop.append(start)
                return loop
            if comp[w] == home and w not in parent:
                parent[w] = v
                queue.append(w)
    raise AssertionError("a component of two or more nodes always has a loop through each node")


def _eades_order(succ: list[list[int]]) -> list[int]:
    """Eades–Lin–Smyth: a node order with few edges pointing backwards, in O(V + E).

    Sinks go to the back, sources to the front, otherwise the node with most outgoing minus incoming edges goes
    to the front. Buckets by that difference are stacks with lazy deletion: a node is pushed again whenever its
    difference changes and stale entries are skipped, so the total work is bounded by the number of edges.
    """
    m = len(succ)
    pred: list[list[int]] = [[] for _ in range(m)]
    for v, targets in enumerate(succ):
        for w in targets:
            pred[w].append(v)
    outdeg = [len(targets) for targets in succ]
    indeg = [len(sources) for sources in pred]
    removed = [False] * m
    sinks = [v for v in range(m) if outdeg[v] == 0]
    sources = [v for v in range(m) if indeg[v] == 0]
    buckets: list[list[int]] = [[] for _ in range(2 * m + 1)]  # index: outdeg - indeg + m
    top = 0
    for v in range(m):
        d = outdeg[v] - indeg[v] + m
        buckets[d].append(v)
        top = max(top, d)
    front: list[int] = []
    back: list[int] = []
    remaining = m
    while remaining:
        if sinks:
            v = sinks.pop()
            if removed[v]:
                continue
            back.append(v)
        elif sources:
            v = sources.pop()
            if removed[v]:
                continue
            front.append(v)
        else:
            bucket = buckets[top]
            if not bucket:
                top -= 1
                continue
            v = bucket.pop()
            if removed[v] or outdeg[v] - indeg[v] + m != top:
                continue
            front.append(v)
        removed[v] = True
        remaining -= 1
        for w in succ[v]:
            if not removed[w]:
                indeg[w] -= 1
                if indeg[w] == 0:
                    sources.append(w)
                else:
                    d = outdeg[w] - indeg[w] + m
                    buckets[d].append(w)
                    if d > top:
                        top = d
        for u in pred[v]:
            if not removed[u]:
                outdeg[u] -= 1
                if outdeg[u] == 0:
                    sinks.append(u)
                else:
                    buckets[outdeg[u] - indeg[u] + m].append(u)
    back.reverse()
    return front + back


def _break_cycles(group: list[int], deps: list[list[int]], comp: list[int]) -> list[tuple[int, int, list[int]]]:
    """The edges to cut inside one strongly connected component, each with the loop it would close if kept."""
    home = comp[group[0]]
    local = {v: i for i, v in enumerate(group)}
    succ = [[local[w] for w in deps[v] if comp[w] == home] for v in group]
    m = len(group)
    pos = [0] * m
    for i, v in enumerate(_eades_order(succ)):
        pos[v] = i
    keep = [[w for w in targets if pos[w] > pos[v]] for v, targets in enumerate(succ)]
    backward = [(v, w) for v, targets in enumerate(succ) for w in targets if pos[w] < pos[v]]

    seen = [0] * m  # stamp per search, so each search costs what it visits, not m
    parent = [0] * m
    stamp = 0

    def path(start: int, goal: int, limit: int) -> list[int] | None:
        nonlocal stamp
        stamp += 1
        seen[start] = stamp
        queue = [start]
        for v in queue:
            for w in keep[v]:
                if seen[w] == stamp or pos[w] > limit:
                    continue
                seen[w] = stamp
                parent[w] = v
                if w == goal:
                    found = [w]
                    while found[-1] != start:
                        found.append(parent[found[-1]])
                    found.reverse()
                    return found
                queue.append(w)
        return None

    cuts: list[tuple[int, int, list[int]]] = []
    undecided: list[tuple[int, int]] = []
    for v, w in backward:
        # While only forward edges are kept, a path from w back to v stays between their positions.
        loop = path(w, v, pos[v])
        if loop is None:
            undecided.append((v, w))
        else:
            cuts.append((v, w, loop))
    for v, w in undecided:
        # Restoring edges only adds paths, so an edge needed now stays needed: one pass decides each for good.
        loop = path(w, v, m)
        if loop is None:
            keep[v].append(w)
        else:
            cuts.append((v, w, loop))
    cuts.sort()
    return [(group[v], group[w], [group[v], *(group[x] for x in loop)]) for v, w, loop in cuts]


def _count_block(
    local_deps: list[list[int]],
    single: list[int],
    starts: list[int],
    sizes: list[int],
    lo: int,
    hi: int,
    first: int,
    counted: list[int],
) -> None:
    """Add, per component, how many nodes at positions [lo, hi) reach it: one dependents-first bitset pass."""
    reach = [0] * len(local_deps)
    pending = 0  # nonzero entries of `reach` not yet consumed: once past the block and zero, the pass is done
    for j in range(first, len(local_deps)):
        bits = reach[j]
        if bits:
            reach[j] = 0
            pending -= 1
            if single[j] < 0:  # with a single dependent, the count follows from that one's (see the caller)
                counted[j] += bits.bit_count()
        start = starts[j]
        if start >= hi:
            if not bits:
                if not pending:
                    break
                continue
        elif sizes[j] == 1:
            bits |= 1 << (start - lo)
        else:
            begin, end = max(start, lo), min(start + sizes[j], hi)
            bits |= ((1 << (end - begin)) - 1) << (begin - lo)
        for d in local_deps[j]:
            if not reach[d]:
                pending += 1
            reach[d] |= bits
