"""The jobs: ``optimize``, ``transform``, ``verify``, ``bisect`` and ``TransformGraph``, one library call each.

The command line calls them; they call the layers below.
"""
