"""``quantize_weights``: store large float32 weights as int8 (or float16) and dequantize them in the graph.

GTT name: ``quantize_weights`` (GTT used one asymmetric ``quint8`` range per
tensor, ``MIN_FIRST``). Here int8 is symmetric and, by default, per output
channel:

- the float ``Const`` ``w`` becomes ``Mul(Cast(w_quantized_const), w_quantized_scale)``
  (int8 values ``round(w / s)``, ``s = max|w| / 127`` per channel, the scale
  shaped to broadcast along the channel axis), keeping the name ``w`` so
  consumers, colocation and signatures are untouched. A weight of more than
  ``chunk_size`` elements is stored flattened in int8 chunks of at most
  ``chunk_size`` elements: ``w = Mul(Reshape(ConcatV2(Cast(part_0), Cast(part_1),
  ..., 0), shape), scale)``.

  Why this form (and not ``Dequantize``): TensorFlow's runtime only treats a
  convolution/matmul weight as constant (oneDNN reorders it once and caches it,
  ``is_filter_const``) when Grappler has folded it into a ``Const`` at load
  time; Grappler folds a node whose output outgrows its inputs only up to
  100 KiB of output (``kMaxConstantSize``), so a whole-tensor ``Dequantize`` or
  ``Cast`` of a weight of 25,600 elements or more stays a runtime op, the runtime's
  later constant folding turns it into a ``Const`` too late, and the weight is
  re-laid out on every call. Each chunk's ``Cast`` is under the limit, and
  ``ConcatV2``/``Reshape``/``Mul`` never outgrow their inputs: the session sees
  one float32 ``Const`` per weight, as in the float graph, while the file
  holds int8 bytes.
- the output-channel axis comes from the consumers: ``Conv2D``/``Conv3D``
  filters the last axis, ``Conv2DBackpropInput`` axis 2, ``MatMul`` ``b``
  axis 1 (axis 0 with ``transpose_b``), ``BatchMatMul*`` the last axis (or
  the one before with ``adj_y``), ``Gather``/``GatherV2`` params axis 0, and
  ``DepthwiseConv2dNative`` axes 2 and 3 together (one scale per
  ``(in, multiplier)`` pair, shaped ``[1, 1, in, mult]``).
  Elementwise consumers (``Mul``, ``Add``, ``BiasAdd`` ...) and ``Einsum``
  accept any axis. Consumers that want different axes get one per-tensor
  scale. ``Identity``/``Snapshot``/``StopGradient`` are looked through.
- an embedding table read only by ``Gather``/``GatherV2`` (params, axis 0,
  ``batch_dims`` 0) is quantized per row and each gather becomes
  ``Mul(Cast(GatherV2(table_int8, ids)), GatherV2(row_scales, ids))``: only
  the looked-up rows are dequantized, so a lookup costs the same whatever
  the table size. Other gathers fall back to the plain form. A sparse
  segment reduction reading the table (``SparseSegmentMean(table, ids, seg)``,
  what ``simplify_embedding_lookup`` makes of ``embedding_lookup_sparse``)
  gets the same rows: ``SparseSegmentMean(rows(Unique(ids):0), Unique(ids):1, seg)``.
- ``dtype=float16``: ``w`` becomes ``Cast(w_float16)``, chunked the same way
  when larger than ``chunk_size`` (for embeddings: ``Cast(GatherV2(table_float16, ids))``).

Never quantized: non-float32 consts, protected nodes, consts smaller than
``minimum_size`` elements, non-finite values, consts read by a use that is
not weight-like (shapes, control flow, ...), and what this rule produced
(the int8/float16 consts, scales, row-scale tables; also the ranges of a
``Dequantize`` from an older version of this rule), so a second round finds
nothing to do.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from graphxform.transforms._int8 import balanced_round, symmetric_int8  # noqa: F401 (public here)
from graphxform.transforms._weight_uses import (
    DEPTHWISE,
    ROW_READER_OPS,
    SPARSE_SEGMENT_OPS,
    Use,
    classify,
    collect_uses,
    dims,
    produced_here,
)

from graphxform import (
    Const,
    Graph,
    Match,
    NodeDef,
    Param,
    Replacement,
    Rule,
    colocation,
    const,
    copy_node,
    make_node,
    register,
    with_colocation,
)
from graphxform.core.errors import RuleError
from graphxform.core.opdefs import attr_type

log = logging.getLogger(__name__)

_FLOAT16_MAX = float(np.finfo(np.float16).max)
#: Grappler folds a node whose output is larger than its inputs only below 100 KiB of output
#: (``kMaxConstantSize`` in tensorflow/core/grappler/optimizers/constant_folding.cc: ``IsFoldableUncached``
#: refuses more, ``CreateNodeDef`` refuses ``>=``). Widening each stored chunk of at most this many elements to
#: float32 (96 KiB) stays below it, so Grappler folds the whole dequantization into one float32 ``Const`` when a
#: session (or ``tf.function``) is created, before the oneDNN layout pass decides whether a filter is constant
#: (``is_filter_const``: filter reordered once and cached, not on every call).
FOLD_CHUNK_ELEMENTS = 24 * 1024


@dataclass
class _Plan:
    """What ``check`` decided for one const; ``rewrite`` builds nodes from it."""

    uses: list[Use]
    chain: list[str]  # pass-through nodes between the const and its uses
    axis: int | str | None  # channel axis of the plain form (None: per-tensor)
    embedding: bool
    notes: list[str] = field(default_factory=list)
    colocated: list[str] = field(default_factory=list)  # nodes with _class loc:@ the const or its chain


_F32, _F16, _I8, _I32 = tf.float32, tf.float16, tf.int8, tf.int32


def _const(name: str, array: np.ndarray, dtype: tf.DType, device: str, ctrl: list[str]) -> NodeDef:
    return const(name, array, dtype, device=device, control_inputs=ctrl)


def _make_node(name: str, op: str, inputs: list[str], device: str = "", **attrs: object) -> NodeDef:
    return make_node(op, name, inputs, attrs=attrs, device=device)


def _recolocate(node: NodeDef, gone: set[str], target: str) -> NodeDef:
    """``node`` colocated with ``target`` instead of the nodes in ``gone`` (a copy)."""
    return with_colocation(node, [target if t in gone else t for t in colocation(node)])


class _Names:
    """Fresh node names for one replacement (``graph.unique_name`` does not reserve)."""

    def __init__(self, graph: Graph) -> None:
        self.graph, self.taken = graph, set()

    def __call__(self, base: str) -> str:
        name, i = self.graph.unique_name(base), 0
        while name in self.taken:
            i += 1
            name = self.graph.unique_name(f"{base}_{i}")
        self.taken.add(name)
        return name


@register
class QuantizeWeights(Rule):
    """Replaces a float32 ``Const`` weight ``w`` by ``Mul(Cast(int8 Const), scale)`` (per output channel).

    Weights over ``chunk_size`` elements are stored in int8 chunks:
    ``Mul(Reshape(ConcatV2(Cast(part_0), ..., Cast(part_k), 0), shape), scale)``,
    a form Grappler folds back into one float32 ``Const`` when the model is loaded.

    Embedding tables read only by ``GatherV2(w, ids)`` become
    ``Cast(GatherV2(w_int8, ids)) * GatherV2(row_scales, ids)`` (a
    ``SparseSegment*`` reduction of the table reads those rows of its unique ids).
    ``dtype=float16`` gives ``Cast(float16 Const)`` instead. See the module
    docstring for the axis chosen per consumer and what is never quantized.
    """

    name = "quantize_weights"
    pattern = Const(dtype=tf.float32, bind="weight")
    #: Runs after the other rules reached their fixpoint: constant folding would fold the weights back.
    final = True
    params = {
        "dtype": Param(str, "int8", "storage type of the weights", choices=("int8", "float16")),
        "per_tensor": Param(bool, False, "int8: one scale per tensor instead of one per output channel"),
        "minimum_size": Param(int, 1024, "consts with fewer elements are left as they are"),
        "chunk_size": Param(int, FOLD_CHUNK_ELEMENTS, "elements per stored int8/float16 chunk (0: one chunk); "
                            "small enough chunks let Grappler fold the float weight back at load time"),
    }

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        if self.args["chunk_size"] < 0:
            raise RuleError(f"quantize_weights: chunk_size must be >= 0 (0: one chunk), "
                            f"not {self.args['chunk_size']}")

    # ------------------------------------------------------------------ check
    def check(self, match: Match) -> str | None:
        plan = self._plan(match)
        if isinstance(plan, str):
            return plan
        match.extra["plan"] = plan
        return None

    def _plan(self, match: Match) -> _Plan | str:
        graph, node = match.graph, match.anchor  # a float32 Const (the pattern)
        name = node.name
        shape = dims(node)
        size = int(np.prod(shape)) if shape else 1
        minimum = self.args["minimum_size"]
        if size < minimum or size == 0:
            return f"{name!r} has {size} elements, fewer than minimum_size={minimum}"
        if graph.is_protected(name):
            return f"{name!r} is protected (signature tensor, init op or listed by the user)"
        raw, chain = collect_uses(graph, name)
        if not raw:
            return f"{name!r} has no data consumers (strip_unused removes dead consts)"
        for n in chain:
            if graph.is_protected(n):
                return f"{name!r} is read through {n!r}, which is protected"
        uses: list[Use] = []
        for use_node, index in raw:
            use = classify(graph, use_node, index, shape)
            if isinstance(use, str):
                return f"{name!r}: {use}"
            mine = produced_here(graph, use)
            if mine:
                return f"{name!r}: {mine}"
            uses.append(use)
        value = graph.const_value(name)
        if not np.isfinite(value).all():
            return f"{name!r} holds inf or nan values"
        if self.args["dtype"] == "float16":
            peak = max(float(value.max()), -float(value.min()))
            if peak > _FLOAT16_MAX:
                return f"{name!r} holds values up to {peak:g}, beyond float16's range ({_FLOAT16_MAX:g})"
        plan = _Plan(uses, chain, None, False)
        plan.embedding = self._embedding_ok(graph, name, shape, plan)
        if self.args["dtype"] == "int8" and not self.args["per_tensor"]:
            prefs = {u.axis for u in uses if u.axis is not None}
            if len(prefs) == 1:
                plan.axis = prefs.pop()
            elif len(prefs) > 1:
                plan.notes.append(f"consumers want different channel axes {sorted(map(str, prefs))}: per-tensor")
        for note in plan.notes:
            log.debug("quantize_weights %s: %s", name, note)
        return plan

    def _embedding_ok(self, graph: Graph, name: str, shape: list[int], plan: _Plan) -> bool:
        """Whether every use is a gather the row path can rewrite (else notes say why not)."""
        if not all(u.node.op in ROW_READER_OPS for u in plan.uses):
            return False
        bad = [u.gather_reason for u in plan.uses if not u.gather_ok]
        if bad:
            plan.notes.append(f"{bad[0]}: whole table dequantized")
            return False
        if not shape:
            return False
        for n in [name, *plan.chain]:
            if graph.control_consumers(n):
                plan.notes.append(f"{n!r} has control consumers: whole table dequantized")
                return False
        gone = {name, *plan.chain}
        for other in graph:  # nodes colocated with the table follow it to the int8 table
            if other.name not in gone and "_class" in other.attr and any(
                    loc.startswith(b"loc:@") and loc[5:].decode() in gone for loc in other.attr["_class"].list.s):
                plan.colocated.append(other.name)
        return True

    # ---------------------------------------------------------------- rewrite
    def rewrite(self, match: Match) -> Replacement:
        plan = match.extra.get("plan")
        if plan is None:
            plan = self._plan(match)
            if isinstance(plan, str):
                return Replacement()
        graph, node = match.graph, match.anchor
        if plan.embedding:
            return self._rewrite_rows(graph, node, plan)
        return self._rewrite_plain(graph, node, plan)

    def _rewrite_plain(self, graph: Graph, node: NodeDef, plan: _Plan) -> Replacement:
        """``w`` keeps its name and becomes ``Mul(Cast(int8), scale)`` (or ``Cast`` of float16) over stored chunks."""
        name, device = node.name, node.device
        ctrl = graph.control_inputs(name)
        names = _Names(graph)
        value = graph.const_value(name)
        rep = Replacement()
        keep_attrs = {k: v for k, v in node.attr.items() if k.startswith("_")}
        chunk = self.args["chunk_size"]
        if self.args["dtype"] == "float16":
            stored, dtype, scale = value.astype(np.float16), _F16, None
        else:
            axis, shape = plan.axis, value.shape
            if axis == DEPTHWISE:  # one channel per (in, multiplier) pair: quantize [h, w, in*mult] on axis 2
                q, max_abs = symmetric_int8(value.reshape(shape[0], shape[1], shape[2] * shape[3]), 2)
                q, bshape = q.reshape(shape), (1, 1, shape[2], shape[3])
            else:
                q, max_abs = symmetric_int8(value, axis)  # type: ignore[arg-type]
                bshape = () if axis is None else tuple(shape[axis] if i == axis else 1 for i in range(value.ndim))
            stored, dtype = q, _I8
            scale = (max_abs / np.float32(127.0)).astype(np.float32).reshape(bshape)
        if scale is None:  # float16: the widening node itself is the weight
            new = self._widen(names, name, stored, dtype, device, ctrl, chunk, rep, last=name)
            new.input.extend("^" + c for c in ctrl)
        else:
            widened = self._widen(names, name, stored, dtype, device, ctrl, chunk, rep, last=None)
            sc = _const(names(f"{name}_quantized_scale"), scale, _F32, device, ctrl)
            rep.add += [widened, sc]
            new = _make_node(name, "Mul", [widened.name, sc.name, *("^" + c for c in ctrl)], device, T=_F32)
        for k, v in keep_attrs.items():
            new.attr[k].CopyFrom(v)
        rep.update.append(new)
        return rep

    @staticmethod
    def _widen(names: _Names, name: str, stored: np.ndarray, dtype: tf.DType, device: str, ctrl: list[str],
               chunk: int, rep: Replacement, last: str | None) -> NodeDef:
        """The node computing ``float32(stored)`` from int8/float16 consts of at most ``chunk`` elements each.

        One chunk: ``Cast(const)``. More: ``Reshape(ConcatV2(Cast(part_0), ..., 0), shape)`` over the
        flattened value. The nodes before it go to ``rep.add``; the returned node, named ``last`` (a fresh
        name if ``None``), is the caller's to place.
        """
        suffix = "quantized_const" if dtype is _I8 else "float16"
        n_parts = -(-stored.size // chunk) if chunk > 0 else 1
        if n_parts <= 1:
            src = _const(names(f"{name}_{suffix}"), stored, dtype, device, ctrl)
            rep.add.append(src)
            return _make_node(last or names(f"{name}_float"), "Cast", [src.name], device,
                              SrcT=dtype, DstT=_F32, Truncate=False)
        casts = []
        for i, part in enumerate(np.array_split(stored.reshape(-1), n_parts)):
            src = _const(names(f"{name}_{suffix}_part{i}"), part, dtype, device, ctrl)
            cast = _make_node(names(f"{name}_float_part{i}"), "Cast", [src.name], device,
                              SrcT=dtype, DstT=_F32, Truncate=False)
            rep.add += [src, cast]
            casts.append(cast.name)
        axis = _const(names(f"{name}_concat_axis"), np.array(0, np.int32), _I32, device, ctrl)
        concat = _make_node(names(f"{name}_float_flat"), "ConcatV2", [*casts, axis.name], device,
                            N=len(casts), T=_F32, Tidx=_I32)
        shp = _const(names(f"{name}_shape"), np.array(stored.shape, np.int32), _I32, device, ctrl)
        rep.add += [axis, concat, shp]
        return _make_node(last or names(f"{name}_float"), "Reshape", [concat.name, shp.name], device,
                          T=_F32, Tshape=_I32)

    def _rewrite_rows(self, graph: Graph, node: NodeDef, plan: _Plan) -> Replacement:
        """Each gather of ``w`` reads int8 (or float16) rows and dequantizes only those."""
        name, device = node.name, node.device
        names = _Names(graph)
        value = graph.const_value(name)
        ctrl_w = graph.control_inputs(name)  # keeps the tables in the const's control-flow frame
        rep = Replacement()
        scales = None
        if self.args["dtype"] == "float16":
            table = _const(names(f"{name}_float16"), value.astype(np.float16), _F16, device, ctrl_w)
            rep.add.append(table)
        else:
            per_tensor = self.args["per_tensor"]
            q, max_abs = symmetric_int8(value, None if per_tensor else 0)
            table = _const(names(f"{name}_quantized_const"), q, _I8, device, ctrl_w)
            scale = max_abs / np.float32(127.0)
            if not per_tensor:
                scale = scale.reshape((-1,) + (1,) * (value.ndim - 1))
            scales = _const(names(f"{name}_quantized_scale"), scale.astype(np.float32), _F32, device, ctrl_w)
            rep.add += [table, scales]
        for use in plan.uses:
            g = use.node
            if g.op in SPARSE_SEGMENT_OPS:
                self._rewrite_segment_rows(graph, g, table, scales, names, rep)
                continue
            data = graph.data_inputs(g.name)
            ctrl = ["^" + c for c in graph.control_inputs(g.name)]
            ids = data[1:]
            attrs = {k: v for k, v in g.attr.items() if k != "_output_shapes"}  # row scales differ in shape
            stored = tf.as_dtype(attr_type(table, "dtype"))
            rows = _make_node(names(f"{g.name}_{'int8' if scales is not None else 'float16'}_rows"), g.op,
                              [table.name, *ids], g.device, **{**attrs, "Tparams": stored})
            src = _I8 if scales is not None else _F16
            if scales is None:
                new = _make_node(g.name, "Cast", [rows.name, *ctrl], g.device, SrcT=src, DstT=_F32, Truncate=False)
                rep.add.append(rows)
            else:
                cast = _make_node(names(f"{g.name}_rows_float"), "Cast", [rows.name], g.device,
                                  SrcT=src, DstT=_F32, Truncate=False)
                rep.add += [rows, cast]
                if self.args["per_tensor"]:
                    factor = scales.name
                else:
                    row_scales = _make_node(names(f"{g.name}_row_scales"), g.op, [scales.name, *ids], g.device,
                                            **{**attrs, "Tparams": _F32})
                    rep.add.append(row_scales)
                    factor = row_scales.name
                new = _make_node(g.name, "Mul", [cast.name, factor, *ctrl], g.device, T=_F32)
            if "_class" in g.attr:
                new.attr["_class"].CopyFrom(g.attr["_class"])
            rep.update.append(new)
        gone = {name, *plan.chain}
        users = {u.node.name for u in plan.uses}
        rep.update += [copy_node(graph.node(n)) for n in plan.colocated if n not in users]
        rep.add = [_recolocate(n, gone, table.name) if colocation(n) else n for n in rep.add]
        rep.update = [_recolocate(n, gone, table.name) if colocation(n) else n for n in rep.update]
        rep.remove += [*reversed(plan.chain), name]
        return rep

    def _rewrite_segment_rows(self, graph: Graph, g: NodeDef, table: NodeDef, scales: NodeDef | None,
                              names: _Names, rep: Replacement) -> None:
        """``SparseSegment*(w, ids, seg)`` becomes ``SparseSegment*(rows(Unique(ids):0), Unique(ids):1, seg)``,
        ``rows`` the dequantized int8 (float16) rows of the unique ids: only the rows read are widened."""
        data = graph.data_inputs(g.name)
        ctrl = ["^" + c for c in graph.control_inputs(g.name)]
        idx = tf.as_dtype(attr_type(g, "Tidx", tf.int32.as_datatype_enum))
        dev = g.device
        uniq = _make_node(names(f"{g.name}/unique_ids"), "Unique", [data[1]], dev, T=idx, out_idx=_I32)
        axis = _const(names(f"{g.name}/rows_axis"), np.array(0, np.int32), _I32, dev, [])
        stored = tf.as_dtype(attr_type(table, "dtype"))
        gather = {"Tindices": idx, "Taxis": _I32, "batch_dims": 0}
        rows = _make_node(names(f"{g.name}/{'int8' if scales is not None else 'float16'}_rows"), "GatherV2",
                          [table.name, f"{uniq.name}:0", axis.name], dev, Tparams=stored, **gather)
        cast = _make_node(names(f"{g.name}/rows_float"), "Cast", [rows.name], dev, SrcT=stored, DstT=_F32,
                          Truncate=False)
        rep.add += [uniq, axis, rows, cast]
        deq = cast
        if scales is not None:
            factor = scales.name
            if not self.args["per_tensor"]:
                row_scales = _make_node(names(f"{g.name}/row_scales"), "GatherV2",
                                        [scales.name, f"{uniq.name}:0", axis.name], dev, Tparams=_F32, **gather)
                rep.add.append(row_scales)
                factor = row_scales.name
            deq = _make_node(names(f"{g.name}/rows_dequantized"), "Mul", [cast.name, factor], dev, T=_F32)
            rep.add.append(deq)
        new = copy_node(g)
        del new.input[:]
        new.input.extend([deq.name, f"{uniq.name}:1", *data[2:], *ctrl])
        new.attr["Tidx"].type = _I32.as_datatype_enum
        rep.update.append(new)


__all__ = ["FOLD_CHUNK_ELEMENTS", "QuantizeWeights", "balanced_round", "symmetric_int8"]
