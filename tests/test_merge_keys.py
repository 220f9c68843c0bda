"""merge_duplicates' fast paths: attributes keyed by the bytes after the inputs, the topological order read from the
view. Each is checked against the plain way it replaces, including where the two could part."""
from __future__ import annotations

from collections import deque

import graphxform.transforms.merge_duplicates as md
import numpy as np
from conftest import run
from graphxform.transforms._merge_keys import attrs_tail, stripped_tail
from graphxform.transforms._merge_state import Scan
from graphxform.transforms.merge_duplicates import MergeDuplicates
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import graph_pb2, node_def_pb2, types_pb2

from graphxform.core.graph import Graph
from graphxform.core.names import parse_input
from graphxform.core.opdefs import LOOP_BACK_EDGE_OPS
from graphxform.engine.runner import run_rule_once

X = np.linspace(-1, 1, 6, dtype=np.float32)
_TEXT = st.text(alphabet=st.sampled_from(["a", "/", "_", "é", "名", "7"]), min_size=1, max_size=300)


def _node(name: str, op: str, inputs: list[str], device: str = "", **types: int) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op=op, input=inputs, device=device)
    for key, t in types.items():
        node.attr[key].type = t
    return node


@settings(max_examples=150, deadline=None)
@given(name=_TEXT, op=_TEXT, inputs=st.lists(_TEXT | st.just(""), max_size=5), device=st.sampled_from(["", "/cpu:0"]),
       extra=st.sampled_from(["", "_output_shapes", "debug", "type", "s"]))
def test_bytes_after_the_inputs_are_the_stripped_copy(name, op, inputs, device, extra):
    """Whatever the lengths (one- and two-byte varints) and characters (non-ASCII) of name, op and inputs."""
    node = _node(name, op, inputs, device, T=types_pb2.DT_FLOAT)
    if extra == "_output_shapes":
        node.attr["_output_shapes"].list.shape.add().dim.add(size=3)
    elif extra == "debug":
        node.experimental_debug_info.original_node_names.append("orig")
    elif extra == "type":
        node.experimental_type.type_id = 3
    elif extra == "s":
        node.attr["s"].s = b"x" * 200
    tail = attrs_tail(node, name, op, list(node.input))
    assert tail == stripped_tail(node)
    plain = _node("other", op, [], device, T=types_pb2.DT_FLOAT)
    if extra in ("type", "s"):
        assert tail != stripped_tail(plain)  # (a real attribute difference stays in the key)
    else:
        assert tail == stripped_tail(plain)  # (hints and debug info do not count)


def test_keys_tell_attributes_apart_and_ignore_hints():
    a = _node("a" * 150, "MatMul", ["x", "y"], T=types_pb2.DT_FLOAT)
    b = _node("b", "MatMul", ["x", "y"], T=types_pb2.DT_FLOAT)
    b.attr["_output_shapes"].list.shape.add()
    c = _node("c", "MatMul", ["x", "y"], T=types_pb2.DT_FLOAT)
    c.attr["transpose_a"].b = True
    d = _node("d", "MatMul", ["x", "y"], T=types_pb2.DT_DOUBLE)
    keys = [md._node_key(n, [], [], {}) for n in (a, b, c, d)]
    assert keys[0] == keys[1]
    assert len({keys[0], keys[2], keys[3]}) == 3


