"""Inspecting models without running them: summaries of a model or a node, and pictures of the graph.

Imports ``graphxform.core``, ``graphxform.savedmodel`` and ``graphxform.model``.
"""
