"""``graphxform render MODEL -o out.svg``: draw the graph or a node's neighbourhood with Graphviz."""
from __future__ import annotations

from pathlib import Path

import click

from graphxform.cli.common import StageProgress, emit_json, json_option, print_line, tags_option


@click.command("render")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="Picture to write: .svg or .png (needs Graphviz's `dot`) or .dot (DOT text, no dependency).")
@click.option("--around", default=None, metavar="NODE", help="Draw only the nodes within --depth hops of NODE.")
@click.option("--depth", type=click.IntRange(min=0), default=2, show_default=True,
              help="Hops upstream and downstream of --around NODE.")
@click.option("--max-nodes", type=click.IntRange(min=1), default=500, show_default=True,
              help="Refuse to draw more nodes than this.")
@tags_option
@json_option
def render_cmd(model_path: Path, output: Path, around: str | None, depth: int, max_nodes: int, tags: str | None,
               as_json: bool) -> None:
    """Draw the graph, or the neighbourhood of one node, with Graphviz.

    Nodes show name and op; edges from an output other than 0 are labelled
    ``:k``; control edges are dashed; nodes with edges left out say ``… n more``.

    \b
    Examples:
      graphxform render fixtures/tf1_frozen_bn.pb -o bn.svg
      graphxform render fixtures/estimator_dnn -o logits.svg --around dnn/logits/BiasAdd --depth 3
      graphxform render model.pb -o graph.dot   # no Graphviz needed; `dot -Tpdf graph.dot -o graph.pdf` later
    """
    from graphxform.inspect.render import dot_program, output_format, render
    from graphxform.inspect.summary import load_for_inspect

    if output_format(output) != "dot":
        dot_program()  # say Graphviz is missing before loading the model
    with StageProgress() as progress:
        progress.update(f"loading {model_path}")
        model = load_for_inspect(model_path, tags)
        progress.update(f"drawing {output}")
        result = render(model, output, around=around, depth=depth, max_nodes=max_nodes)
    if as_json:
        emit_json(result)
    else:
        print_line(f"wrote {result['output']} ({result['nodes']} nodes, {result['edges']} edges)", markup=False,
                   err=True)
