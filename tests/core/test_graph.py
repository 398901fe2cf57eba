"""Dependency-graph algorithms: named graphs for every problem and message, properties against brute force, and
100,000-node graphs that must neither recurse nor miss a fault."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmaster.core import graph as graph_module
from taskmaster.core.errors import InvalidInput
from taskmaster.core.graph import (
    CycleError,
    GraphError,
    GraphProblem,
    Removal,
    adjacency,
    critical_path_lengths,
    cycle_if_added,
    find_path,
    fix,
    format_cycle,
    topological_order,
    transitive_dependents_counts,
    validate,
)

T = TypeVar("T", bound=Hashable)
Edge = tuple[int, int]


# --- brute force, written for obviousness on small graphs ---


def reachable(nodes: Iterable[T], edges: Iterable[tuple[T, T]]) -> dict[T, set[T]]:
    """For each node, every node reachable from it in one or more steps."""
    out: dict[T, set[T]] = {node: set() for node in nodes}
    for a, b in edges:
        if a in out and b in out:
            out[a].add(b)
    result = {}
    for node in out:
        seen: set[T] = set()
        todo = list(out[node])
        while todo:
            nxt = todo.pop()
            if nxt not in seen:
                seen.add(nxt)
                todo.extend(out[nxt])
        result[node] = seen
    return result


def is_acyclic(nodes: Iterable[T], edges: Iterable[tuple[T, T]]) -> bool:
    return all(node not in reach for node, reach in reachable(nodes, edges).items())


def is_cycle_of(cycle: Sequence[T], edges: Iterable[tuple[T, T]]) -> bool:
    """A closed walk along existing edges that repeats no node but its start."""
    edge_set = set(edges)
    return (
        len(cycle) >= 2
        and cycle[0] == cycle[-1]
        and len(set(cycle[:-1])) == len(cycle) - 1
        and all((a, b) in edge_set for a, b in itertools.pairwise(cycle))
    )


def distance(nodes: Iterable[T], edges: Iterable[tuple[T, T]], start: T, goal: T) -> int | None:
    frontier, seen, steps = {start}, {start}, 0
    edge_list = list(edges)
    while frontier:
        if goal in frontier:
            return steps
        frontier = {b for a, b in edge_list if a in frontier and b not in seen}
        seen |= frontier
        steps += 1
    return None


def strongly_connected_groups(nodes: Sequence[T], edges: Iterable[tuple[T, T]]) -> set[frozenset[T]]:
    """Groups of two or more nodes that all reach each other."""
    reach = reachable(nodes, edges)
    groups = {frozenset({n} | {m for m in nodes if m in reach[n] and n in reach[m]}) for n in nodes}
    return {group for group in groups if len(group) > 1}


def clean_edges(nodes: Sequence[int], edges: Iterable[Edge]) -> list[Edge]:
    known = set(nodes)
    return list(dict.fromkeys((a, b) for a, b in edges if a != b and a in known and b in known))


def by_kind(problems: Iterable[GraphProblem[T]], kind: str) -> list[GraphProblem[T]]:
    return [problem for problem in problems if problem.kind == kind]


# --- strategies: nodes 0..n-1; ids from n up are "missing" ---


@st.composite
def any_graph(draw: st.DrawFn, max_nodes: int = 9) -> tuple[list[int], list[Edge]]:
    n = draw(st.integers(0, max_nodes))
    ids = st.integers(0, n + 1)  # n and n + 1 do not exist
    edges = draw(st.lists(st.tuples(ids, ids), max_size=3 * max_nodes))
    return list(range(n)), edges


@st.composite
def dag(draw: st.DrawFn, max_nodes: int = 10) -> tuple[list[int], list[Edge]]:
    """Acyclic and clean: each node depends only on nodes listed before it, and at most once on each."""
    n = draw(st.integers(0, max_nodes))
    edges = [
        (a, b) for a in range(n) for b in draw(st.sets(st.integers(0, a - 1), max_size=3) if a else st.just(set[int]()))
    ]
    nodes = list(range(n))
    draw(st.randoms(use_true_random=False)).shuffle(nodes)
    return nodes, edges


# --- find_path and cycle_if_added: the immediate check when an edge is added ---


def test_find_path_returns_a_shortest_path_or_none() -> None:
    adj = adjacency("abcde", [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")])
    assert find_path(adj, "a", "d") == ["a", "d"]
    assert find_path(adj, "b", "d") == ["b", "c", "d"]
    assert find_path(adj, "d", "a") is None
    assert find_path(adj, "e", "a") is None
    assert find_path(adj, "c", "c") == ["c"]
    assert find_path({}, "x", "y") is None


def test_cycle_if_added_names_the_loop_a_new_edge_would_close() -> None:
    adj = adjacency("abc", [("a", "b"), ("b", "c")])
    assert cycle_if_added(adj, "c", "a") == ["c", "a", "b", "c"]
    assert format_cycle(cycle_if_added(adj, "c", "a") or []) == "c -> a -> b -> c"
    assert cycle_if_added(adj, "b", "b") == ["b", "b"]
    assert cycle_if_added(adj, "a", "c") is None  # a shortcut, not a loop
    assert cycle_if_added(adj, "c", "d") is None  # unknown nodes are the caller's business


@given(any_graph(), st.integers(0, 10), st.integers(0, 10))
def test_find_path_is_a_real_shortest_path(graph: tuple[list[int], list[Edge]], start: int, goal: int) -> None:
    nodes, edges = graph
    path = find_path(adjacency(nodes, edges), start, goal)
    expected = distance(nodes, edges, start, goal)
    if path is None:
        assert expected is None
    else:
        assert path[0] == start and path[-1] == goal and len(path) - 1 == expected
        assert all((a, b) in set(edges) for a, b in itertools.pairwise(path))


# --- validate: one named graph per problem kind ---


def test_clean_diamond_has_no_problems() -> None:
    assert validate("abcd", [("b", "a"), ("c", "a"), ("d", "b"), ("d", "c")]) == []


def test_self_dependency_is_reported_once_with_its_edge() -> None:
    problems = validate("ab", [("a", "b"), ("b", "b"), ("b", "b")])
    assert problems == [GraphProblem("self", "b", "b depends on itself", edge=("b", "b"), cycle=("b", "b"))]


def test_dependency_on_a_missing_node_names_the_missing_one() -> None:
    problems = validate("ab", [("a", "x"), ("y", "b"), ("y", "z"), ("a", "b")])
    assert [(p.kind, p.node, p.edge, p.message) for p in problems] == [
        ("missing", "x", ("a", "x"), "a depends on x, which does not exist"),
        ("missing", "y", ("y", "b"), "y depends on b but does not exist"),
        ("missing", "z", ("y", "z"), "y depends on z, and neither exists"),
    ]


def test_duplicate_edge_is_reported_once_with_how_often() -> None:
    problems = validate("abc", [("a", "b"), ("a", "c"), ("a", "b"), ("a", "b")])
    assert problems == [GraphProblem("duplicate", "a", "a depends on b 3 times", edge=("a", "b"))]


def test_cycle_is_named_in_order_from_its_first_node() -> None:
    problems = validate("abcd", [("b", "c"), ("c", "a"), ("a", "b"), ("d", "a")])
    assert problems == [GraphProblem("cycle", "a", "circular dependency: a -> b -> c -> a", cycle=("a", "b", "c", "a"))]


def test_one_problem_per_tangle_naming_its_shortest_loop_and_size() -> None:
    # a -> b -> c -> d -> a, plus the shortcut c -> a: one strongly connected group of four, two loops through a.
    problems = validate("abcde", [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a"), ("c", "a"), ("e", "e")])
    assert [p.kind for p in problems] == ["self", "cycle"]
    assert problems[1].cycle == ("a", "b", "c", "a")
    assert problems[1].message == (
        "circular dependency: a -> b -> c -> a (4 nodes depend on each other through this and other loops)"
    )


def test_problems_come_grouped_by_kind_in_node_order_whatever_the_edge_order() -> None:
    nodes = ["n1", "n2", "n3", "n4", "n5"]
    edges = [("n5", "n4"), ("n4", "n5"), ("n3", "n3"), ("n2", "gone"), ("n1", "n2"), ("n1", "n2"), ("n1", "n1")]
    problems = validate(nodes, edges)
    assert [(p.kind, p.node) for p in problems] == [
        ("self", "n1"),
        ("self", "n3"),
        ("missing", "gone"),
        ("duplicate", "n1"),
        ("cycle", "n4"),
    ]
    assert validate(nodes, list(reversed(edges))) == problems


def test_labels_render_nodes_in_messages() -> None:
    titles = {1: "#1 Login", 2: "#2 Schema"}
    problems = validate([1, 2], [(1, 2), (2, 1)], label=lambda node: titles[node])
    assert problems[0].message == "circular dependency: #1 Login -> #2 Schema -> #1 Login"
    assert problems[0].cycle == (1, 2, 1)


def test_long_dependency_lists_are_checked_like_short_ones_whatever_their_order() -> None:
    # Lists longer than 64 are sorted by counting rather than in place: same results either way.
    edges = [(0, k) for k in range(1, 151)] + [(0, 7), (0, 999), (0, 0), (3, 2), (3, 2)]
    shuffled = list(edges)
    random.Random(5).shuffle(shuffled)
    problems = validate(range(151), edges)
    assert [(p.kind, p.edge) for p in problems] == [
        ("self", (0, 0)),
        ("missing", (0, 999)),
        ("duplicate", (0, 7)),
        ("duplicate", (3, 2)),
    ]
    assert validate(range(151), shuffled) == problems
    assert len(fix(range(151), shuffled).kept) == 151


def test_a_node_listed_twice_keeps_its_first_place() -> None:
    assert topological_order(["b", "a", "b"], []) == ["b", "a"]
    assert validate(["a", "b", "a"], [("a", "b"), ("b", "a")])[0].cycle == ("a", "b", "a")


@given(dag(), st.data())
def test_validate_finds_exactly_the_injected_faults(graph: tuple[list[int], list[Edge]], data: st.DataObject) -> None:
    nodes, edges = graph
    n = len(nodes)
    selfs = data.draw(st.sets(st.sampled_from(nodes), max_size=3)) if nodes else set()
    missing = data.draw(st.sets(st.tuples(st.integers(0, n + 2), st.integers(n, n + 2)), max_size=3))
    duplicated = data.draw(st.sets(st.sampled_from(edges), max_size=3)) if edges else set()
    faulty = [*edges, *((a, a) for a in selfs), *missing, *duplicated]
    data.draw(st.randoms(use_true_random=False)).shuffle(faulty)

    problems = validate(nodes, faulty)

    assert {p.node for p in by_kind(problems, "self")} == selfs
    assert {p.edge for p in by_kind(problems, "missing")} == missing
    assert {p.edge for p in by_kind(problems, "duplicate")} == duplicated
    assert not by_kind(problems, "cycle")
    assert len(problems) == len(selfs) + len(missing) + len(duplicated)


@given(any_graph())
def test_validate_reports_one_real_shortest_cycle_per_tangle(graph: tuple[list[int], list[Edge]]) -> None:
    nodes, edges = graph
    cycles = by_kind(validate(nodes, edges), "cycle")
    clean = clean_edges(nodes, edges)
    groups = strongly_connected_groups(nodes, clean)
    assert len(cycles) == len(groups)
    for problem in cycles:
        assert problem.cycle is not None
        group = next(group for group in groups if problem.node in group)
        assert problem.node == min(group, key=nodes.index)  # the group's first node, as listed
        assert is_cycle_of(problem.cycle, clean) and set(problem.cycle) <= group
        through = [distance(nodes, clean, b, problem.node) for a, b in clean if a == problem.node and b in group]
        assert len(problem.cycle) - 1 == 1 + min(d for d in through if d is not None)


@given(any_graph(), st.randoms(use_true_random=False))
def test_validate_is_deterministic_whatever_the_edge_order(
    graph: tuple[list[int], list[Edge]], rng: random.Random
) -> None:
    nodes, edges = graph
    shuffled = list(edges)
    rng.shuffle(shuffled)
    first, second = validate(nodes, edges), validate(nodes, shuffled)
    # Unknown nodes are numbered by first mention, so only their relative order may differ.
    assert sorted(map(repr, first)) == sorted(map(repr, second))
    assert [p for p in first if p.kind != "missing"] == [p for p in second if p.kind != "missing"]


# --- fix ---


def test_fix_removes_each_faulty_occurrence_and_keeps_the_rest_in_order() -> None:
    edges = [("a", "b"), ("a", "a"), ("b", "x"), ("a", "b"), ("b", "c"), ("a", "a"), ("a", "b")]
    result = fix("abc", edges)
    assert result.kept == (("a", "b"), ("b", "c"))
    assert result.removed == (
        Removal(("a", "a"), "self", "a depends on itself", ("a", "a")),
        Removal(("a", "a"), "self", "a depends on itself", ("a", "a")),
        Removal(("b", "x"), "missing", "b depends on x, which does not exist"),
        Removal(("a", "b"), "duplicate", "a depends on b more than once: removed a duplicate"),
        Removal(("a", "b"), "duplicate", "a depends on b more than once: removed a duplicate"),
    )


def test_fix_breaks_a_loop_at_the_edge_from_an_older_to_a_newer_node() -> None:
    # Nodes listed oldest first; each depends on the one before, and someone made t1 depend on t5.
    nodes = ["t1", "t2", "t3", "t4", "t5"]
    edges = [("t2", "t1"), ("t3", "t2"), ("t4", "t3"), ("t5", "t4"), ("t1", "t5")]
    result = fix(nodes, edges)
    assert result.removed == (
        Removal(
            ("t1", "t5"),
            "cycle",
            "t1 depends on t5: removed to break t1 -> t5 -> t4 -> t3 -> t2 -> t1",
            ("t1", "t5", "t4", "t3", "t2", "t1"),
        ),
    )
    assert result.kept == tuple(edges[:4])


@pytest.mark.parametrize("length", [2, 3, 4, 10, 57])
def test_a_simple_loop_costs_exactly_one_edge(length: int) -> None:
    nodes = list(range(length))
    result = fix(nodes, [(k, (k + 1) % length) for k in nodes])
    assert [r.kind for r in result.removed] == ["cycle"]
    assert is_acyclic(nodes, result.kept)


def test_loops_sharing_a_node_cost_one_edge_each() -> None:
    result = fix("abc", [("a", "b"), ("b", "a"), ("a", "c"), ("c", "a")])
    assert len(result.removed) == 2 and is_acyclic("abc", result.kept)


def test_mutual_dependencies_everywhere_cost_one_edge_per_pair() -> None:
    nodes = range(6)
    result = fix(nodes, [(a, b) for a in nodes for b in nodes if a != b])
    assert len(result.removed) == 15  # the minimum: every pair is a loop of two
    assert is_acyclic(nodes, result.kept)


@given(any_graph(max_nodes=10))
@settings(max_examples=300)
def test_fix_leaves_an_acyclic_clean_graph_and_removes_only_needed_edges(
    graph: tuple[list[int], list[Edge]],
) -> None:
    nodes, edges = graph
    result = fix(nodes, edges)
    kept = list(result.kept)

    assert is_acyclic(nodes, kept)
    assert kept == clean_edges(nodes, kept)  # no self, missing or duplicate edge survives
    assert len(kept) + len(result.removed) == len(edges)
    assert sorted(kept + [r.edge for r in result.removed]) == sorted(edges)
    faults = {(p.kind, p.edge) for p in validate(nodes, edges) if p.kind != "cycle"}
    assert {(r.kind, r.edge) for r in result.removed if r.kind != "cycle"} == faults
    for removal in result.removed:
        if removal.kind == "cycle":
            assert not is_acyclic(nodes, [*kept, removal.edge]), f"{removal.edge} was not needed"
            assert removal.cycle is not None and is_cycle_of(removal.cycle, [*kept, removal.edge])


@given(any_graph(), st.randoms(use_true_random=False))
def test_fix_is_deterministic_whatever_the_edge_order(graph: tuple[list[int], list[Edge]], rng: random.Random) -> None:
    nodes, edges = graph
    shuffled = list(edges)
    rng.shuffle(shuffled)
    first = fix(nodes, edges)
    assert fix(nodes, edges) == first
    assert [r for r in fix(nodes, shuffled).removed if r.kind == "cycle"] == [
        r for r in first.removed if r.kind == "cycle"
    ]


# --- topological_order ---


def test_topological_order_puts_dependencies_first_and_keeps_a_valid_order() -> None:
    assert topological_order("abc", [("a", "b"), ("b", "c")]) == ["c", "b", "a"]
    assert topological_order("cba", [("a", "b"), ("b", "c"), ("a", "c")]) == ["c", "b", "a"]
    assert topological_order("xyz", []) == ["x", "y", "z"]


def test_topological_order_names_a_cycle() -> None:
    with pytest.raises(CycleError) as caught:
        topological_order("abcd", [("d", "a"), ("a", "b"), ("b", "c"), ("c", "a")])
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.detail == "circular dependency: a -> b -> c -> a"
    assert caught.value.cycle == ("a", "b", "c", "a")
    assert caught.value.extra == {"cycle": ["a", "b", "c", "a"]}
    assert caught.value.code == "dependency_cycle"


def test_topological_order_rejects_self_and_missing_dependencies() -> None:
    with pytest.raises(CycleError, match=r"circular dependency: b -> b"):
        topological_order("ab", [("b", "b")])
    with pytest.raises(GraphError, match=r"a depends on zz, which does not exist"):
        topological_order("ab", [("a", "zz")])


@given(dag())
def test_topological_order_of_a_dag_is_valid_and_complete(graph: tuple[list[int], list[Edge]]) -> None:
    nodes, edges = graph
    order = topological_order(nodes, edges)
    position = {node: k for k, node in enumerate(order)}
    assert sorted(order) == sorted(nodes)
    assert all(position[b] < position[a] for a, b in edges)
    assert topological_order(order, edges) == order  # stable on a valid order


@given(any_graph())
def test_topological_order_raises_exactly_when_there_is_a_loop(graph: tuple[list[int], list[Edge]]) -> None:
    nodes, edges = graph
    known = [(a, b) for a, b in edges if a in nodes and b in nodes]
    if is_acyclic(nodes, known):
        assert len(topological_order(nodes, known)) == len(nodes)
    else:
        with pytest.raises(CycleError) as caught:
            topological_order(nodes, known)
        assert is_cycle_of(caught.value.cycle, known)


# --- ranking for `next`: transitive dependents and critical path ---


def test_counts_on_a_diamond_and_a_loop() -> None:
    # d depends on b and c, which both depend on a; x and y depend on each other and on d.
    edges = [("b", "a"), ("c", "a"), ("d", "b"), ("d", "c"), ("x", "y"), ("y", "x"), ("x", "d")]
    counts = transitive_dependents_counts("abcdxy", edges)
    assert counts == {"a": 5, "b": 3, "c": 3, "d": 2, "x": 1, "y": 1}
    assert critical_path_lengths("abcdxy", edges) == {"a": 3, "b": 2, "c": 2, "d": 1, "x": 0, "y": 0}


def test_counts_ignore_faulty_edges() -> None:
    edges = [("b", "a"), ("b", "a"), ("a", "a"), ("b", "ghost"), ("ghost", "a")]
    assert transitive_dependents_counts("ab", edges) == {"a": 1, "b": 0}


@given(any_graph(max_nodes=12), st.sampled_from([None, 1, 2, 3, 5, 64]))
@settings(max_examples=300)
def test_counts_match_brute_force(graph: tuple[list[int], list[Edge]], block_bits: int | None) -> None:
    nodes, edges = graph
    reach = reachable(nodes, clean_edges(nodes, edges))
    expected = {b: sum(1 for a in nodes if a != b and b in reach[a]) for b in nodes}
    assert transitive_dependents_counts(nodes, edges, block_bits=block_bits) == expected


def test_counts_split_into_blocks_when_many_bitsets_are_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    # A chain whose every task has its own dependency that the chain's end needs too: all those bitsets stay
    # alive until the end, so a small budget forces several passes over blocks of the chain.
    xs, ys = [f"x{k}" for k in range(40)], [f"y{k}" for k in range(40)]
    edges = [*itertools.pairwise(xs), *zip(xs, ys, strict=True), *((xs[-1], y) for y in ys[:-1])]
    reach = reachable(xs + ys, edges)
    expected = {b: sum(1 for a in xs + ys if a != b and b in reach[a]) for b in xs + ys}
    monkeypatch.setattr(graph_module, "_BITSET_BUDGET_BYTES", 32)
    monkeypatch.setattr(graph_module, "_MIN_BLOCK_BITS", 8)
    assert transitive_dependents_counts(xs + ys, edges) == expected


@given(dag(max_nodes=12))
def test_critical_path_is_the_longest_chain_of_dependents(graph: tuple[list[int], list[Edge]]) -> None:
    nodes, edges = graph
    longest = dict.fromkeys(nodes, 0)
    for node in topological_order(nodes, edges)[::-1]:  # dependents first
        for a, b in edges:
            if a == node:
                longest[b] = max(longest[b], longest[a] + 1)
    assert critical_path_lengths(nodes, edges) == longest


# --- 100,000 nodes: no recursion, no fault missed ---


def test_a_100k_chain_needs_no_recursion() -> None:
    n = 100_000
    chain = list(range(n))
    links = [(k + 1, k) for k in range(n - 1)]  # each depends on the one before
    assert topological_order(chain, links) == chain
    assert validate(chain, links) == []
    counts = transitive_dependents_counts(chain, links)
    assert counts[0] == n - 1 and counts[n // 2] == n - n // 2 - 1 and counts[n - 1] == 0
    assert critical_path_lengths(chain, links)[0] == n - 1


def test_a_100k_loop_costs_one_edge() -> None:
    n = 100_000
    chain = list(range(n))
    links = [(k + 1, k) for k in range(n - 1)]
    closed = fix(chain, [*links, (0, n - 1)])
    assert [r.edge for r in closed.removed] == [(0, n - 1)]
    assert closed.removed[0].cycle is not None and len(closed.removed[0].cycle) == n + 1


@dataclass(frozen=True)
class FaultyGraph:
    nodes: list[uuid.UUID]
    edges: list[tuple[uuid.UUID, uuid.UUID]]
    selfs: set[uuid.UUID]
    missing: set[tuple[uuid.UUID, uuid.UUID]]
    duplicated: set[tuple[uuid.UUID, uuid.UUID]]
    loops: list[frozenset[uuid.UUID]]
    loop_edges: list[tuple[uuid.UUID, uuid.UUID]]

    @property
    def faults(self) -> int:
        return len(self.selfs) + len(self.missing) + len(self.duplicated) + len(self.loops)


@pytest.fixture(scope="module")
def faulty_100k() -> FaultyGraph:
    """100,000 tasks, each depending on one or two of the 30 before it, plus self, missing and duplicate edges
    and loops of 2 to 1000 new tasks wired into the graph; nodes and edges shuffled."""
    rng = random.Random(2024)

    def new_id() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128))

    n = 100_000
    nodes = [new_id() for _ in range(n)]
    edges = [  # random() is much cheaper than randrange at this scale
        (nodes[i], nodes[j])
        for i in range(1, n)
        for j in {i - 1 - int(rng.random() * min(i, 30)), i - 1 - int(rng.random() * min(i, 30))}
    ]
    selfs = set(rng.sample(nodes, 3))
    missing = {(nodes[rng.randrange(n)], new_id()) for _ in range(3)} | {(new_id(), nodes[0])}
    duplicated = set(rng.sample(edges, 3))
    loops = []
    loop_edges: list[tuple[uuid.UUID, uuid.UUID]] = []
    for length in (2, 3, 7, 100, 1000):
        loop = [new_id() for _ in range(length)]
        loops.append(frozenset(loop))
        loop_edges += [(loop[k], loop[(k + 1) % length]) for k in range(length)]
        # Wire the loop in without making a bigger one: the loop depends on tasks older than a pivot, newer tasks
        # depend on the loop, and tasks only ever depend on older ones.
        pivot = rng.randrange(1, n)
        for node in rng.sample(loop, min(length, 5)):
            edges += [(node, nodes[rng.randrange(pivot)]), (nodes[rng.randrange(pivot, n)], node)]
        nodes += loop
    faulty = [*edges, *loop_edges, *((a, a) for a in selfs), *missing, *duplicated]
    rng.shuffle(faulty)
    rng.shuffle(nodes)
    return FaultyGraph(nodes, faulty, selfs, missing, duplicated, loops, loop_edges)


def test_validate_finds_every_fault_injected_into_100k_tasks(faulty_100k: FaultyGraph) -> None:
    graph = faulty_100k
    problems = validate(graph.nodes, graph.edges)

    assert {p.node for p in by_kind(problems, "self")} == graph.selfs
    assert {p.edge for p in by_kind(problems, "missing")} == graph.missing
    assert {p.edge for p in by_kind(problems, "duplicate")} == graph.duplicated
    cycles = by_kind(problems, "cycle")
    assert {frozenset(p.cycle or ()) for p in cycles} == set(graph.loops)
    assert all(p.cycle and is_cycle_of(p.cycle, graph.loop_edges) for p in cycles)
    assert len(problems) == graph.faults


def test_fix_repairs_100k_tasks_with_one_edge_per_loop(faulty_100k: FaultyGraph) -> None:
    graph = faulty_100k
    result = fix(graph.nodes, graph.edges)
    cut = [r.edge for r in result.removed if r.kind == "cycle"]
    assert len(cut) == len(graph.loops) and set(cut) <= set(graph.loop_edges)
    assert len(result.removed) == graph.faults
    assert len(result.kept) + len(result.removed) == len(graph.edges)
