"""``backport_tensor_array_v3`` (GTT): ``TensorArray*V3`` ops back to their ``V2`` forms."""
from __future__ import annotations

import numpy as np

from graphxform import Match, Replacement, Rule, const, copy_node, register
from graphxform.core.opdefs import op_def

#: The ops that become ``<op>V2``; the first two lose their second (``flow``) output.
V3_OPS = frozenset({
    "TensorArrayV3", "TensorArrayGradV3", "TensorArrayWriteV3", "TensorArrayReadV3", "TensorArrayGatherV3",
    "TensorArrayScatterV3", "TensorArrayConcatV3", "TensorArraySplitV3", "TensorArraySizeV3", "TensorArrayCloseV3",
})
_WITH_FLOW = frozenset({"TensorArrayV3", "TensorArrayGradV3"})


@register
class BackportTensorArrayV3(Rule):
    """Replaces ``TensorArrayV3`` / ``TensorArrayGradV3`` and every ``TensorArray*V3`` op by its ``V2`` form.

    GTT's ``backport_tensor_array_v3``. ``TensorArrayV3`` and ``TensorArrayGradV3`` have a second output (the
    ``flow``) their V2 forms lack: its readers read ``<name>/replacement_flow_node``, a float ``Const`` 1.0, as in
    GTT. Attributes the V2 op does not declare (``identical_element_shapes``) are dropped, so TensorFlow's
    loader accepts the node (GTT keeps them).
    """

    name = "backport_tensor_array_v3"
    anchors = V3_OPS

    def rewrite(self, match: Match) -> Replacement:
        graph, old = match.graph, match.anchor
        v2 = old.op[:-1] + "2"
        node = copy_node(old, op=v2)
        d = op_def(v2)
        if d is not None:
            declared = {a.name for a in d.attr}
            for key in [k for k in node.attr if k not in declared and not k.startswith("_")]:
                del node.attr[key]
        rep = Replacement(update=[node])
        flow_used = 1 in graph.output_ports(old.name) or any(p == 1 for *_, p in graph.signature_uses(old.name))
        if old.op in _WITH_FLOW and flow_used:
            flow = const(graph.unique_name(f"{old.name}/replacement_flow_node"), np.float32(1.0))
            rep.add.append(flow)
            rep.replace[f"{old.name}:1"] = f"{flow.name}:0"
        return rep


__all__ = ["BackportTensorArrayV3", "V3_OPS"]
