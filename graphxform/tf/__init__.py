"""Running TensorFlow: sessions, TensorFlow's loaders as runners, batched constant evaluation, input synthesis.

Imports ``graphxform.core``, ``graphxform.savedmodel`` and ``graphxform.model``.
"""