def _reference_order(graph: Graph) -> tuple[list[str], list[str]]:
    """The topological order as the full scan told it from parsed inputs (before it read the view): the graph's
    own order when every input names an earlier node (no loop back edge), else Kahn's."""
    names = graph.node_names
    skip = {n for op in LOOP_BACK_EDGE_OPS for n in graph.names_by_op(op)}
    earlier: set[str] = set()
    for name in names:
        if not all(parse_input(i)[0] in earlier for i in graph.node(name).input):
            break
        earlier.add(name)
    else:
        if not skip:
            return list(names), []
    indeg, children = {}, {}
    for name in names:
        count = 0
        for inp in graph.node(name).input:
            src = parse_input(inp)[0]
            if src in skip or src not in graph:
                continue
            children.setdefault(src, []).append(name)
            count += 1
        indeg[name] = count
    ready, order = deque(n for n in names if indeg[n] == 0), []
    while ready:
        name = ready.popleft()
        order.append(name)
        for child in children.get(name, ()):
            indeg[child] -= 1
            if indeg[child] == 0:
                ready.append(child)
    return order, [n for n in names if indeg[n] > 0]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_scan_order_is_the_parsed_inputs_order_after_edges_moved(data):
    """Random DAGs (repeated inputs, control inputs, a loop back edge, a dangling input), then rewired so that the
    view's edge order is no longer the graph's: the view's Kahn order must stay the one of the parsed inputs."""
    n = data.draw(st.integers(3, 14))
    gd = graph_pb2.GraphDef()
    for i in range(n):
        srcs = data.draw(st.lists(st.integers(0, i - 1), max_size=3)) if i else []
        inputs = [f"n{s}" if k % 2 else f"n{s}:0" for k, s in enumerate(srcs)]
        if i and data.draw(st.booleans()):
            inputs.append(f"^n{data.draw(st.integers(0, i - 1))}")
        op = "NextIteration" if i == n - 1 and data.draw(st.booleans()) else "AddN"
        gd.node.add(name=f"n{i}", op=op, input=inputs)
    if data.draw(st.booleans()):
        gd.node.add(name="dangles", op="AddN", input=["missing", "n0"])
    gd.node[1].input.append(f"n{n - 1}")  # a back edge from the last node (a cycle unless it is a NextIteration)
    g = Graph(gd)
    for _ in range(data.draw(st.integers(0, 3))):  # move the uses of one node to another: edges appended anew
        old, new = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, n - 1))
        if old != new:
            g.replace_uses({f"n{old}:0": f"n{new}:0"})
    scan = Scan(g)
    assert (scan.order, scan.cyclic) == _reference_order(g)


def test_survivor_is_the_first_in_graph_order_even_when_the_view_lists_consumers_otherwise():
    """``a`` and ``b`` become duplicates once ``a`` reads ``p``: both are ready when ``p`` is, and ``a`` comes
    first in the graph, so ``a`` survives, although the view now lists ``p``'s consumers as ``b``, ``a``."""
    f32 = types_pb2.DT_FLOAT
    out = _node("out", "AddV2", ["a", "b"], T=f32)
    gd = graph_pb2.GraphDef()
    gd.node.extend([_node("x", "Placeholder", [], dtype=f32), _node("p", "Neg", ["x"], T=f32),
                    _node("q", "Neg", ["x"], T=f32), _node("a", "Exp", ["q"], T=f32),
                    _node("b", "Exp", ["p"], T=f32), out])
    g = Graph(gd, protected=["out"])
    g.replace_uses({"q:0": "p:0"})
    assert list(g.adjacency()[0]["p"]) == ["b", "a"]
    want = run(g, {"x:0": X}, ["out:0"])[0]
    assert run_rule_once(g, MergeDuplicates()) == 1
    assert "a" in g and "b" not in g and list(g.node("out").input) == ["a", "a"]
    assert "q" not in g  # (a duplicate of p too)
    np.testing.assert_allclose(run(g, {"x:0": X}, ["out:0"])[0], want)


def test_full_run_holds_what_held_nodes_holds():
    """The full scan lets go of the weights after keying (a Const keyed by its value is small, so held): its state
    holds exactly the nodes ``held_nodes`` tells, whatever the Consts' sizes, ``_class`` and inputs."""
    from graphxform.core.nodes import const, make_node
    from graphxform.engine.context import Context
    from graphxform.core.signature import TensorSpec
    from graphxform.model.model import Signature
    from graphxform.transforms._graph_edits import HELD_CONST_ELEMENTS, held_nodes

    g = Graph()
    big = np.ones((HELD_CONST_ELEMENTS,), np.float32)
    colocated = const("wc", big)
    colocated.attr["_class"].list.s.append(b"loc:@w")
    g.add_nodes([const("w", big), const("w2", big), colocated, const("mid", np.ones((100,), np.float32)),
                 const("s", np.float32(2)), const("s2", np.float32(2)), const("t", np.array([b"a"], object)),
                 make_node("Mul", "m", ["w", "s"], attrs={"T": types_pb2.DT_FLOAT}),
                 make_node("Mul", "m2", ["w2", "s2"], attrs={"T": types_pb2.DT_FLOAT}), const("fed", big)])
    g.signatures["s"] = Signature("s", "tensorflow/serving/predict", {"fed": TensorSpec("fed:0", 1, [None])},
                                  {"m": TensorSpec("m:0", 1, [None])})  # (a fed Const is never merged)
    ctx = Context()
    reps = MergeDuplicates().run(g, ctx)
    assert sorted(reps[0].remove) == ["m2", "s2", "w2"]
    state = ctx.get("merge_state")
    held = held_nodes(g)
    assert state.seen == held and state.unheld == set(g.node_names) - set(held) == {"w", "w2", "fed"}


