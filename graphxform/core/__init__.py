"""The core: the ``Graph`` and its vocabulary — tensor names, signatures, op classes, the node builder, errors.

Imports nothing of graphxform outside ``graphxform.core``; every other layer builds on it.
"""
