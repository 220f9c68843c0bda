"""Built-in rewrite rules, one module per rule, installed as ``graphxform.transforms``.

Each module is written as a user writes a rule (see ``examples/``) and registers its rule when it is imported.
graphxform imports them through the ``graphxform.rules`` entry points in ``pyproject.toml``, as it imports
any plugin's rules: nothing imports a built-in rule by name.
"""
