"""The rules a newcomer copies: ``transforms/examples/`` and the README's "Writing a rule", run in TensorFlow
before and after, with the cases where they must not fire; and the public face they are written against."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, assert_close, graph_def_of, run
from graphxform.transforms.examples.drop_multiply_by_one import DropMultiplyByOne
from graphxform.transforms.examples.fuse_squared_difference import FuseSquaredDifference

import graphxform
from graphxform.core.graph import Graph
from graphxform.core.signature import Signature, TensorSpec
from graphxform.engine.explain import explain
from graphxform.engine.registry import get_rule, load_rules_file
from graphxform.engine.runner import run_pipeline

X = np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)
Y = np.linspace(3, -1, 6, dtype=np.float32).reshape(2, 3)


def _graph(gd, *outputs: str) -> Graph:
    sig = Signature("serving_default", "tensorflow/serving/predict", {"x": TensorSpec("x:0", 1, [2, 3])},
                    {o: TensorSpec(f"{o}:0", 1, None) for o in outputs})
    return Graph(gd, signatures={"serving_default": sig})


def test_drop_multiply_by_one():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        one = tf.constant(1.0, name="one")
        y = tf.multiply(x, one, name="y")
        tf.nn.relu(tf.multiply(one, y, name="z"), name="out")  # the 1 on the left: the pattern is commutative
        tf.multiply(x, tf.constant(2.0), name="times_two")  # not 1
        tf.multiply(x, tf.ones([3]), name="by_ones")  # a vector of ones: not a scalar (it could broadcast)
        with tf.control_dependencies([y]):
            tf.multiply(x, one, name="ordered")  # a control input: its readers would stop waiting for y

    gd = graph_def_of(build)
    fetches = ["out", "times_two", "by_ones", "ordered"]
    g = _graph(gd, *fetches)
    rule = DropMultiplyByOne()
    report = run_pipeline(g, [rule], debug=True)  # lint and OpDef checks after every rewrite
    assert report.counts == {"drop_multiply_by_one": 2} and "z" not in g
    assert g.input_nodes("out") == ["x"]
    assert g.consumers("y") == [] and g.control_consumers("y") == ["ordered"]  # kept: `ordered` waits for it
    assert_close(run(g, {"x:0": X}, [f"{f}:0" for f in fetches]), run(gd, {"x:0": X}, [f"{f}:0" for f in fetches]))
    reasons = dict(explain(g, rule))
    assert "is 2.0, not 1" in reasons["times_two"]
    assert "has rank 1, not 0" in reasons["by_ones"]
    assert "control inputs" in reasons["ordered"]
    assert get_rule("drop_multiply_by_one") is DropMultiplyByOne


def test_fuse_squared_difference():
    def build():
        a = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        b = tf.compat.v1.placeholder(tf.float32, [2, 3], name="b")
        tf.square(tf.subtract(a, b, name="sub"), name="sq")
        shared = tf.subtract(b, a, name="shared")
        tf.add(tf.square(shared, name="sq_shared"), tf.nn.relu(shared), name="also_read")  # the Sub is read twice
        ia, ib = tf.cast(a, tf.int8), tf.cast(b, tf.int8)
        tf.square(tf.subtract(ia, ib, name="isub"), name="isq")  # SquaredDifference takes no int8

    gd = graph_def_of(build)
    fetches = ["sq:0", "also_read:0"]  # (not isq: Grappler itself would fuse it into an int8 SquaredDifference)
    g = _graph(gd, "sq", "also_read", "isq")
    rule = FuseSquaredDifference()
    report = run_pipeline(g, [rule], debug=True)
    assert report.counts == {"fuse_squared_difference": 1}
    assert g.node("sq").op == "SquaredDifference" and "sub" not in g
    assert g.node("sq_shared").op == "Square" and g.node("isq").op == "Square"
    feeds = {"x:0": X, "b:0": Y}
    assert_close(run(g, feeds, fetches), run(gd, feeds, fetches))
    reasons = dict(explain(g, rule))
    assert "pattern wants exactly one" in reasons["sq_shared"]
    assert "int8" in reasons["isq"]


def _readme_rule_example() -> str:
    """The Python block of the README's "Writing a rule" section (the one that registers a rule)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Writing a rule"):]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    return next(b for b in blocks if "@register" in b)


def test_the_readme_rule_example_runs_as_written(tmp_path):
    code = _readme_rule_example()
    imports = re.findall(r"^from (\S+) import", code, re.M)
    assert imports and all(m == "graphxform" for m in imports), "the example uses public names only"
    path = tmp_path / "my_rules.py"
    path.write_text(code)
    assert load_rules_file(str(path)) == ["drop_double_neg"]

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        tf.nn.relu(tf.negative(tf.negative(x)), name="out")
        tf.negative(x, name="single")  # one Neg: nothing to drop

    gd = graph_def_of(build)
    g = _graph(gd, "out", "single")
    report = run_pipeline(g, [get_rule("drop_double_neg")()], debug=True)
    assert report.counts == {"drop_double_neg": 1} and g.input_nodes("out") == ["x"]
    assert g.node("single").op == "Neg"
    assert_close(run(g, {"x:0": X}, ["out:0", "single:0"]), run(gd, {"x:0": X}, ["out:0", "single:0"]))


def test_rules_files_written_against_the_first_readme_still_load(tmp_path):
    """``graphxform.rule`` and ``graphxform.pattern`` stay as deprecated re-exports of the public names."""
    import graphxform.pattern as old_pattern
    import graphxform.rule as old_rule

    assert old_rule.Rule is graphxform.Rule and old_rule.Replacement is graphxform.Replacement
    assert old_rule.register is graphxform.register and old_pattern.Op is graphxform.Op
    assert "Deprecated" in (old_rule.__doc__ or "") and "Deprecated" in (old_pattern.__doc__ or "")
    path = tmp_path / "old_style.py"
    path.write_text(_readme_rule_example().replace(
        "from graphxform import Any, Match, Op, Replacement, Rule, register",
        "from graphxform.pattern import Any, Op\nfrom graphxform.rule import Match, Replacement, Rule, register"))
    assert "graphxform.rule" in path.read_text()
    assert load_rules_file(str(path)) == ["drop_double_neg"]


@pytest.mark.parametrize("name", graphxform.__all__)
def test_every_public_name_resolves(name):
    assert getattr(graphxform, name) is not None


def test_examples_are_not_registered_as_builtins():
    eps = {ep.value for ep in __import__("importlib.metadata").metadata.entry_points(group="graphxform.rules")}
    assert not any("examples" in v for v in eps)
    assert all(Path(ROOT / "transforms" / f"{v.rsplit('.', 1)[1]}.py").is_file() for v in eps)
