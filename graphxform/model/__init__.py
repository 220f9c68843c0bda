"""The ``Model``: loading it (TF1/TF2 SavedModels, frozen GraphDefs), freezing it, exporting it.

Imports ``graphxform.core`` and ``graphxform.savedmodel``.
"""
