"""graph: the cases of core::graph's own tests (same orders, same critical paths)."""

import math

import pytest

from chimeraforge_py.graph import GraphError, critical_path, graph_of, topological_order


def graph(spec):
    return graph_of([{"id": i, "after": list(after)} for i, after in spec])


def test_independent_agents_have_the_longest_agent_as_critical_path():
    g = [[], []]
    assert critical_path(g, [300.0, 450.0]) == (450.0, [1])
    assert topological_order(g, [1, 0]) == [1, 0]


def test_fan_out_fan_in_takes_the_longest_worker():
    g = graph([("orch", []), ("w1", ["orch"]), ("w2", ["orch"]), ("w3", ["orch"]), ("agg", ["w1", "w2", "w3"])])
    assert critical_path(g, [100.0, 200.0, 500.0, 300.0, 50.0]) == (650.0, [0, 2, 4])
    assert topological_order(g, [4, 3, 2, 1, 0]) == [0, 3, 2, 1, 4]


def test_a_pipeline_sums_every_stage():
    g = graph([("c", ["b"]), ("a", []), ("b", ["a"])])
    assert critical_path(g, [1.0, 2.0, 4.0]) == (7.0, [1, 2, 0])
    assert topological_order(g, [0, 1, 2]) == [1, 2, 0]


def test_unknown_ids_self_dependencies_and_cycles_are_named():
    with pytest.raises(GraphError, match="'x', which is not an agent"):
        graph([("a", ["x"])])
    with pytest.raises(GraphError, match="runs after itself"):
        graph([("a", ["a"])])
    with pytest.raises(GraphError, match="cycle"):
        graph([("a", ["c"]), ("b", ["a"]), ("c", ["b"]), ("d", [])])


def test_durations_that_do_not_fit_give_no_critical_path():
    assert critical_path([[], []], [1.0]) is None
    assert critical_path([[], []], [1.0, math.nan]) is None
    assert critical_path([[], []], [1.0, -1.0]) is None
    assert critical_path([], []) is None


def test_a_dependency_listed_twice_counts_once():
    assert graph([("a", []), ("b", ["a", "a"])])[1] == [0]
