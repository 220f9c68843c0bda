"""The rule registry: lookups with suggestions, parameters, rules files and the graphxform.rules entry points."""
from __future__ import annotations

import importlib.metadata
import logging
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close, graph_def_of, run

from graphxform.core.errors import RuleError
from graphxform.core.graph import Graph
from graphxform.engine import registry as rule_mod
from graphxform.engine.registry import get_rule, load_rules_file, register, registry
from graphxform.engine.rule import Param, Rule
from graphxform.engine.runner import run_pipeline

BUILTINS = ["fold_batch_norms", "fold_constants", "merge_duplicates", "quantize_weights", "remove_identity",
            "strip_unused"]


@pytest.fixture(autouse=True)
def clean_registry():
    """Rules registered by a test do not leak into the others."""
    registry()
    saved = dict(rule_mod._REGISTRY), dict(rule_mod._ALIASES)
    yield
    rule_mod._REGISTRY.clear()
    rule_mod._REGISTRY.update(saved[0])
    rule_mod._ALIASES.clear()
    rule_mod._ALIASES.update(saved[1])


# ----------------------------------------------------------------------------- lookups
def test_builtins_are_registered_with_gtt_aliases():
    reg = registry()
    for name in BUILTINS:
        assert name in reg
    assert get_rule("remove_nodes").name == "remove_identity"
    assert get_rule("merge_duplicate_nodes").name == "merge_duplicates"
    assert get_rule("strip_unused_nodes").name == "strip_unused"
    assert get_rule("fold_old_batch_norms").name == "fold_batch_norms"


def test_unknown_rule_suggests_close_names():
    with pytest.raises(RuleError, match=r"unknown rule 'fold_constant'\. Did you mean fold_constants") as info:
        get_rule("fold_constant")
    assert "graphxform rules" in str(info.value)
    with pytest.raises(RuleError, match=r"unknown rule 'zzz'\. `graphxform rules`"):
        get_rule("zzz")


# ----------------------------------------------------------------------------- parameters
class P(Rule):
    """Replaces nothing (parameter test)."""

    name = "t_params"
    params = {  # noqa: RUF012 - the Rule API declares params as a class attribute
        "n": Param(int, 3, "a count"),
        "f": Param(float, 0.5, "a ratio"),
        "flag": Param(bool, False, "a switch"),
        "ops": Param(list, ["A"], "op names"),
        "mode": Param(str, "a", "a mode", choices=("a", "b")),
    }


def test_defaults_and_conversion_from_strings():
    r = P()
    assert r.args == {"n": 3, "f": 0.5, "flag": False, "ops": ["A"], "mode": "a"}
    r = P(n="7", f="1e-3", flag="TRUE", ops="X,Y", mode="b")
    assert r.args == {"n": 7, "f": 1e-3, "flag": True, "ops": ["X", "Y"], "mode": "b"}
    assert P(ops=["X", "Y,Z"]).args["ops"] == ["X", "Y", "Z"]  # repeated GTT parameter
    assert P(flag=["false"]).args["flag"] is False
    assert P(n=["4"]).args["n"] == 4
    assert repr(P(n=9)) == "t_params(n=9)"


@pytest.mark.parametrize("kw, message", [
    ({"n": "many"}, r"parameter n='many' is not a valid int"),
    ({"n": 2.5}, r"parameter n=2.5 is not a valid int"),
    ({"f": "x"}, r"parameter f='x' is not a valid float"),
    ({"flag": "maybe"}, r"parameter flag='maybe' is not a valid bool"),
    ({"mode": "c"}, r"parameter mode='c' must be one of \['a', 'b'\]"),
    ({"n": ["1", "2"]}, r"parameter n takes one value, got 2: 1, 2"),
])
def test_bad_parameter_values_are_refused(kw, message):
    with pytest.raises(RuleError, match=message):
        P(**kw)


def test_unknown_parameter_lists_the_known_ones():
    with pytest.raises(RuleError, match=r"rule 't_params' has no parameter 'size' \(parameters: f, flag, mode, n, ops\)"):
        P(size=1)
    with pytest.raises(RuleError, match=r"has no parameter 'minimum_siz'"):
        get_rule("quantize_weights")(minimum_siz=10)


def test_describe_is_json_friendly():
    import json

    d = P.describe()
    assert d["name"] == "t_params" and d["summary"] == "Replaces nothing (parameter test)."
    assert d["params"]["n"] == {"type": "int", "default": 3, "help": "a count", "choices": None}
    assert d["params"]["mode"]["choices"] == ["a", "b"]
    json.dumps(d)
    for name in BUILTINS:  # every built-in documents itself as before -> after
        info = get_rule(name).describe()
        json.dumps(info)
        assert info["summary"].startswith("Replaces"), (name, info["summary"])


