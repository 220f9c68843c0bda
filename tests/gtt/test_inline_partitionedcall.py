"""Port of ``tensorflow/tools/graph_transforms/inline_partitionedcall_test.cc`` (``InlinePartitionedCallTest``).

GTT's ``inline_partitionedcall`` replaces each ``PartitionedCall`` by the body of
its library function (nodes named ``<call>/<node>``). graphxform's loader
inlines TF2 functions when it loads a SavedModel or a GraphDef file;
``transforms/inline_partitionedcall.py`` inlines the calls of a GraphDef handed to
``TransformGraph`` (and calls nested in inlined bodies).
"""
from __future__ import annotations

from google.protobuf import text_format
from tensorflow.core.framework import graph_pb2

from .conftest import transform

GRAPH = """
node { name: "y" op: "Placeholder" }
node { name: "sub/y" op: "Const" }
node { name: "PartitionedCall" op: "PartitionedCall" input: "y" input: "sub/y"
       attr { key: "f" value { func { name: "__inference_simple_add_14" } } } }
node { name: "add/y" op: "Const" }
node { name: "add" op: "AddV2" input: "PartitionedCall" input: "add/y" }
node { name: "Identity" op: "Identity" input: "add" }
library {
  function {
    signature {
      name: "__inference_simple_add_14"
      input_arg { name: "x" type: DT_FLOAT }
      input_arg { name: "y" type: DT_FLOAT }
      output_arg { name: "identity" type: DT_FLOAT }
    }
    node_def { name: "mul" op: "Mul" input: "x" input: "y" }
    node_def { name: "add/y" op: "Const" }
    node_def { name: "add" op: "AddV2" input: "mul:z:0" input: "add/y:output:0" }
    node_def { name: "Identity" op: "Identity" input: "add:z:0" }
    ret { key: "identity" value: "Identity:output:0" }
  }
}
"""


def test_inlining():
    """InlinePartitionedCallTest.Inlining: no PartitionedCall left, 9 nodes (5 + the 4 of the body), every input
    resolves (``IsGraphValid``)."""
    gd = text_format.Parse(GRAPH, graph_pb2.GraphDef())
    out = transform(gd, ["y"], ["Identity"], "inline_partitionedcall")
    assert all(n.op != "PartitionedCall" for n in out.node)
    assert len(out.node) == 9
    names = {n.name for n in out.node}
    assert all(i.lstrip("^").split(":")[0] in names for n in out.node for i in n.input)
