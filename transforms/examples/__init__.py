"""Short example rules to copy: each is a complete rule file written with public names only.

They are not registered as built-ins; load one with ``--rules`` or by importing its module.
"""
