"""The registry: every rule and pass by name and alias, from entry points and rules files.

Rules come from three places, all registered with :func:`register`:

* the ``graphxform.rules`` entry-point group, read on first use: each entry point names a module (importing it
  registers its rules) or a rule class (registered for it). The built-in rules (``graphxform.transforms``)
  are entry points of graphxform itself, like any plugin's;
* rules files, imported with :func:`load_rules_file` (``--rules my_rules.py``);
* classes decorated with ``@register`` in code that is imported anyway.

A name or alias held by another class is refused.
"""
from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import logging
import sys
from pathlib import Path

from graphxform.core.errors import GraphxformError, RuleError
from graphxform.engine.rule import BaseRule

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "graphxform.rules"

_REGISTRY: dict[str, type[BaseRule]] = {}
_ALIASES: dict[str, str] = {}
_recording: list[str] | None = None  # names registered while a rules file is imported
_loaded = False


def register(cls: type[BaseRule]) -> type[BaseRule]:
    """Class decorator: add the rule or pass ``cls`` to the registry under its name and aliases."""
    if not (isinstance(cls, type) and issubclass(cls, BaseRule)):
        raise RuleError(f"@register takes a Rule or Pass subclass, got {cls!r}")
    if not cls.name:
        raise RuleError(f"rule class {cls.__name__} has no name")
    for key in (cls.name, *cls.aliases):
        owner = _REGISTRY.get(key) or (_REGISTRY.get(_ALIASES[key]) if key in _ALIASES else None)
        if owner is not None and owner.__qualname__ != cls.__qualname__:
            raise RuleError(f"rule name {key!r} of {cls.__qualname__} is taken by {owner.__qualname__}")
    _REGISTRY[cls.name] = cls
    for alias in cls.aliases:
        _ALIASES[alias] = cls.name
    if _recording is not None:
        _recording.append(cls.name)
    return cls


def _load_entry_points() -> None:
    found = 0
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found += 1
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the other rules
            log.warning("could not load rule plugin %s (%s): %s: %s", ep.name, ep.value, type(exc).__name__, exc)
            continue
        # An entry point may name a module (importing it registers its rules) or a rule class.
        if isinstance(obj, type) and issubclass(obj, BaseRule) and _REGISTRY.get(obj.name) is not obj:
            try:
                register(obj)
            except RuleError as exc:
                log.warning("could not register rule plugin %s: %s", ep.name, exc)
    if not found:
        log.warning("no rules found in the %s entry points: is graphxform installed (pip install .)?",
                    ENTRY_POINT_GROUP)


def registry() -> dict[str, type[BaseRule]]:
    """Every registered rule by name (entry points loaded on first use)."""
    global _loaded
    if not _loaded:
        _loaded = True
        _load_entry_points()
    return dict(_REGISTRY)


def aliases() -> dict[str, str]:
    """``{alias: rule name}``."""
    registry()
    return dict(_ALIASES)


def get_rule(name: str) -> type[BaseRule]:
    """The rule class registered as ``name`` (or alias)."""
    reg = registry()
    key = _ALIASES.get(name, name)
    if key not in reg:
        close = difflib.get_close_matches(name, list(reg) + list(_ALIASES), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise RuleError(f"unknown rule {name!r}.{hint} `graphxform rules` lists them all.")
    return reg[key]


def load_rules_file(path: str) -> list[str]:
    """Import a Python file of user rules; returns the names it registered."""
    global _recording
    p = Path(path).expanduser()
    if not p.is_file():
        raise RuleError(f"rules file {path} does not exist (pass the path of a .py file that defines rules)")
    registry()
    mod_name = f"graphxform_user_rules_{abs(hash(str(p.resolve())))}_{p.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, p)
    if spec is None or spec.loader is None:
        raise RuleError(f"rules file {path} is not a Python file (it should end in .py)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look modules up by name
    _recording = []
    try:
        spec.loader.exec_module(module)
    except GraphxformError as exc:
        sys.modules.pop(mod_name, None)
        raise RuleError(f"rules file {path}: {exc}") from exc
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise RuleError(f"rules file {path} failed to import: {type(exc).__name__}: {exc}") from exc
    finally:
        names, _recording = _recording, None
    if not names:
        log.warning("rules file %s registered no rule (decorate Rule subclasses with @register)", path)
    return sorted(set(names))


__all__ = ["ENTRY_POINT_GROUP", "aliases", "get_rule", "load_rules_file", "register", "registry"]
