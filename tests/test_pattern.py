"""Patterns: op alternatives, wildcards, bindings (tensor-exact), Const predicates, commutative inputs, OneOf."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import graph_def_of

from graphxform.core.graph import Graph
from graphxform.engine.pattern import Any, Const, OneOf, Op, anchors_of, depth_of
from graphxform.engine.rule import Match, Replacement, Rule


def _g(build) -> Graph:  # type: ignore[no-untyped-def]
    return Graph(graph_def_of(build))


@pytest.fixture(scope="module")
def g() -> Graph:
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 4], name="x")
        c = tf.constant(np.ones((2, 4), np.float32), name="c")
        w = tf.constant(np.ones((4, 3), np.float32), name="w")
        s = tf.constant(2.0, name="s")
        i = tf.constant([1, 2], tf.int32, name="i")
        tf.raw_ops.Add(x=x, y=c, name="add")
        tf.raw_ops.AddV2(x=x, y=c, name="addv2")
        tf.raw_ops.Mul(x=c, y=x, name="mul_cx")
        tf.raw_ops.Mul(x=x, y=c, name="mul_xc")
        tf.raw_ops.Sub(x=x, y=x, name="sub_xx")
        tf.raw_ops.Sub(x=x, y=c, name="sub_xc")
        mm = tf.matmul(x, w, name="mm")
        tf.nn.relu(mm, name="relu_mm")
        tf.identity(mm, name="mm_again")
        sp = tf.split(x, 2, axis=1, name="split")
        tf.raw_ops.Mul(x=sp[0], y=sp[1], name="mul_split")
        tf.raw_ops.Mul(x=sp[1], y=sp[1], name="sq_split")
        tf.raw_ops.Mul(x=x, y=s, name="scale")
        tf.raw_ops.Neg(x=tf.raw_ops.Neg(x=x, name="neg0"), name="neg1")
        tf.raw_ops.Neg(x=tf.nn.relu(x, name="r"), name="neg2")
        tf.cast(i, tf.float32, name="cast_i")
        with tf.control_dependencies([tf.no_op(name="dep")]):
            tf.raw_ops.Relu(features=c, name="relu_ctrl")

    return _g(build)


def node(g: Graph, name: str):  # type: ignore[no-untyped-def]
    return g.node(name)


# ----------------------------------------------------------------------------- ops and wildcards
def test_op_alternatives_match_each_and_explain_otherwise(g):
    p = Op("Add|AddV2", Any(bind="a"), Any(bind="b"), bind="add")
    for name in ("add", "addv2"):
        b = p.match(g, node(g, name))
        assert not isinstance(b, str)
        assert b["add"].name == name and b["a"].name == "x" and b["b"].name == "c"
    assert p.match(g, node(g, "mul_xc")) == "'mul_xc' is Mul, not Add|AddV2"


def test_wildcard_op_and_any(g):
    b = Op("*", Op("*", bind="inner"), bind="outer").match(g, node(g, "relu_mm"))
    assert b["inner"].name == "mm" and b["outer"].name == "relu_mm"
    # a node without data inputs fails a pattern that wants one
    assert Op("*", Any()).match(g, node(g, "x")) == "'x' has 0 data inputs, pattern wants at least 1"


def test_any_with_port(g):
    p = Op("Mul", Any(bind="a", port=0), Any(bind="b", port=1))
    b = p.match(g, node(g, "mul_split"))
    assert b["a"].name == "split" and b["b"].name == "split"
    assert p.match(g, node(g, "sq_split")) == "'split' output 1 is used, not output 0"


def test_control_inputs_are_not_data_inputs(g):
    b = Op("Relu", Const(bind="c"), exact=True).match(g, node(g, "relu_ctrl"))
    assert b["c"].name == "c"


def test_exact_refuses_extra_inputs(g):
    assert not isinstance(Op("MatMul", Any()).match(g, node(g, "mm")), str)
    assert Op("MatMul", Any(), exact=True).match(g, node(g, "mm")) == \
        "'mm' has 2 data inputs, pattern wants exactly 1"


def test_where_and_single_use(g):
    p = Op("MatMul", where=lambda n: None if n.attr["transpose_a"].b else "not transposed")
    assert p.match(g, node(g, "mm")) == "'mm': not transposed"
    assert Op("MatMul", single_use=True).match(g, node(g, "mm")) == \
        "'mm' has 2 consumers, pattern wants exactly one"
    assert not isinstance(Op("Neg", single_use=True).match(g, node(g, "neg0")), str)


def test_dangling_input_is_a_reason_not_a_crash():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2], name="x")
        tf.nn.relu(x, name="r")

    gd = graph_def_of(build)
    gd.node[1].input[0] = "gone"
    g2 = Graph(gd)
    assert Op("Relu", Any()).match(g2, g2.node("r")) == "'r' input 'gone' names no node"


# ----------------------------------------------------------------------------- bindings
def test_same_binding_must_be_the_same_tensor(g):
    p = Op("Sub|Mul", Any(bind="t"), Any(bind="t"))
    b = p.match(g, node(g, "sub_xx"))
    assert b["t"].name == "x"
    assert p.match(g, node(g, "sub_xc")) == "'t' bound to both 'x:0' and 'c:0'"
    # same node, different outputs: not the same tensor
    assert p.match(g, node(g, "mul_split")) == "'t' bound to both 'split:0' and 'split:1'"
    assert p.match(g, node(g, "sq_split"))["t"].name == "split"


def test_match_full_gives_consumed_tensors(g):
    out = Op("Mul", Any(bind="a"), Any(bind="b"), bind="m").match_full(g, node(g, "mul_split"))
    _, tensors = out
    assert tensors == {"m": "mul_split:0", "a": "split:0", "b": "split:1"}


def test_rule_match_exposes_tensors_and_inputs(g):
    class R(Rule):
        name = "t_r"
        pattern = Op("Mul", Any(bind="a"), Any(bind="b"), bind="m")

    m = R().match(g, node(g, "mul_split"))
    assert isinstance(m, Match)
    assert m.tensor("b") == "split:1" and m.tensor("m") == "mul_split:0"
    assert m.input("m", 1) == "split:1" and m.input("m", 0) == "split:0"


# ----------------------------------------------------------------------------- Const
def test_const_predicates(g):
    assert not isinstance(Const(dtype="float32", rank=2, shape=(4, 3)).match(g, node(g, "w")), str)
    assert not isinstance(Const(dtype=tf.float32, shape=(None, 3)).match(g, node(g, "w")), str)
    assert Const(dtype="int32").match(g, node(g, "w")) == "'w' is DT_FLOAT, not DT_INT32"
    assert Const(rank=0).match(g, node(g, "w")) == "'w' has rank 2, not 0"
    assert Const(shape=(3, None)).match(g, node(g, "w")) == "'w' has shape [4, 3], not [3, '?']"
    assert Const(rank=0).match(g, node(g, "s"))  == {}
    assert Const().match(g, node(g, "x")) == "'x' is Placeholder, not Const"
    assert Const(where=lambda n: "too small").match(g, node(g, "s")) == "'s': too small"
    from tensorflow.core.framework import types_pb2

    assert not isinstance(Const(dtype=types_pb2.DT_INT32).match(g, node(g, "i")), str)


def test_const_pattern_errors():
    with pytest.raises(ValueError, match="not a TensorFlow dtype"):
        Const(dtype="float33")
    with pytest.raises(ValueError, match="contradict"):
        Const(rank=1, shape=(2, 2))


def test_op_pattern_errors():
    with pytest.raises(ValueError, match="op names"):
        Op("")
    with pytest.raises(ValueError, match="op names"):
        Op("Add|")
    with pytest.raises(ValueError, match="exactly two"):
        Op("AddN", Any(), Any(), Any(), commutative=True)
    with pytest.raises(TypeError, match="must be patterns"):
        Op("Add", "x")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- commutative
def test_commutative_tries_both_orders(g):
    p = Op("Mul", Any(bind="x"), Const(bind="c"), commutative=True, bind="m")
    for name in ("mul_cx", "mul_xc"):
        b = p.match(g, node(g, name))
        assert b["x"].name == "x" and b["c"].name == "c", name
    plain = Op("Mul", Any(bind="x"), Const(bind="c"))
    assert not isinstance(plain.match(g, node(g, "mul_xc")), str)
    assert plain.match(g, node(g, "mul_cx")) == "'x' is Placeholder, not Const"


def test_failed_order_leaves_no_bindings_behind(g):
    # The first order binds "a" to c, then fails on x (not a Const); the second must not see that binding.
    p = Op("Mul", Any(bind="a"), Const(bind="k"), commutative=True)
    b = p.match(g, node(g, "mul_cx"))
    assert set(b) == {"a", "k"} and b["a"].name == "x" and b["k"].name == "c"
    failing = Op("Mul", Op("Neg", bind="n"), Const(bind="k"), commutative=True)
    assert isinstance(failing.match(g, node(g, "mul_cx")), str)


# ----------------------------------------------------------------------------- OneOf
def test_one_of_alternatives(g):
    p = Op("Neg", OneOf(Op("Neg", Any(bind="src")), Op("Relu", Any(bind="src")), bind="mid"), bind="top")
    b1 = p.match(g, node(g, "neg1"))
    assert b1["mid"].name == "neg0" and b1["src"].name == "x"
    b2 = p.match(g, node(g, "neg2"))
    assert b2["mid"].name == "r" and b2["src"].name == "x"
    reason = p.match(g, node(g, "neg0"))
    assert reason.startswith("no alternative matches: ") and "'x' is Placeholder, not Neg" in reason


# ----------------------------------------------------------------------------- anchors and depth
def test_anchors_and_depth_of_patterns():
    assert anchors_of(Op("A|B")) == {"A", "B"}
    assert anchors_of(Op("*")) is None
    assert anchors_of(Const()) == {"Const"}
    assert anchors_of(OneOf(Op("A"), Op("B|C"))) == {"A", "B", "C"}
    assert anchors_of(OneOf(Op("A"), Any())) is None
    assert anchors_of(None) is None
    assert depth_of(Op("A")) == 0
    assert depth_of(Op("A", Any(), Op("B", Op("C")))) == 2
    assert depth_of(OneOf(Op("A"), Op("B", Any()))) == 1


def test_rule_subclass_derives_anchors_and_reach_from_its_pattern():
    class R(Rule):
        name = "t_derived"
        pattern = Op("Add|AddV2", Op("Mul", Any(), Const()))

        def rewrite(self, m: Match) -> Replacement:
            return Replacement()

    class Explicit(R):
        name = "t_explicit"
        anchors = frozenset({"AddV2"})

    assert R.anchors == {"Add", "AddV2"} and R.reach == 2
    assert Explicit.anchors == {"AddV2"}


def test_rule_candidates_use_the_anchors(g):
    class R(Rule):
        name = "t_neg"
        pattern = Op("Neg", Any())

    assert sorted(n.name for n in R().candidates(g)) == ["neg0", "neg1", "neg2"]
    assert [n.name for n in R().candidates(g, ["neg1", "x", "missing"])] == ["neg1"]


def test_one_op_pattern_binds_as_the_general_matcher(g):
    """A bare Op (no inputs, where, single_use or exact) binds its anchor without the general matcher: the same
    bindings, tensors and reasons; with any of those it goes the general way."""
    from graphxform.engine.pattern import Pattern

    for pat in (Op("Identity", bind="i"), Op("Identity|Relu"), Op("*", bind="any"), Op("Mul|Neg", bind="m")):
        for n in g:
            assert pat.match_full(g, n) == Pattern.match_full(pat, g, n), (pat, n.name)
    assert Op("Neg", bind="n", single_use=True).match_full(g, node(g, "neg0"))[0] == {"n": node(g, "neg0")}
    assert Op("Neg", where=lambda n: "no").match_full(g, node(g, "neg0")) == "'neg0': no"
    exact = Op("Relu", exact=True).match_full(g, node(g, "relu_mm"))
    assert exact == "'relu_mm' has 1 data inputs, pattern wants exactly 0"

    class Picky(Op):  # (a subclass with a matcher of its own is asked)
        def _match(self, graph, node, port, st):  # type: ignore[no-untyped-def]
            return "picky"

    assert Picky("Neg", bind="n").match_full(g, node(g, "neg0")) == "picky"


def test_match_names_the_nodes_it_binds(g):
    class R(Rule):
        name = "t_matched"
        pattern = Op("Mul", Any(bind="a"), Any(bind="b"), bind="m")

    m = R().match(g, node(g, "mul_xc"))
    assert m.matched(node(g, "mul_xc"), "mul_xc") == ["c", "mul_xc", "x"]
    one = Match(g, node(g, "neg1"), {"n": node(g, "neg1")})
    assert one.matched(node(g, "neg1"), "neg1") == ["neg1"]
    other = Match(g, node(g, "neg1"), {"n": node(g, "neg0")})  # (a match binding another node than the visited)
    assert other.matched(node(g, "neg1"), "neg1") == ["neg0", "neg1"]
