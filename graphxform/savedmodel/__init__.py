"""The SavedModel format: reading protos and meta graphs, writing them (streamed, atomically), TF2 object graphs.

Imports ``graphxform.core`` only: it knows protos, files and plain data, never a ``Model``.
"""
