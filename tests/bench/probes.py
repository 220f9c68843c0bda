"""What one probe into a table keyed by node name costs at each scaling size, on this machine.

The Graph holds its nodes, networkx's view (node, successor and predecessor dicts) and the op index in dicts keyed
by node name, as the design sets; a rule's work on a node is a handful of probes into them. Time per node of the
scaling rows can grow from 100k to 1M nodes only as fast as the cost of such a probe grows, so the benchmark
measures that cost beside them, with no graphxform code at all: each size in a fresh process, a dict of that many
names (shaped as the synthetic chain's), probed three ways:

* ``same``: with the table's own key objects, in insertion order (the best case: no string comparison, the
  entries read in sequence; only the hash index is read at random);
* ``equal``: with equal strings that are other objects (as names parsed from ``NodeDef.input`` are), in order;
* ``shuffled``: the same, in random order.

Reported: nanoseconds per probe, the best of three passes.
"""
from __future__ import annotations

import json
import subprocess
import sys

_CODE = """
import json, random, sys, time
n = int(sys.argv[1])
names = [f"u{i // 6}/{('id', 'a', 'b', 'ab', 'mul', 'add')[i % 6]}" for i in range(n)]
table = dict.fromkeys(names)
others = ["".join(list(s)) for s in names]
shuffled = others[:]
random.Random(0).shuffle(shuffled)
row = {"entries": n}
for label, seq in (("same", names), ("equal", others), ("shuffled", shuffled)):
    get, best = table.get, None
    for _ in range(3):
        t = time.perf_counter()
        for s in seq:
            get(s)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    row[f"ns_{label}"] = round(best / n * 1e9, 1)
print(json.dumps(row))
"""


def probe_costs(sizes: list[int]) -> list[dict]:
    """``[{"entries": n, "ns_same": …, "ns_equal": …, "ns_shuffled": …}, …]``, one fresh process per size."""
    rows = []
    for n in sizes:
        res = subprocess.run([sys.executable, "-c", _CODE, str(n)], capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return rows


if __name__ == "__main__":
    for row in probe_costs([10_000, 100_000, 1_000_000]):
        print(row)
