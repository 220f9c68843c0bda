"""Ports of ``tensorflow/tools/graph_transforms/transform_graph_test.cc`` (``TransformGraphTest``: the
``transform_graph`` command, the transform registry, the ``--transforms`` parser, ``ignore_errors``) and of
``tensorflow/tools/graph_transforms/python/transform_graph_test.py`` (the Python ``TransformGraph``)."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest
import tensorflow as tf

import graphxform
from graphxform.core.errors import RuleError
from graphxform.engine import registry as rule_mod
from graphxform.engine.gtt_syntax import parse_transforms

from .conftest import (
    check_expect_suffixes,
    cli,
    const,
    expect_near,
    graph_def,
    iota,
    node,
    read_pb,
    run,
    transform,
    write_pb,
)


def _folding_graph():
    return graph_def(
        const("a_expect_removed", iota([100])),
        const("b_expect_removed", iota([100])),
        node("add_expect_removed", "Add", ["a_expect_removed", "b_expect_removed"], T=tf.float32),
        node("placeholder_expect_remains", "Placeholder", dtype=tf.float32),
        node("output_expect_remains", "Mul", ["add_expect_removed", "placeholder_expect_remains"], T=tf.float32),
    )


def test_constant_folding(tmp_path):
    """TransformGraphTest.TestConstantFolding: ``transform_graph --in_graph=... --out_graph=...
    --inputs=placeholder_expect_remains --outputs=output_expect_remains --transforms=fold_constants``, as
    ``graphxform transform IN.pb OUT.pb --inputs ... --outputs ... --transforms fold_constants``.

    Deliberate difference: the folded Add keeps its name (``add_expect_removed`` is the Const).
    """
    gd = _folding_graph()
    src = write_pb(gd, tmp_path / "in_graphdef.pb")
    dst = tmp_path / "out_graphdef.pb"
    code, _, err = cli("transform", src, dst, "--inputs", "placeholder_expect_remains",
                       "--outputs", "output_expect_remains", "--transforms", "fold_constants")
    assert code == 0, err
    out = read_pb(dst)
    check_expect_suffixes(gd, out, kept_by_graphxform=["add_expect_removed"])
    x = {"placeholder_expect_remains:0": iota([100])}
    expect_near(run(out, x, ["output_expect_remains"])[0], run(gd, x, ["output_expect_remains"])[0], 1e-5)


@pytest.fixture
def clean_registry():
    """A rule registered by a test does not leak into the others."""
    rule_mod.registry()  # the built-ins are loaded before the snapshot
    saved = dict(rule_mod._REGISTRY), dict(rule_mod._ALIASES)
    yield
    rule_mod._REGISTRY.clear()
    rule_mod._REGISTRY.update(saved[0])
    rule_mod._ALIASES.clear()
    rule_mod._ALIASES.update(saved[1])


EMPTY_RULE = textwrap.dedent('''
    from graphxform import Pass, Replacement, register


    @register
    class EmptyGraph(Pass):
        """Replaces the graph by an empty one (transform_graph_test.cc's test_empty_graph_transform)."""

        name = "test_empty_graph_transform"

        def run(self, graph, ctx):
            names = list(graph.node_names)
            return [Replacement(remove=names)] if names else []
''')


@pytest.mark.usefixtures("clean_registry")
def test_transform_registration(tmp_path):
    """TransformGraphTest.TestTransformRegistration: a registered transform runs (the test's
    ``test_empty_graph_transform`` empties the graph); an unknown one is an error.

    Registering is graphxform's way: a rules file passed with ``--rules``.
    """
    gd = graph_def(node("placeholder_expect_remains", "Placeholder", dtype=tf.float32))
    rules = tmp_path / "empty_rule.py"
    rules.write_text(EMPTY_RULE)
    src, dst = write_pb(gd, tmp_path / "in.pb"), tmp_path / "out.pb"
    code, _, err = cli("transform", src, dst, "--rules", rules, "--transforms", "test_empty_graph_transform")
    assert code == 0, err
    assert len(read_pb(dst).node) == 0

    with pytest.raises(RuleError, match="unknown rule 'test_no_such_transform'"):  # GTT: "... not recognized"
        transform(gd, [], [], "test_no_such_transform")
    code, _, err = cli("transform", src, tmp_path / "never.pb", "--transforms", "test_no_such_transform")
    assert code == 2 and "test_no_such_transform" in err and not (tmp_path / "never.pb").exists()


@pytest.mark.parametrize("text, expected", [
    ("foo", [("foo", {})]),
    ("foo bar", [("foo", {}), ("bar", {})]),
    ("foo() bar()", [("foo", {}), ("bar", {})]),
    ("foo(bob_something=sue)", [("foo", {"bob_something": "sue"})]),
    ("bar(a=1, b=2, a=3)", [("bar", {"a": ["1", "3"], "b": "2"})]),
    ('bar(a="1", b="1,2,3", a=3)', [("bar", {"a": ["1", "3"], "b": "1,2,3"})]),
])
def test_parse_transform_parameters(text, expected):
    """TransformGraphTest.TestParseTransformParameters: names, empty parentheses, repeated parameters (a list in
    graphxform, a vector in GTT) and quoted values with commas."""
    assert parse_transforms(text) == expected


def test_parse_escaped_newline():
    """TransformGraphTest.TestParseEscapedNewline: a backslash-newline (which once hung GTT's parser) gives no
    transform: GTT returns an error with an empty list, graphxform raises."""
    with pytest.raises(RuleError, match="looking for a transform name at position 0"):
        parse_transforms("\\\n")


def test_parse_extra_spaces():
    """TransformGraphTest.TestParseExtraSpaces (defined in the C++ file, not registered as a TEST): blanks around
    names are skipped. (Its ``"  foo bar \\\\\\n"`` case is left out: GTT's parser itself rejects the trailing
    backslash, which is why that test is not registered.)"""
    assert parse_transforms(" ") == []
    assert parse_transforms("  foo bar ") == [("foo", {}), ("bar", {})]


@pytest.mark.parametrize("value, ok", [("true", True), ("false", True), (None, True), ("foo", False),
                                       ("TRUE", True)])
def test_should_ignore_errors(value, ok):
    """TransformGraphTest.TestShouldIgnoreErrors: ``ignore_errors`` takes true/false (any case, as GTT lowercases
    it) or nothing; anything else is an error before the transform runs."""
    gd = graph_def(node("x", "Placeholder", dtype=tf.float32), node("y", "Relu", ["x"], T=tf.float32))
    text = "fold_constants" if value is None else f"fold_constants(ignore_errors={value})"
    if ok:
        assert [n.name for n in transform(gd, ["x"], ["y"], text).node] == ["x", "y"]
    else:
        with pytest.raises(RuleError, match="ignore_errors='foo' is not a valid bool"):
            transform(gd, ["x"], ["y"], text)


def test_python_transform_graph():
    """transform_graph_test.py TransformGraphTest.testTransformGraph: ``strip_unused_nodes`` with ``add_op`` as
    the output removes the Relu that reads it."""
    gd = graph_def(
        const("const_op1", [1, 2], shape=[1, 2]),
        const("const_op2", [3, 4], shape=[1, 2]),
        node("add_op", "Add", ["const_op1", "const_op2"], T=tf.float32),
        node("relu_op", "Relu", ["add_op"], T=tf.float32),
    )
    out = graphxform.TransformGraph(gd, [], ["add_op"], ["strip_unused_nodes"])
    assert all(n.op != "Relu" for n in out.node)
    np.testing.assert_array_equal(run(out, {}, ["add_op"])[0], [[4, 6]])