def test_small_consts_keyed_through_the_cache_as_without_it():
    """The full scan looks the small Consts' value keys up by their serialized attributes: every Const gets the key
    it gets without (equal values in other encodings alike, other devices, dtypes, attributes or values not)."""
    from graphxform.core.nodes import const
    from graphxform.transforms._merge_keys import scan_key

    def variants():
        for i in range(3):  # (each variant several times: the later ones hit the cache)
            yield const(f"a{i}", np.float32(1.5))
            packed = const(f"p{i}", np.float32(1.5))
            packed.attr["value"].tensor.ClearField("float_val")
            packed.attr["value"].tensor.tensor_content = np.float32(1.5).tobytes()
            yield packed
            yield const(f"z{i}", np.float32(-0.0))
            yield const(f"d{i}", np.float64(1.5))
            yield const(f"v{i}", np.arange(4, dtype=np.int32))
            yield const(f"big{i}", np.arange(100, dtype=np.int32))  # (no exact key: bucketed)
            dev = const(f"dev{i}", np.float32(1.5))
            dev.device = "/cpu:0"
            yield dev
            hinted = const(f"h{i}", np.float32(1.5))
            hinted.attr["_output_shapes"].list.shape.add()
            yield hinted
            tagged = const(f"t{i}", np.float32(1.5))
            tagged.attr["_class"].list.s.append(b"loc:@a0")
            yield tagged

    cache: dict = {}
    nodes = list(variants())
    for node in nodes:
        name = node.name
        assert scan_key(node, name, "Const", [], {}, cache) == scan_key(node, name, "Const", [], {}), name
    keys = {n.name: scan_key(n, n.name, "Const", [], {}, cache) for n in nodes}
    assert keys["a0"] == keys["p1"] == keys["h2"] != keys["z0"]
    assert len({keys[n] for n in ("a0", "z0", "d0", "v0", "dev0", "t0")}) == 6 and not keys["big0"][0]
    assert len(cache) < len(nodes)


_PEAK_OF_A_SCAN = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from graphxform.core.graph import Graph
from graphxform.engine.pipeline import build_pipeline
from graphxform.engine.runner import run_pipeline

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

gd = graph_pb2.GraphDef()
for name in ("w", "v"):  # two weights of different shapes: nothing to compare
    node = gd.node.add(name=name, op="Const")
    node.attr["dtype"].type = 1
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.ones((2048, 4096) if name == "w" else (4096, 2048), np.float32)))
    gd.node.add(name=f"neg_{name}", op="Neg", input=[name]).attr["T"].type = 1
g = Graph(gd)
g.protected.update({"neg_w", "neg_v"})
with open("/proc/self/clear_refs", "w") as f:  # the peak from here on
    f.write("5")
base = status("VmRSS")
run_pipeline(g, build_pipeline("merge_duplicates"))
print(round((status("VmHWM") - base) / 32, 3))
"""


def test_the_scan_copies_no_weight():
    """Two weights nothing compares (different shapes): the scan's peak memory stays far below one of them
    (``ByteSize()``, or serializing a Const to key it, would copy each)."""
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", _PEAK_OF_A_SCAN, root], capture_output=True, text=True, check=True)
    peak = float(out.stdout.split()[-1])  # in 32 MB weights
    assert peak < 0.5, peak