# ----------------------------------------------------------------------------- registration
def test_register_refuses_taken_names_and_missing_names():
    class A(Rule):
        name = "remove_identity"

    with pytest.raises(RuleError, match="rule name 'remove_identity' of .*A is taken by RemoveIdentity"):
        register(A)

    class B(Rule):
        name = "t_b"
        aliases = ("remove_nodes",)

    with pytest.raises(RuleError, match="'remove_nodes'.*is taken"):
        register(B)

    class C(Rule):
        pass

    with pytest.raises(RuleError, match="has no name"):
        register(C)


# ----------------------------------------------------------------------------- rules files
# Written against the first README (graphxform.pattern / graphxform.rule): such files keep working.
RULES_FILE = '''
from graphxform.pattern import Any, Op
from graphxform.rule import Replacement, Rule, register


@register
class DropDoubleNeg(Rule):
    """Replaces ``Neg(Neg(x))`` by ``x``."""

    name = "drop_double_neg"
    aliases = ("double_negation",)
    pattern = Op("Neg", Op("Neg", Any(bind="x"), bind="inner"), bind="outer")

    def rewrite(self, m):
        return Replacement(replace={m.tensor("outer"): m.tensor("x")}, remove=[m["outer"].name, m["inner"].name])
'''


def test_rules_file_registers_rules_that_run(tmp_path):
    path = tmp_path / "my_rules.py"
    path.write_text(RULES_FILE)
    assert load_rules_file(str(path)) == ["drop_double_neg"]
    assert get_rule("double_negation").name == "drop_double_neg"
    assert load_rules_file(str(path)) == ["drop_double_neg"]  # loading twice is harmless

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [3], name="x")
        tf.nn.relu(tf.negative(tf.negative(x)), name="out")

    gd = graph_def_of(build)
    g = Graph(gd, protected=["out", "x"])
    x = np.array([-1.0, 0.5, 2.0], np.float32)
    report = run_pipeline(g, [get_rule("drop_double_neg")()])
    assert report.counts == {"drop_double_neg": 1}
    assert [n.op for n in g] == ["Placeholder", "Relu"] and g.lint() == []
    assert_close(run(g, {"x:0": x}, ["out:0"]), run(gd, {"x:0": x}, ["out:0"]))


def test_rules_file_errors_are_clear(tmp_path, caplog):
    with pytest.raises(RuleError, match=r"rules file .*nope\.py does not exist"):
        load_rules_file(str(tmp_path / "nope.py"))
    bad = tmp_path / "bad.py"
    bad.write_text("import no_such_module_xyz\n")
    with pytest.raises(RuleError, match=r"bad\.py failed to import: ModuleNotFoundError: No module named 'no_such_module_xyz'"):
        load_rules_file(str(bad))
    clash = tmp_path / "clash.py"
    clash.write_text("from graphxform import Rule, register\n\n@register\nclass R(Rule):\n    name = 'fold_constants'\n")
    with pytest.raises(RuleError, match=r"clash\.py: rule name 'fold_constants'"):
        load_rules_file(str(clash))
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    with caplog.at_level(logging.WARNING, logger="graphxform.engine.registry"):
        assert load_rules_file(str(empty)) == []
    assert "registered no rule" in caplog.text


# ----------------------------------------------------------------------------- entry points
def test_entry_points_load_modules_and_rule_classes(tmp_path, monkeypatch, caplog):
    (tmp_path / "gx_plugin_mod.py").write_text(RULES_FILE.replace("drop_double_neg", "plugin_double_neg")
                                               .replace("double_negation", "plugin_negation"))
    (tmp_path / "gx_plugin_cls.py").write_text(textwrap.dedent('''
        from graphxform import Rule

        class Unregistered(Rule):
            """Replaces nothing (registered by its entry point)."""
            name = "plugin_by_class"
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [
        importlib.metadata.EntryPoint("mod", "gx_plugin_mod", "graphxform.rules"),
        importlib.metadata.EntryPoint("cls", "gx_plugin_cls:Unregistered", "graphxform.rules"),
        importlib.metadata.EntryPoint("broken", "gx_plugin_missing_xyz", "graphxform.rules"),
    ]

    def fake_entry_points(**kw):  # type: ignore[no-untyped-def]
        assert kw == {"group": "graphxform.rules"}
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(rule_mod, "_loaded", False)
    with caplog.at_level(logging.WARNING, logger="graphxform.engine.registry"):
        reg = registry()
    assert "plugin_double_neg" in reg and "plugin_by_class" in reg
    assert get_rule("plugin_negation").name == "plugin_double_neg"
    assert all(name in reg for name in BUILTINS)  # a broken plugin hides nothing
    assert "could not load rule plugin broken" in caplog.text
