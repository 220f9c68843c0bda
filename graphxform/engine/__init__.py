"""The rule engine: ``Rule`` (local rewrites), ``Pass`` (whole-graph work), patterns, the registry, the runner.

Imports ``graphxform.core`` only. Built-in rules are plugins (``graphxform.transforms``), found through the
``graphxform.rules`` entry-point group, never imported by name.
"""
