"""Termination of a run: a hard step limit, and the detection of rules that undo each other.

An incremental fingerprint of the graph — the XOR of a hash of every node, updated only for the nodes a
rewrite touches — is recorded after every rewrite (the last :data:`WINDOW` states) and at every rule boundary
(all of them). A graph that returns to an earlier state means rules undo each other: the error names them and
shows where they fired. Past ``max_steps`` rewrites the error names the busiest rules and anchors.
"""
from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping

from tensorflow.core.framework import node_def_pb2, tensor_pb2

from graphxform.core.nodes import dtype_itemsize, tensor_nbytes, with_attrs
from graphxform.engine.report import AppliedRewrite, RunReport

#: Per-step fingerprints kept for oscillation detection between rule boundaries.
WINDOW = 512


#: A Const whose value is at least this many bytes is hashed as its value's bytes beside the rest of the node.
BIG_CONST_BYTES = 1 << 16


def node_hash(node: node_def_pb2.NodeDef) -> int:
    """A hash of ``node``'s content. A big ``Const`` is not serialized whole (the serialization's buffers take two
    to three times its value): its value's bytes are hashed beside a serialization of the rest."""
    value = node.attr.get("value") if node.op == "Const" else None  # (indexing a proto map would insert the key)
    if value is not None and value.HasField("tensor"):
        tensor = value.tensor
        if dtype_itemsize(tensor.dtype) is not None and tensor_nbytes(tensor) >= BIG_CONST_BYTES:
            shell = with_attrs(node, value=None)
            rest = shell.attr["value"].tensor
            for field in tensor.DESCRIPTOR.fields:  # (not ListFields: it would read tensor_content too)
                name = field.name
                if name == "tensor_content":
                    continue
                item = getattr(tensor, name)
                if field.message_type is not None and field.label != field.LABEL_REPEATED:
                    if tensor.HasField(name):
                        getattr(rest, name).CopyFrom(item)
                elif item:
                    rest.MergeFrom(tensor_pb2.TensorProto(**{name: item}))
            return hash((shell.SerializeToString(deterministic=True), tensor.tensor_content))
    return hash(node.SerializeToString(deterministic=True))


class NodeHashes:
    """The fingerprint's node hashes, each computed once: a hash of the content of every node a rewrite stored,
    cached with the stored ``NodeDef`` (stored nodes never change, so a cached hash never goes stale).

    A node the run started with is never serialized (a weight ``Const`` of 100 MB would cost more to hash than
    to fold): it stands for itself by a hash of its name, and a rewrite that changes it is told from one that
    stores an equal node by comparing the two protos (which stops at the first difference). A graph returning
    to its first state exactly is then seen one cycle later, when a state made by rewrites comes back.
    """

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str, tuple[node_def_pb2.NodeDef, int]] = {}

    def _stored(self, name: str, node: node_def_pb2.NodeDef) -> int:
        h = hash(node.SerializeToString(deterministic=True)) if node.op != "Const" else node_hash(node)
        self._cache[name] = (node, h)
        return h

    def change(self, before: Mapping[str, node_def_pb2.NodeDef | None],
               get: Callable[[str], node_def_pb2.NodeDef | None]) -> tuple[int, list[str]]:
        """``(fingerprint delta, nodes changed or added)`` of a rewrite, from the nodes it changed as they were
        (``before``; ``None``: added by it) and as they are now (``get``)."""
        delta = 0
        changed: list[str] = []
        added: list[str] = []
        cache = self._cache
        for name, old in before.items():
            new = get(name)
            if new is old:
                continue
            if old is None:
                delta ^= self._stored(name, new)  # type: ignore[arg-type]
                added.append(name)
                continue
            entry = cache.get(name)
            if new is None:  # removed
                delta ^= entry[1] if entry is not None and entry[0] is old else hash(("\0original node", name))
                if entry is not None:
                    del cache[name]
                continue
            if entry is not None and entry[0] is old:
                h_old = entry[1]
            elif old == new:  # a node the run started with, stored again as it was
                continue
            else:
                h_old = hash(("\0original node", name))
            h_new = self._stored(name, new)
            if h_new == h_old:
                continue
            delta ^= h_old ^ h_new
            changed.append(name)
        changed.extend(added)
        return delta, changed


