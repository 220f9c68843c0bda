"""Benchmark: an Estimator-like servable whose weights pass protobuf's 2 GiB limit, through ``optimize``.

Not part of the test run. Generates (under ``--workdir``, never committed) a TF1 SavedModel shaped like a
recommendation Estimator: serialized ``tf.Example`` in, four hashed categorical features, each looked up in
its own embedding table (``ResourceGather`` on a resource variable), a small dense tower, ``probabilities`` and
``class_ids`` out, a ``tf.train.Saver``. The tables' values are written with numpy straight into the checkpoint
(one table in memory at a time), so generating needs no TensorFlow session holding 2 GiB.

Then, each in its own process (peak RSS is that process's, from ``getrusage``):

1. ``graphxform optimize IN OUT --quantize none --no-verify`` — no keep flag: the automatic choice keeps the
   tables (the cost of optimizing alone);
2. the same, verified;
3. ``graphxform optimize IN OUT --keep-variables`` — the tables stored as int8.

Runs 2 and 3 verify the output against the input in TF Serving's C++ loader, ``tf.saved_model.load`` and the
TF1 loader (what ``optimize`` does unless ``--no-verify``). Prints a Markdown table and writes ``keep_variables.json`` beside this
file.

    python -m tests.bench.bench_keep_variables --workdir /tmp/gx_big            # ~2.3 GiB of weights
    python -m tests.bench.bench_keep_variables --workdir /tmp/gx_big --rows 100000   # a quick small run
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLES = 4
DIM = 32


def make_model(out: Path, rows: int, seed: int = 0) -> int:
    """Write the SavedModel to ``out``; returns the bytes of its weights."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    tf1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        serialized = tf1.placeholder(tf.string, [None], name="input_example_tensor")
        spec = {f"f{i}": tf.io.FixedLenFeature([1], tf.string, default_value="") for i in range(TABLES)}
        feats = tf1.io.parse_example(serialized, spec)
        embs = []
        for i in range(TABLES):
            with tf1.variable_scope(f"dnn/input_layer/f{i}_embedding"):
                table = tf1.get_variable("embedding_weights", [rows, DIM], initializer=tf1.zeros_initializer(),
                                         use_resource=True)
            ids = tf.strings.to_hash_bucket_fast(tf.reshape(feats[f"f{i}"], [-1]), rows)
            embs.append(tf.nn.embedding_lookup(table, ids))
        x = tf.concat(embs, 1)
        for name, units in (("hiddenlayer_0", 256), ("logits", 3)):
            with tf1.variable_scope(f"dnn/{name}"):
                w = tf1.get_variable("kernel", [x.shape[1], units], initializer=tf1.zeros_initializer(),
                                     use_resource=True)
                b = tf1.get_variable("bias", [units], initializer=tf1.zeros_initializer(), use_resource=True)
            x = tf.matmul(x, w) + b
            if name != "logits":
                x = tf.nn.relu(x)
        probs = tf.nn.softmax(x, name="head/predictions/probabilities")
        classes = tf.argmax(x, 1, name="head/predictions/class_ids")
        variables = tf1.global_variables()
        saver = tf1.train.Saver(variables, sharded=False)
        sig = tf1.saved_model.signature_def_utils.predict_signature_def(
            inputs={"examples": serialized}, outputs={"probabilities": probs, "class_ids": classes})
        mg = tf1.train.export_meta_graph(graph=g, saver_def=saver.as_saver_def(), clear_devices=True)
    mg.meta_info_def.tags.append("serve")
    mg.signature_def["serving_default"].CopyFrom(sig)
    mg.signature_def["predict"].CopyFrom(sig)
    sm = saved_model_pb2.SavedModel(saved_model_schema_version=1)
    sm.meta_graphs.add().CopyFrom(mg)
    (out / "variables").mkdir(parents=True)
    (out / "saved_model.pb").write_bytes(sm.SerializeToString())

    rng = np.random.default_rng(seed)
    parts, total = [], 0
    for i, v in enumerate(variables):
        shape = v.shape.as_list()
        scale = 0.05 if "embedding" in v.op.name else 1.0 / np.sqrt(shape[0])
        value = (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)
        part = str(out / f"variables/part-{i:05d}")
        tf.raw_ops.SaveV2(prefix=part, tensor_names=[v.op.name], shape_and_slices=[""], tensors=[value])
        parts.append(part)
        total += value.nbytes
        del value
    tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=parts, destination_prefix=str(out / "variables/variables"),
                                  delete_old_dirs=True)
    return total


def dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def run_optimize(args: list[str]) -> dict:
    """``graphxform optimize ARGS --json`` in a child process: its report, wall seconds and peak RSS."""
    code = ("import resource, subprocess, sys, json, time\n"
            "t = time.perf_counter(); p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr[-2000:], "
            "'seconds': time.perf_counter() - t, "
            "'peak_rss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n")
    exe = Path(sys.executable).with_name("graphxform")
    res = subprocess.run([sys.executable, "-c", code, str(exe), "optimize", *args, "--json", "--force"],
                         capture_output=True, text=True, check=True)
    out = json.loads(res.stdout)
    out["report"] = json.loads(out.pop("out")) if out["rc"] in (0, 1) else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--rows", type=int, default=4_800_000, help="rows of each of the 4 embedding tables (×32 float32)")
    ap.add_argument("--keep", action="store_true", help="keep the generated model and outputs")
    ns = ap.parse_args()
    ns.workdir.mkdir(parents=True, exist_ok=True)
    model = ns.workdir / "big_estimator"
    if model.exists():
        shutil.rmtree(model)
    t0 = time.perf_counter()
    weights = make_model(model, ns.rows)
    gen_s = time.perf_counter() - t0
    import tensorflow as tf

    results = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
                          f"{platform.system()}",
               "tensorflow": tf.__version__, "load_average_start": round(os.getloadavg()[0], 2),
               "rows": ns.rows, "weights_bytes": weights, "input_bytes": dir_bytes(model), "generate_seconds": gen_s,
               "runs": {}}
    print(f"generated {model}: weights {weights / 2**30:.2f} GiB in {gen_s:.0f} s", flush=True)
    for label, extra in (("float, automatic keep, not verified", ["--quantize", "none", "--no-verify"]),
                         ("float, automatic keep", ["--quantize", "none"]),
                         ("int8, --keep-variables", ["--quantize", "int8", "--keep-variables"])):
        out = ns.workdir / ("out_" + "_".join(a.strip("-") for a in extra))
        r = run_optimize([str(model), str(out), *extra])
        rep = r["report"] or {}
        ver = rep.get("verification") or {}
        results["runs"][label] = {
            "rc": r["rc"], "seconds": round(r["seconds"], 1), "peak_rss_gib": round(r["peak_rss_kb"] / 2**20, 2),
            "stages": rep.get("seconds"), "size_after": rep.get("size_after"), "notes": rep.get("notes"),
            "kept": [(k["name"], k["dtype"], k["bytes"]) for k in rep.get("kept_variables", [])],
            "loaders": {x["loader"]: {"loaded": x["loaded"], "ok": x["ok"], "max_rel_diff": x["max_rel_diff"]}
                        for x in ver.get("loaders", [])},
            "max_rel_diff": ver.get("max_rel_diff"), "class_agreement": ver.get("min_class_agreement"),
            "error": None if r["rc"] == 0 else r["err"],
        }
        print(json.dumps({label: results["runs"][label]}, indent=1), flush=True)
        if not ns.keep:
            shutil.rmtree(out, ignore_errors=True)
    if not ns.keep:
        shutil.rmtree(model, ignore_errors=True)
    results["load_average_end"] = round(os.getloadavg()[0], 2)
    (HERE / "keep_variables.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"\n{results['date']}, {results['machine']}, TensorFlow {results['tensorflow']}, load average "
          f"{results['load_average_start']} → {results['load_average_end']}")
    print(f"\n| run | exit | seconds | peak RSS GiB | input → output | loaders (c++/tf2/tf1) | max rel diff |")
    print("|---|---|---|---|---|---|---|")
    for label, r in results["runs"].items():
        loaders = "/".join("✓" if r["loaders"].get(k, {}).get("ok") else "✗" for k in ("c++", "tf2", "tf1")) \
            if r["loaders"] else "not verified"
        size = f"{results['input_bytes'] / 2**30:.2f} GiB → {(r['size_after'] or 0) / 2**30:.2f} GiB"
        print(f"| {label} | {r['rc']} | {r['seconds']} | {r['peak_rss_gib']} | {size} | {loaders} | "
              f"{r['max_rel_diff']} |")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
