"""The ``Graph``: every mutation method, with ``lint()`` after each — the proto and the networkx view agree, inputs
resolve, signatures follow the tensors they name — and the refusals that keep a graph sound."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close, run

from graphxform.core.errors import GraphError
from graphxform.core.graph import Graph
from graphxform.core.nodes import const, make_node, with_inputs
from graphxform.core.queries import Edge
from graphxform.core.signature import Signature, TensorSpec

F32 = tf.float32
X = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)


def _graph(**sig_outputs: str) -> Graph:
    """x -> neg -> id -> out (Relu), plus c (Const) feeding add = out + c; a signature reads ``sig_outputs``."""
    nodes = [
        make_node("Placeholder", "x", attrs={"dtype": F32, "shape": tf.TensorShape([2, 3]).as_proto()}),
        make_node("Neg", "neg", ["x"], attrs={"T": F32}),
        make_node("Identity", "id", ["neg"], attrs={"T": F32}),
        make_node("Relu", "out", ["id"], attrs={"T": F32}),
        const("c", np.full((2, 3), 2.0, np.float32)),
        make_node("AddV2", "add", ["out", "c"], attrs={"T": F32}),
    ]
    g = Graph()
    g.add_nodes(nodes)
    outputs = sig_outputs or {"y": "add:0"}
    g.signatures = {"serving_default": Signature(
        "serving_default", "tensorflow/serving/predict", {"x": TensorSpec("x:0", 1, [2, 3])},
        {k: TensorSpec(t, 1, None) for k, t in outputs.items()})}
    assert g.lint() == []
    return g


def _outputs(g: Graph, *fetches: str) -> list[np.ndarray]:
    return run(g, {"x:0": X}, list(fetches))


def test_construction_keeps_the_graph_defs_nodes_and_refuses_duplicates():
    g = _graph()
    gd = g.to_graph_def()
    again = Graph(gd)
    assert again.lint() == [] and again.node_names == g.node_names
    assert again.node("neg") is gd.node[1], "nodes are kept, not copied"
    dup = gd.node.add()
    dup.CopyFrom(gd.node[0])
    with pytest.raises(GraphError, match="duplicate node names in GraphDef: x"):
        Graph(gd)


def test_dangling_inputs_are_kept_in_the_view_and_reported_by_lint():
    gd = _graph().to_graph_def()
    gd.node.add().CopyFrom(make_node("Relu", "orphan", ["missing:1"], attrs={"T": F32}))
    g = Graph(gd)
    assert g.lint() == ["node 'orphan' input 'missing:1' names no node"]
    g.update_node(with_inputs(g.node("orphan"), ["x"]))
    assert g.lint() == [] and "missing" not in g.nx


def test_add_node_and_add_nodes_in_any_order_copy_unless_adopted():
    g = _graph()
    b = make_node("Abs", "b", ["a"], attrs={"T": F32})
    a = make_node("Neg", "a", ["add"], attrs={"T": F32})
    stored = g.add_nodes([b, a])  # b reads a, added in the same call
    assert g.lint() == [] and stored[0] is not b, "copied"
    assert g.consumers("a") == [("b", 0)] and g.input_nodes("b") == ["a"]
    adopted = make_node("Neg", "c2", ["b"], attrs={"T": F32})
    assert g.add_nodes([adopted], adopt=True)[0] is adopted
    assert g.add_node(make_node("Neg", "d", ["c2"], attrs={"T": F32})).name == "d"
    assert g.lint() == []
    assert_close(_outputs(g, "d:0"), [np.maximum(-X, 0) + 2.0])


def test_add_refuses_bad_nodes_and_changes_nothing():
    g = _graph()
    before = g.to_graph_def()
    with pytest.raises(GraphError, match="a node of that name exists"):
        g.add_node(make_node("Neg", "neg", ["x"], attrs={"T": F32}))
    with pytest.raises(GraphError, match="names no node"):
        g.add_nodes([make_node("Neg", "n1", ["x"], attrs={"T": F32}), make_node("Neg", "n2", ["nope"])])
    with pytest.raises(GraphError, match="without name and op"):
        g.add_node(make_node("", "n3", ["x"]))
    assert g.lint() == [] and g.to_graph_def() == before and "n1" not in g.nx


def test_update_node_changes_op_attrs_and_inputs_edge_by_edge():
    g = _graph()
    g.update_node(make_node("Relu6", "out", ["neg", "^c"], attrs={"T": F32}))  # input, op and a control dep
    assert g.lint() == []
    assert g.node("out").op == "Relu6" and g.nx.nodes["out"]["op"] == "Relu6"
    assert g.consumers("id") == [] and g.consumers("neg") == [("id", 0), ("out", 0)]
    assert g.control_consumers("c") == ["out"] and g.control_inputs("out") == ["c"]
    g.update_node(make_node("Relu6", "out", ["neg"], attrs={"T": F32}))  # the control dep goes again
    assert g.lint() == [] and g.control_consumers("c") == []
    assert_close(_outputs(g, "add:0"), [np.clip(-X, 0, 6) + 2.0])
    with pytest.raises(GraphError, match="no such node"):
        g.update_node(make_node("Neg", "ghost", ["x"]))
    with pytest.raises(GraphError, match="names no node"):
        g.update_node(make_node("Neg", "out", ["ghost"]))
    assert g.lint() == []


def test_update_of_a_signature_placeholder_updates_the_signature_input():
    g = _graph()
    shape = tf.TensorShape([None, 3]).as_proto()
    g.update_node(make_node("Placeholder", "x", attrs={"dtype": tf.float64, "shape": shape}))
    assert g.lint() == []
    spec = g.signatures["serving_default"].inputs["x"]
    assert spec.dtype == tf.float64.as_datatype_enum and spec.shape == [None, 3]


def test_remove_node_refuses_consumed_and_protected_nodes():
    g = _graph()
    with pytest.raises(GraphError, match="still consumed by neg"):
        g.remove_node("x")
    g.protected.add("add")
    with pytest.raises(GraphError, match="protected"):
        g.remove_node("add")
    with pytest.raises(GraphError, match="no such node"):
        g.remove_node("ghost")
    g.add_node(make_node("Neg", "dead", ["x"], attrs={"T": F32}))
    g.remove_node("dead")
    assert g.lint() == [] and "dead" not in g and "dead" not in g.nx


def test_forced_removal_leaves_dangling_consumers_for_lint():
    g = _graph()
    g.remove_node("c", force=True)
    assert g.lint() == ["node 'add' input 'c' names no node"]
    assert g.nx.nodes["c"]["op"] is None  # the name stays in the view for the consumer's edge
    g.add_node(const("c", np.zeros((2, 3), np.float32)))
    assert g.lint() == []
    assert_close(_outputs(g, "add:0"), [np.maximum(-X, 0)])


def test_remove_nodes_takes_a_set_that_only_consumes_itself():
    g = _graph()
    with pytest.raises(GraphError, match="still consumed"):
        g.remove_nodes(["neg", "id"])  # out still reads id
    g.signatures = {}
    g.remove_nodes(["add", "out", "id", "neg", "c"])
    assert g.lint() == [] and g.node_names == ["x"]


def test_replace_all_uses_moves_consumers_and_signature_outputs():
    g = _graph(y="add:0", r="out:0")
    assert g.replace_all_uses("id:0", "neg:0") == 1
    assert g.lint() == [] and g.consumers("id") == []
    assert_close(_outputs(g, "add:0"), [np.maximum(-X, 0) + 2.0])  # the Identity was a pass-through
    assert g.replace_all_uses("out:0", "id:0") == 1  # a signature output moves too
    assert g.signatures["serving_default"].outputs["r"].name == "id:0"
    assert g.lint() == [] and g.input_nodes("add") == ["id", "c"]
    assert g.replace_all_uses("neg:0", "neg:0") == 0  # the same tensor: nothing to do
    with pytest.raises(GraphError, match="tensors"):
        g.replace_all_uses("^out", "neg:0")
    with pytest.raises(GraphError, match="no node named 'ghost'"):
        g.replace_all_uses("out:0", "ghost:0")
    assert g.lint() == []
    assert_close(_outputs(g, "add:0"), [-X + 2.0])  # the Relu no longer read, as asked


def test_replace_uses_applies_chains_in_order_and_moves_protection():
    g = _graph()
    g.protected.add("id")
    # a chain, applied in order: the readers of id move to neg (out), then the readers of neg to x (id, out)
    assert g.replace_uses({"id:0": "neg:0", "neg:0": "x:0"}) == 3
    assert g.lint() == []
    assert g.input_nodes("out") == ["x"] and g.input_nodes("id") == ["x"] and g.consumers("neg") == []
    assert "x" in g.protected and not {"id", "neg"} & g.protected, "protection follows the tensor"
    g.signatures = {}
    g.remove_node("neg")
    assert g.lint() == []
    assert_close(_outputs(g, "add:0"), [np.maximum(X, 0) + 2.0])


def test_replace_control_uses_moves_control_dependencies_without_duplicates():
    g = _graph()
    g.add_node(make_node("NoOp", "init"))
    g.add_node(make_node("NoOp", "group", ["^init", "^c"]))
    g.replace_control_uses("init", ["c", "neg"])  # group already waits on c
    assert g.lint() == []
    assert g.node("group").input[:] == ["^c", "^neg"] and g.control_consumers("init") == []
    with pytest.raises(GraphError, match="no such node"):
        g.replace_control_uses("c", ["ghost"])


def test_unique_name_never_returns_a_taken_name():
    g = _graph()
    assert g.unique_name("fresh") == "fresh"
    first = g.unique_name("neg")
    assert first not in g and first.startswith("neg_")
    g.add_node(make_node("Neg", first, ["x"], attrs={"T": F32}))
    assert g.unique_name("neg") not in g
    assert g.lint() == []


def test_copy_is_deep_and_take_graph_def_empties_the_graph():
    g = _graph(y="add:0")
    dup = g.copy()
    dup.replace_all_uses("add:0", "out:0")
    assert g.signatures["serving_default"].outputs["y"].name == "add:0", "the copy has its own signatures"
    assert dup.lint() == [] and g.lint() == []
    gd = g.take_graph_def()
    assert len(g) == 0 and len(gd.node) == 6 and len(g.nx) == 0
    assert_close(run(gd, {"x:0": X}, ["add:0"]), [np.maximum(-X, 0) + 2.0])


def test_read_only_queries():
    g = _graph(y="add:0")
    g.add_node(make_node("NoOp", "after", ["^add"]))
    assert g.out_edges("out") == [Edge("out", "add", 0, 0, False)]
    assert Edge("add", "after", -1, -1, True) in g.out_edges("add")
    assert g.output_ports("add") == set() and g.output_ports("out") == {0}
    assert g.has_consumers("add") and not g.has_consumers("after")
    assert [(s.key, side, key, port) for s, side, key, port in g.signature_uses("add")] == \
        [("serving_default", "output", "y", 0)]
    assert g.is_protected("x") and g.protected_nodes() >= {"x", "add"}
    assert g.ancestors(["add"]) == {"add", "out", "id", "neg", "x", "c"}
    assert g.const_value("c").tolist() == np.full((2, 3), 2.0).tolist()
    assert g.output_dtype("add:0") == tf.float32.as_datatype_enum
    succ, pred = g.adjacency()
    assert set(succ["out"]) == {"add"} and set(pred["out"]) == {"id"}


def test_signature_index_answers_as_the_scan_does_and_follows_renames():
    g = _graph(y="add:0", r="id:0")
    scan = {n: g.signature_uses(n) for n in g.node_names}
    g.index_signatures()
    assert {n: g.signature_uses(n) for n in g.node_names} == scan
    assert g.is_protected("id") and g.is_protected("add") and not g.is_protected("neg")
    assert g.protected_nodes() == {"x", "id", "add"}
    assert g.replace_all_uses("id:0", "neg:0") == 1  # the signature output r moves to neg: the index follows
    assert [(side, key, port) for _, side, key, port in g.signature_uses("neg")] == [("output", "r", 0)]
    assert g.signature_uses("id") == [] and g.is_protected("neg") and not g.is_protected("id")
    g.remove_node("id")  # no longer a signature tensor
    indexed = g.signature_uses("neg")
    g.index_signatures(False)
    assert g.signature_uses("neg") == indexed and g.lint() == []
    g.signatures["serving_default"].outputs["r"].name = "out:0"  # by hand, index off: seen at once
    assert g.is_protected("out") and not g.is_protected("neg")


def test_remove_unread_goes_readers_first_keeps_what_is_read_or_protected_and_drops_dangling_inputs():
    gd = _graph().to_graph_def()
    gd.node.extend([make_node("Neg", "d1", ["neg", "missing:0"], attrs={"T": F32}),
                    make_node("Relu", "d2", ["d1"], attrs={"T": F32})])
    g = Graph(gd, signatures=_graph().signatures)
    assert "missing" in g.nx
    with g.recording() as delta:
        removed, kept = g.remove_unread(["d1", "d2", "neg", "add", "ghost", "d2"])
    # d2 first (nothing reads it), then d1 (its reader gone); neg is still read by id, add is a signature output
    assert removed == ["d2", "d1"] and kept == ["neg", "add"]
    assert "missing" not in g.nx, "a dangling input goes with its last reader"
    assert set(delta.before) == {"d1", "d2"} and delta.touched == {"d1", "neg", "missing"}
    assert g.lint() == []
    assert_close(_outputs(g, "add:0"), [np.maximum(-X, 0) + 2.0])


def test_replace_uses_moves_many_tensors_onto_one_and_only_the_ports_named():
    g = Graph()
    g.add_nodes([
        make_node("Placeholder", "x", attrs={"dtype": F32, "shape": tf.TensorShape([2, 3]).as_proto()}),
        *[make_node("Neg", f"n{i}", ["x"], attrs={"T": F32}) for i in range(4)],
        *[make_node("Relu", f"r{i}", [f"n{i}"], attrs={"T": F32}) for i in range(4)],
        make_node("AddN", "sum", [f"r{i}" for i in range(4)], attrs={"T": F32, "N": 4}),
        const("axis", np.int32(1)),
        make_node("Split", "split", ["axis", "x"], attrs={"T": F32, "num_split": 3}),
        make_node("Sub", "d", ["split:2", "split"], attrs={"T": F32}),
        make_node("Neg", "e", ["split:1"], attrs={"T": F32}),
    ])
    before = _outputs(g, "sum:0", "d:0", "e:0")
    with g.recording() as delta:
        count = g.replace_uses({"n1:0": "n0:0", "n2:0": "n0:0", "n3:0": "n0:0", "split:2": "split:0"})
    assert count == 4 and g.lint() == []
    assert g.consumer_nodes("n0") == ["r0", "r1", "r2", "r3"] and not any(g.consumer_nodes(f"n{i}") for i in (1, 2, 3))
    assert list(g.node("d").input) == ["split", "split"] and list(g.node("e").input) == ["split:1"]
    assert delta.touched == {"n0", "n1", "n2", "n3", "split"} and set(delta.before) == {"r1", "r2", "r3", "d"}
    after = _outputs(g, "sum:0", "d:0", "e:0")
    assert_close(after[0], before[0])
    assert_close(after[2], before[2])
    assert_close(after[1], np.zeros((2, 1), np.float32))  # split:0 - split:0


def test_get_follows_the_nodes_through_a_reorder_and_later_edits():
    """``Graph.get`` is the node dict's own ``get``: after ``reorder`` (a new dict) it must read the new one, or it
    would go on answering from the order before (a removed node still found, an added or updated one not)."""
    g = _graph(y="add:0")
    g.reorder(reversed(g.node_names))
    g.replace_all_uses("id:0", "neg:0")
    g.remove_node("id")
    g.add_node(make_node("Relu", "extra", ["add"], attrs={"T": F32}))
    assert g.get("id") is None and "id" not in g
    assert g.get("extra") is g.node("extra") and g.get("out") is g.node("out")
    assert list(g.get("out").input) == ["neg"]  # (the rewired node, stored anew)
    assert all(g.get(n) is node for n, node in g.items())


def test_items_are_the_nodes_in_graph_order_after_a_reorder():
    g = _graph(y="add:0")
    assert list(g.items()) == list(zip(g.node_names, g))
    g.reorder(reversed(g.node_names))
    assert [n for n, _ in g.items()] == g.node_names and all(g.node(n) is node for n, node in g.items())
