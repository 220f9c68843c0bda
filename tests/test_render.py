"""``graphxform render``: DOT text, neighbourhoods, Graphviz output and its errors."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, graph_def_of
from tensorflow.core.framework import graph_pb2

from graphxform.cli import cli, main
from graphxform.core.graph import Graph
from graphxform.inspect.node import NodeNotFoundError
from graphxform.inspect.render import RenderError, neighbourhood, render, select_nodes, to_dot, write_picture

HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz `dot` not installed")
FROZEN_PB = FIXTURES / "tf1_frozen_bn.pb"

_NODE_LINE = re.compile(r'^  "((?:[^"\\]|\\.)*)" \[label="((?:[^"\\]|\\.)*)"(.*)\];$')
_EDGE_LINE = re.compile(r'^  "((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)"(?: \[(.*)\])?;$')


def parse_dot(text: str) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str, str]]]:
    """({node: (label, attrs)}, [(src, dst, attrs)]) from the DOT text to_dot writes."""
    nodes, edges = {}, []
    for line in text.splitlines():
        if m := _NODE_LINE.match(line):
            nodes[m.group(1)] = (m.group(2), m.group(3))
        elif m := _EDGE_LINE.match(line):
            edges.append((m.group(1), m.group(2), m.group(3) or ""))
    return nodes, edges


def small_graph() -> Graph:
    """x -> split (2 outputs) -> a (port 0), b (port 1) -> add -> out (with ^b); 'side' also reads x."""
    import tensorflow as tf

    def build():
        x = tf.compat.v1.placeholder(tf.float32, [4], name="x")
        p0, p1 = tf.split(x, 2, name="split")
        a = tf.negative(p0, name="a")
        b = tf.abs(p1, name="b")
        s = tf.add(a, b, name="add")
        with tf.control_dependencies([b.op]):
            tf.identity(s, name="out")
        tf.square(x, name="side")

    return Graph(graph_def_of(build))


def test_to_dot_labels_ports_and_control_edges():
    g = small_graph()
    nodes, edges = parse_dot(to_dot(g))
    assert set(nodes) == set(g.node_names)
    for name in g.node_names:
        assert nodes[name][0] == f"{name}\\n{g.node(name).op}"  # name + op
    by_pair = {(s, d): a for s, d, a in edges if "dashed" not in a}
    assert "label" not in by_pair[("split", "a")]  # port 0: no label
    assert 'label=":1"' in by_pair[("split", "b")]  # port 1 labelled
    control = [(s, d) for s, d, a in edges if "style=dashed" in a]
    assert control == [("b", "out")]
    # every edge of the graph is drawn exactly once
    assert len(edges) == g.nx.number_of_edges()


@needs_dot
def test_dot_text_is_valid_graphviz():
    text = to_dot(small_graph(), center="add", title='a "quoted" title \\ with backslash')
    proc = subprocess.run(["dot", "-Tcanon"], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_neighbourhood_hops_both_ways_without_siblings():
    g = small_graph()
    assert neighbourhood(g, "add", 0) == {"add"}
    assert neighbourhood(g, "add", 1) == {"a", "b", "add", "out"}
    assert neighbourhood(g, "add", 2) == {"split", "a", "b", "add", "out"}
    # x and split_dim are 3 hops up; "side" is a sibling branch (x's other consumer) and never included
    assert neighbourhood(g, "add", 5) == {"x", "split/split_dim", "split", "a", "b", "add", "out"}
    assert neighbourhood(g, "x", 1) == {"x", "split", "side"}


def test_boundary_nodes_say_how_many_edges_are_hidden():
    g = small_graph()
    keep = neighbourhood(g, "add", 1)
    nodes, edges = parse_dot(to_dot(g, keep, center="add"))
    assert set(nodes) == keep
    assert nodes["a"][0].endswith("\\n… 1 more")  # a's input from split is not drawn
    assert "more" not in nodes["add"][0] and 'fillcolor="#fff59d"' in nodes["add"][1]
    assert all(s in keep and d in keep for s, d, _ in edges)


def test_refuses_big_graph_without_around():
    g = small_graph()
    with pytest.raises(RenderError, match="--around"):
        select_nodes(g, max_nodes=3)
    assert select_nodes(g, around="add", depth=1, max_nodes=4) == {"a", "b", "add", "out"}
    with pytest.raises(RenderError, match="smaller --depth"):
        select_nodes(g, around="add", depth=1, max_nodes=3)


def test_cli_dot_of_frozen_pb(tmp_path):
    if not FROZEN_PB.exists():
        pytest.skip("fixture not made yet")
    out = tmp_path / "g.dot"
    result = CliRunner().invoke(cli, ["render", str(FROZEN_PB), "-o", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    gd = graph_pb2.GraphDef.FromString(FROZEN_PB.read_bytes())
    nodes, edges = parse_dot(out.read_text())
    assert set(nodes) == {n.name for n in gd.node}
    assert len(edges) == sum(len(n.input) for n in gd.node)
    assert f"{len(gd.node)} nodes" in result.output
    # refused past --max-nodes, with advice
    result = CliRunner().invoke(cli, ["render", str(FROZEN_PB), "-o", str(tmp_path / "x.dot"), "--max-nodes", "5"])
    assert isinstance(result.exception, RenderError) and "--around" in str(result.exception)
    assert not (tmp_path / "x.dot").exists()
    # --around draws the neighbourhood only
    out2 = tmp_path / "bn.dot"
    result = CliRunner().invoke(cli, ["render", str(FROZEN_PB), "-o", str(out2), "--around", "bn", "--depth", "1",
                                      "--max-nodes", "10"])
    assert result.exit_code == 0, result.exception
    g = Graph(gd)
    assert set(parse_dot(out2.read_text())[0]) == {"bn"} | set(g.nx.predecessors("bn")) | set(g.nx.successors("bn"))


def test_unknown_around_node_suggests(tmp_path):
    if not FROZEN_PB.exists():
        pytest.skip("fixture not made yet")
    result = CliRunner().invoke(cli, ["render", str(FROZEN_PB), "-o", str(tmp_path / "g.dot"), "--around", "conv_1"])
    assert isinstance(result.exception, NodeNotFoundError) and "conv1" in str(result.exception)


@needs_dot
def test_svg_and_png(tmp_path):
    if not FROZEN_PB.exists():
        pytest.skip("fixture not made yet")
    svg = tmp_path / "g.svg"
    result = CliRunner().invoke(cli, ["render", str(FROZEN_PB), "-o", str(svg), "--json"])
    assert result.exit_code == 0, result.exception
    text = svg.read_text()
    assert "<svg" in text and "</svg>" in text
    titles = set(re.findall(r'<g id="node\d+" class="node">\s*<title>([^<]*)</title>', text))
    gd = graph_pb2.GraphDef.FromString(FROZEN_PB.read_bytes())
    assert titles == {n.name for n in gd.node}
    png = tmp_path / "g.png"
    info = render(Graph(gd), png, around="relu", depth=1)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert info["nodes"] == 3 and info["format"] == "png"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


@needs_dot
def test_dot_failure_leaves_no_file(tmp_path):
    out = tmp_path / "bad.svg"
    with pytest.raises(RenderError, match="failed"):
        write_picture("digraph { this is not dot ", out)
    assert list(tmp_path.iterdir()) == []


def test_missing_dot_message(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    if not FROZEN_PB.exists():
        pytest.skip("fixture not made yet")
    result = CliRunner().invoke(cli, ["render", str(FROZEN_PB), "-o", str(tmp_path / "g.svg")],
                                env={"PATH": str(empty)})
    assert isinstance(result.exception, RenderError)
    msg = str(result.exception)
    assert "apt-get install graphviz" in msg and "brew install graphviz" in msg and ".dot" in msg
    # .dot needs no Graphviz
    result = CliRunner().invoke(cli, ["render", str(FROZEN_PB), "-o", str(tmp_path / "g.dot")],
                                env={"PATH": str(empty)})
    assert result.exit_code == 0 and (tmp_path / "g.dot").exists()
    # the console entry point: exit 2, one line
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(SystemExit) as exc:
        main(["render", str(FROZEN_PB), "-o", str(tmp_path / "g.png")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Graphviz" in err[0]
    assert not (tmp_path / "g.png").exists()


def test_unknown_suffix(tmp_path):
    with pytest.raises(RenderError, match=r"\.svg, \.png or \.dot"):
        render(small_graph(), tmp_path / "g.pdf")


def test_render_estimator_neighbourhood(tmp_path):
    """A real SavedModel: the neighbourhood of the logits, with variable reads and a multi-output op."""
    path = FIXTURES / "estimator_dnn"
    if not path.exists():
        pytest.skip("fixture not made yet")
    from graphxform.model.loader import load

    model = load(path)
    with pytest.raises(RenderError, match="--around"):
        render(model, tmp_path / "all.dot", max_nodes=100)
    info = render(model, tmp_path / "logits.dot", around="dnn/logits/BiasAdd", depth=2)
    nodes, edges = parse_dot((tmp_path / "logits.dot").read_text())
    g = model.graph
    expected = {"dnn/logits/BiasAdd"}
    for step in (g.nx.predecessors, g.nx.successors):
        ring = {"dnn/logits/BiasAdd"}
        for _ in range(2):
            ring = {m for n in ring for m in step(n)}
            expected |= ring
    assert set(nodes) == expected and info["nodes"] == len(expected)
    # signature outputs are drawn with a double border
    assert "peripheries=2" in nodes["head/predictions/probabilities"][1]
    assert np.all([("VarHandleOp" in nodes[n][0]) for n in nodes if n.endswith("/kernel")])
