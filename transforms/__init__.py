"""Built-in rewrite rules, one module per rule.

Each module is written exactly as a user writes a custom rule: subclass
:class:`graphxform.engine.rule.Rule`, decorate with :func:`graphxform.engine.rule.register`.
Importing this package imports (and so registers) every module in it.
"""
from __future__ import annotations

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
