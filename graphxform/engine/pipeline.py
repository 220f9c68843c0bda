"""Building the list of rules a run uses, from names, a transform string (GTT syntax) or rule objects.

>>> rules = build_pipeline("remove_nodes(op=Identity) fold_constants(ignore_errors=true)")  # doctest: +SKIP
>>> run_pipeline(model.graph, rules)  # graphxform.engine.runner                             # doctest: +SKIP

* :data:`DEFAULT_PIPELINE`: :data:`FLOAT_PIPELINE` (``prune_control_deps,
  remove_identity, merge_duplicates, strip_unused, fold_constants,
  fold_batch_norms, hoist_unary_through_concat`` and the simplifications of
  Grappler's default optimizers: ``remove_pass_through``,
  ``remove_noop``, ``remove_neutral_arithmetic``, ``remove_identity_transpose``,
  ``remove_redundant_cast``, ``merge_concat``, ``simplify_embedding_lookup``) then
  ``quantize_weights`` (left out with ``quantize=False``/``"none"``).
* Names are rule names or aliases (GTT names included). ``ignore_errors=true``
  is accepted by every transform, as in GTT: the rule's own parameter when it
  has one, otherwise the runner skips the nodes where the rule fails (logged,
  listed in the report) instead of stopping.
* The GTT transforms :data:`NOOP_TRANSFORMS` are accepted and do nothing (a
  log line says so); the GTT transforms graphxform refuses (:data:`REFUSED_GTT`)
  are refused with the reason and the modern alternative.
* The same rule with the same parameters given twice (``fold_batch_norms
  fold_old_batch_norms``) runs once.
* ``quantize_weights`` (and any rule with ``final = True``) runs after the
  others reached their fixpoint, in a stage of its own. GTT names and
  ``final`` are declared on the rules themselves.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from graphxform.core.errors import RuleError
from graphxform.engine.gtt_syntax import format_transform, parse_transforms
from graphxform.engine.registry import aliases, get_rule, load_rules_file, registry
from graphxform.engine.rule import BaseRule, Param

log = logging.getLogger(__name__)

#: The default float pipeline, then quantization. ``prune_control_deps`` comes first: frozen Keras graphs hold
#: every weight by a control edge, which every other rule would otherwise carry along.
FLOAT_PIPELINE: tuple[str, ...] = (
    "prune_control_deps", "remove_identity", "merge_duplicates", "strip_unused", "fold_constants",
    "fold_batch_norms", "hoist_unary_through_concat", "remove_pass_through", "remove_noop",
    "remove_neutral_arithmetic", "remove_identity_transpose",
    "remove_redundant_cast", "merge_concat", "simplify_embedding_lookup",
)
DEFAULT_PIPELINE: tuple[str, ...] = (*FLOAT_PIPELINE, "quantize_weights")
#: GTT transforms accepted as no-ops, with the reason.
NOOP_TRANSFORMS: dict[str, str] = {}
#: GTT transforms graphxform refuses, with the reason and what to use instead.
REFUSED_GTT = {
    "fuse_quantized_conv_and_requantize": (
        "GTT builds it only into Intel MKL builds of TensorFlow, and the fused QuantizedConv2D*AndRequantize "
        "kernels it emits run only with oneDNN enabled and only with qint8 filters, which the graphs "
        "quantize_nodes makes never have (quint8); keep QuantizedConv2D + Requantize (quantize_nodes, then "
        "freeze_requantization_ranges), or quantize with TensorFlow Lite or Intel Neural Compressor"),
}
#: Kept for scripts that imported it: the GTT transforms graphxform refuses.
UNSUPPORTED_GTT = frozenset(REFUSED_GTT)

Spec = str | BaseRule | type[BaseRule] | tuple[str, dict[str, Any]]


def supported_names() -> list[str]:
    """Every name a transform string may use: rule names, aliases and the accepted no-ops."""
    return sorted(set(registry()) | set(aliases()) | set(NOOP_TRANSFORMS))


def _rule_class(name: str) -> type[BaseRule]:
    try:
        return get_rule(name)
    except RuleError:
        if name in REFUSED_GTT:
            raise RuleError(f"GTT transform {name!r} is not supported by graphxform: {REFUSED_GTT[name]}") from None
        raise


def build_rule(name: str, params: dict[str, Any] | None = None) -> BaseRule | None:
    """One rule instance for ``name(**params)`` (``None`` for an accepted no-op GTT transform)."""
    params = dict(params or {})
    if name in NOOP_TRANSFORMS:
        log.info("%s: accepted as a no-op (%s)%s", name, NOOP_TRANSFORMS[name],
                 f"; parameters ignored: {', '.join(params)}" if params else "")
        return None
    cls = _rule_class(name)
    ignore = None
    if "ignore_errors" in params and "ignore_errors" not in cls.params:
        ignore = Param(bool, False).convert(cls.name, "ignore_errors", params.pop("ignore_errors"))
    rule = cls(**params)
    if ignore is not None:
        rule.ignore_errors = ignore  # type: ignore[attr-defined]  # the runner skips failing nodes
    return rule


def _same(a: BaseRule, b: BaseRule) -> bool:
    return (type(a) is type(b) and a.args == b.args
            and getattr(a, "ignore_errors", None) == getattr(b, "ignore_errors", None))


def build_pipeline(
    spec: str | Sequence[Spec] | None = None,
    *,
    quantize: bool | str = True,
    rules_files: Iterable[str | Path] = (),
) -> list[BaseRule]:
    """Rule instances for ``spec``.

    ``spec``: ``None`` (the default pipeline; ``quantize=False`` or ``"none"``
    leaves quantization out, ``"float16"`` picks that storage type), a
    transform string (GTT syntax, several transforms), or a sequence whose
    items are transform strings, ``(name, params)`` pairs, Rule classes or
    Rule instances. ``rules_files`` are imported first (their rules become
    available by name). Raises :class:`RuleError` for unknown rules and bad
    parameters before anything runs.
    """
    for path in rules_files:
        load_rules_file(str(path))
    if spec is None:
        items: list[Spec] = list(FLOAT_PIPELINE)
        if quantize not in (False, None, "none"):
            items.append(("quantize_weights", {} if quantize in (True, "int8") else {"dtype": str(quantize)}))
    elif isinstance(spec, str):
        items = [spec]
    else:
        items = list(spec)
    rules: list[BaseRule] = []
    for item in items:
        built: list[BaseRule | None]
        if isinstance(item, BaseRule):
            built = [item]
        elif isinstance(item, type) and issubclass(item, BaseRule):
            built = [item()]
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            built = [build_rule(item[0], item[1])]
        elif isinstance(item, str):
            built = [build_rule(name, params) for name, params in parse_transforms(item)]
        else:
            raise RuleError(f"cannot build a rule from {item!r}: give a name, a transform string or a Rule")
        for rule in built:
            if rule is None:
                continue
            if any(_same(rule, r) for r in rules):
                log.info("%s given twice: it runs once", rule)
                continue
            rules.append(rule)
    return rules


def default_pipeline(quantize: bool | str = True) -> list[BaseRule]:
    """The default rules (see :data:`DEFAULT_PIPELINE`)."""
    return build_pipeline(None, quantize=quantize)


def describe_pipeline(rules: Sequence[BaseRule]) -> str:
    """The transform string that rebuilds ``rules`` (non-default parameters only)."""
    parts = []
    for r in rules:
        params = {k: v for k, v in r.args.items() if v != r.params[k].default}
        parts.append(format_transform(r.name, {k: ",".join(map(str, v)) if isinstance(v, list) else v
                                              for k, v in params.items()}))
    return " ".join(parts)


__all__ = ["DEFAULT_PIPELINE", "FLOAT_PIPELINE", "NOOP_TRANSFORMS", "REFUSED_GTT", "UNSUPPORTED_GTT", "build_pipeline",
           "build_rule", "default_pipeline", "describe_pipeline", "supported_names"]
