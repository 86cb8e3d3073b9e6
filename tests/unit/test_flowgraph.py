"""The shape checks of a flow (flowgraph.order): order, cycles, limits, each error naming node and field."""

from __future__ import annotations

import pytest

from jobengine_api.flowgraph import FlowError, Limits, order

WIDE = Limits(max_nodes=100_000, max_edges=100_000, max_depth=1_000)


def test_dependencies_come_first_and_the_order_is_stable() -> None:
    names = ["d", "a", "c", "b"]
    edges = [["c", "b"], [], ["a"], ["a"]]
    got = order(names, edges, WIDE)
    assert got == [1, 2, 3, 0]
    assert order(["x", "y"], [[], []], WIDE) == [0, 1]


def test_a_fan_out_fan_in_of_10000() -> None:
    names = ["root"] + [f"c{i}" for i in range(10_000)] + ["sink"]
    edges = [[]] + [["root"]] * 10_000 + [[f"c{i}" for i in range(10_000)]]
    got = order(names, edges, Limits(10_002, 20_000, 3))
    assert got[0] == 0 and got[-1] == 10_001 and len(got) == 10_002


@pytest.mark.parametrize(("names", "edges", "field", "words"), [
    (["a", "b", "c"], [["c"], ["a"], ["b"]], "nodes.0.depends_on", "'a' -> "),
    (["a"], [["a"]], "nodes.0.depends_on.0", "itself"),
    (["a", "b"], [[], ["a", "a"]], "nodes.1.depends_on.1", "twice"),
    (["a", "a"], [[], []], "nodes.1.name", "duplicate"),
    (["a"], [["nope"]], "nodes.0.depends_on.0", "no node named 'nope'"),
    ([], [], "nodes", "at least one"),
])
def test_refusals_name_the_node_and_field(names: list[str], edges: list[list[str]], field: str, words: str) -> None:
    with pytest.raises(FlowError) as err:
        order(names, edges, WIDE)
    assert err.value.field == field
    assert words in err.value.message


def test_a_cycle_behind_a_valid_prefix_is_named() -> None:
    names = ["ok", "x", "y", "z"]
    edges = [[], ["ok", "z"], ["x"], ["y"]]
    with pytest.raises(FlowError) as err:
        order(names, edges, WIDE)
    assert err.value.message.count("->") == 3  # x -> z -> y -> x (each depends on the next)
    assert "'ok'" not in err.value.message


def test_limits() -> None:
    with pytest.raises(FlowError, match="JOBENGINE_FLOW_MAX_NODES"):
        order(["a", "b", "c"], [[], [], []], Limits(2, 10, 10))
    with pytest.raises(FlowError, match="JOBENGINE_FLOW_MAX_EDGES"):
        order(["a", "b", "c"], [[], ["a"], ["a", "b"]], Limits(10, 2, 10))
    with pytest.raises(FlowError, match="JOBENGINE_FLOW_MAX_DEPTH") as err:
        order(["a", "b", "c"], [[], ["a"], ["b"]], Limits(10, 10, 2))
    assert err.value.field == "nodes.2.depends_on"
    assert order(["a", "b"], [[], ["a"]], Limits(2, 1, 2)) == [0, 1]


def test_flow_args_layout() -> None:
    from jobengine import scripts
    args = scripts.flow_args(flow_id="f", tenant="t", stamp="s", now=1.0, flow_fields=["k", "v"], counter="",
                             quota=0, nodes=[scripts.FlowNodeArgs(["K1"], ["id1", 0], [("d", "any")], "cancel")])
    assert args == ["f", "t", "s", 1.0, 2, "k", "v", "", 0, "", 0, "", 1, 1, 2, 1, "cancel", "K1", "id1", 0, "d",
                    "any"]
