"""``remove_control_dependencies``: GTT has no C++ test for it; this case follows remove_control_dependencies.cc
(every ``^name`` input is dropped, data inputs stay).
graphxform: ``transforms/remove_control_dependencies.py``."""
from __future__ import annotations

from .conftest import graph_def, node, node_map, transform


def test_remove_control_dependencies():
    """Not a C++ TEST (remove_control_dependencies.cc): every ``^name`` input is dropped, data inputs stay."""
    gd = graph_def(
        node("a", "Const"),
        node("b", "Const", ["^a"]),
        node("c", "Add", ["a", "b", "^b", "^a"]),
    )
    out = node_map(transform(gd, [], ["c"], "remove_control_dependencies"))
    assert list(out["b"].input) == [] and list(out["c"].input) == ["a", "b"]