def fingerprint_change(before: Mapping[str, node_def_pb2.NodeDef | None],
                       get: Callable[[str], node_def_pb2.NodeDef | None],
                       added: Iterable[str]) -> tuple[int, list[str], set[str]]:
    """What a rewrite changed, from the nodes it could touch as they were (``before``; ``None``: not there yet)
    and as they are now (``get``), and the names it ``added``: ``(fingerprint delta, nodes changed or added,
    input strings that appeared or disappeared)``. The graph stores a new ``NodeDef`` on every change, so an
    unchanged object means an untouched node."""
    delta = 0
    changed: list[str] = []
    touched: set[str] = set()
    for name, old in before.items():
        new = get(name)
        if new is old or old is None:  # untouched, or added by this replacement: counted below
            continue
        h_old = node_hash(old)
        if new is None:  # removed
            delta ^= h_old
            touched.update(old.input)
            continue
        h_new = node_hash(new)
        if h_old == h_new:
            continue
        delta ^= h_old ^ h_new
        changed.append(name)
        if old.input != new.input:
            touched.update(set(old.input).symmetric_difference(new.input))
    for name in added:
        new = get(name)
        if new is not None:
            delta ^= node_hash(new)
            changed.append(name)
    return delta, changed, touched


class Termination:
    """The fingerprints seen in the current stage, and the messages of a run that does not terminate."""

    def __init__(self, report: RunReport, max_steps: int | None) -> None:
        self.report = report
        self.max_steps = max_steps
        self.window: deque[tuple[int, int]] = deque()
        self.window_index: dict[int, int] = {}
        self.boundaries: dict[int, int] = {}
        self.start_stage(0, 0)

    def start_stage(self, fp: int, steps: int) -> None:
        """A stage may legitimately return to a state an earlier stage had: states are tracked per stage."""
        self.window.clear()
        self.window.append((fp, steps))
        self.window_index = {fp: steps}
        self.boundaries = {fp: steps}

    def after_step(self, fp: int, steps: int) -> str | None:
        """Record the state after rewrite ``steps``; the reason the run must stop, if it must."""
        if self.max_steps is not None and steps > self.max_steps:
            return self._step_limit_message(steps)
        prev = self.window_index.get(fp)
        if prev is not None and prev != steps:
            return self._oscillation_message(prev)
        self.window.append((fp, steps))
        self.window_index[fp] = steps
        if len(self.window) > WINDOW:
            old_fp, old_step = self.window.popleft()
            if self.window_index.get(old_fp) == old_step:
                del self.window_index[old_fp]
        return None

    def at_boundary(self, fp: int, steps: int) -> str | None:
        """Record the state after a rule's turn; the reason the run must stop, if it must."""
        prev = self.boundaries.get(fp)
        if prev is not None and prev != steps:
            return self._oscillation_message(prev)
        self.boundaries[fp] = steps
        return None

    def _recent(self, since_step: int) -> list[AppliedRewrite]:
        out = []
        for rec in reversed(self.report.applied):
            if rec.step <= since_step:
                break
            out.append(rec)
        out.reverse()
        return out

    def _oscillation_message(self, since_step: int) -> str:
        recs = self._recent(since_step)
        counts = Counter(r.rule for r in recs)
        names = list(dict.fromkeys(r.rule for r in recs))
        examples = []
        for name in names:
            rec = next(r for r in recs if r.rule == name)
            examples.append(f"{name} at {rec.anchor!r}" if rec.anchor else f"{name} (global)")
        who = (f"rules {', '.join(repr(n) for n in names[:-1])} and {names[-1]!r} undo each other"
               if len(names) > 1 else f"rule {names[0]!r} undoes its own rewrites")
        return (f"no fixpoint: {who} — after {len(recs)} more rewrites "
                f"({', '.join(f'{n}: {c}' for n, c in counts.items())}) the graph is back to the state it had at "
                f"step {since_step} (e.g. {'; '.join(examples[:4])}). Drop one of them from the pipeline or "
                "make one rule's check refuse what the other produces.")

    def _step_limit_message(self, steps: int) -> str:
        tail = self.report.applied[-1000:]
        counts = Counter(r.rule for r in tail).most_common(3)
        anchors = Counter(r.anchor for r in tail if r.anchor).most_common(3)
        return (f"no fixpoint after {steps} rewrites (the limit is max_steps={self.max_steps}); the last "
                f"{len(tail)} were by {', '.join(f'{n} ({c}x)' for n, c in counts)}"
                + (f", at nodes {', '.join(f'{a!r}' for a, _ in anchors)}" if anchors else "")
                + ". A rule keeps producing new matches for itself or another rule; run with --trace to see them.")


__all__ = ["BIG_CONST_BYTES", "WINDOW", "NodeHashes", "Termination", "fingerprint_change", "node_hash"]
