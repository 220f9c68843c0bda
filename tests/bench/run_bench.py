"""graphxform benchmark: transform speed, size, servable latency, memory and scaling vs Grappler.

Run (from the repo root, with the test extra installed)::

    python -m tests.bench.run_bench                 # every model + scaling, ~30-40 min on 2 cores
    python -m tests.bench.run_bench --quick         # MobileNetV2, ResNet50 and 10k/100k scaling
    python -m tests.bench.run_bench --models ResNet50 --no-scaling

Writes ``tests/bench/results.json`` and ``tests/bench/RESULTS.md`` (the table the README quotes).
Not part of the test run: nothing here is collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_TRANSFORMS = ["remove_identity", "merge_duplicates", "strip_unused", "fold_constants", "fold_batch_norms"]
INT8_TRANSFORMS = [*DEFAULT_TRANSFORMS, "quantize_weights"]


def median_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def graphxform_transform(gd, inputs, outputs, transforms):
    from graphxform.gtt import TransformGraph

    return TransformGraph(gd, [i.split(":")[0] for i in inputs], [o.split(":")[0] for o in outputs], transforms)


def grappler(gd, inputs, outputs):
    """Grappler run offline: constant folding + arithmetic + dependency optimizers."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.grappler import tf_optimizer

    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(gd, name="")
        mg = tf.compat.v1.train.export_meta_graph(graph=g)
    fetch = mg.collection_def["train_op"]
    fetch.node_list.value.extend(o.split(":")[0] for o in outputs)
    cfg = config_pb2.ConfigProto()
    rw = cfg.graph_options.rewrite_options
    rw.optimizers[:] = ["constfold", "arithmetic", "dependency"]
    rw.min_graph_nodes = -1
    return tf_optimizer.OptimizeGraph(cfg, mg)


def optimize_for_inference(gd, inputs, outputs):
    import tensorflow as tf
    from tensorflow.python.tools import optimize_for_inference_lib

    names = [i.split(":")[0] for i in inputs]
    types = []
    for n in gd.node:
        if n.name in names:
            types.append(n.attr["dtype"].type)
    return optimize_for_inference_lib.optimize_for_inference(
        gd, names, [o.split(":")[0] for o in outputs], types or [tf.float32.as_datatype_enum]
    )


def session_latency(gd, feeds_fn, outputs, batch: int, runs: int) -> tuple[float, list[np.ndarray]]:
    from graphxform.tfrun import GraphSession

    with GraphSession(gd) as s:
        feeds = feeds_fn(batch)
        out = s.run(feeds, outputs)
        for _ in range(3):
            s.run(feeds, outputs)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            s.run(feeds, outputs)
            times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def servable_load_time(gd, inputs, outputs) -> float:
    """Seconds for the TF1 SavedModel loader to load the graph exported as a servable."""
    import tensorflow as tf

    import graphxform
    from graphxform.exporter import export

    with tempfile.TemporaryDirectory() as tmp:
        pb = Path(tmp) / "g.pb"
        pb.write_bytes(gd.SerializeToString())
        model = graphxform.load(pb, inputs=inputs, outputs=outputs)
        out = export(model, Path(tmp) / "sm")
        t0 = time.perf_counter()
        with tf.compat.v1.Session(graph=tf.Graph()) as sess:
            tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(out))
        return time.perf_counter() - t0


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-12))


def peak_rss_mb(pb_path: Path, inputs, outputs, transforms) -> dict:
    """Peak RSS of a transform in a fresh process, and the RSS right after importing TensorFlow."""
    code = f"""
import resource, os, sys, json
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
import graphxform.gtt, transforms  # noqa
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
gd = graph_pb2.GraphDef(); gd.ParseFromString(open({str(pb_path)!r}, 'rb').read())
out = graphxform.gtt.TransformGraph(gd, {[i.split(':')[0] for i in inputs]!r}, {[o.split(':')[0] for o in outputs]!r}, {transforms!r})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{'import_mb': base / 1024, 'peak_mb': peak / 1024}}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench_model(name: str, repeat: int, runs: int) -> dict:
    from tests.bench import models

    print(f"== {name}", flush=True)
    m = models.build(name)
    gd = m.graph_def
    row: dict = {"model": name, "nodes_in": len(gd.node), "bytes_in": gd.ByteSize()}
    t_ours, ours = median_time(lambda: graphxform_transform(gd, m.inputs, m.outputs, DEFAULT_TRANSFORMS), repeat)
    t_int8, ours8 = median_time(lambda: graphxform_transform(gd, m.inputs, m.outputs, INT8_TRANSFORMS), 1)
    t_grap, grap = median_time(lambda: grappler(gd, m.inputs, m.outputs), repeat)
    try:
        t_ofi, ofi = median_time(lambda: optimize_for_inference(gd, m.inputs, m.outputs), repeat)
    except Exception as exc:  # noqa: BLE001 - a peer failing is a result, not a crash
        t_ofi, ofi = float("nan"), None
        row["ofi_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
    row.update(
        t_graphxform=t_ours, t_graphxform_int8=t_int8, t_grappler=t_grap, t_ofi=t_ofi,
        ratio_vs_grappler=t_ours / t_grap, ratio_vs_ofi=t_ours / t_ofi if ofi is not None else None,
        nodes_graphxform=len(ours.node), nodes_grappler=len(grap.node),
        nodes_ofi=len(ofi.node) if ofi is not None else None, nodes_int8=len(ours8.node),
        bytes_graphxform=ours.ByteSize(), bytes_grappler=grap.ByteSize(), bytes_int8=ours8.ByteSize(),
        bn_left=sum(n.op.startswith("FusedBatchNorm") for n in ours.node),
    )
    lat = {}
    outs = {}
    for label, g in (("original", gd), ("grappler", grap), ("graphxform", ours), ("int8", ours8)):
        for batch in (1, 32):
            t, out = session_latency(g, m.make_inputs, m.outputs, batch, runs if batch == 1 else max(5, runs // 4))
            lat[f"{label}_b{batch}_ms"] = t * 1e3
            outs[(label, batch)] = out
    row["latency"] = lat
    row["max_rel_diff"] = max(rel_diff(a, b) for a, b in zip(outs[("original", 32)], outs[("graphxform", 32)]))
    row["max_rel_diff_int8"] = max(rel_diff(a, b) for a, b in zip(outs[("original", 32)], outs[("int8", 32)]))
    o, q = outs[("original", 32)][0], outs[("int8", 32)][0]
    if o.ndim == 2 and o.shape[1] > 1:
        row["top1_agreement_int8"] = float(np.mean(o.argmax(1) == q.argmax(1)))
    row["load_s_original"] = servable_load_time(gd, m.inputs, m.outputs)
    row["load_s_graphxform"] = servable_load_time(ours, m.inputs, m.outputs)
    row["load_s_int8"] = servable_load_time(ours8, m.inputs, m.outputs)
    with tempfile.TemporaryDirectory() as tmp:
        pb = Path(tmp) / "m.pb"
        pb.write_bytes(gd.SerializeToString())
        row["file_mb"] = pb.stat().st_size / 2**20
        rss = peak_rss_mb(pb, m.inputs, m.outputs, DEFAULT_TRANSFORMS)
    row["rss_import_mb"] = rss["import_mb"]
    row["rss_peak_mb"] = rss["peak_mb"]
    row["rss_ratio"] = (rss["peak_mb"] - rss["import_mb"]) / row["file_mb"]
    print(json.dumps(row, indent=1, default=float), flush=True)
    return row


def bench_scaling(sizes: list[int]) -> list[dict]:
    from graphxform.graph import Graph
    from graphxform.model import Model, Signature, TensorSpec
    from graphxform.pipeline import build_pipeline
    from graphxform.runner import run_pipeline
    from tests.bench.models import synthetic_graph

    rows = []
    for shape in ("chain", "fan"):
        for n in sizes:
            gd, x, y = synthetic_graph(n, shape)
            t0 = time.perf_counter()
            g = Graph(gd)
            sig = Signature("serving_default", "tensorflow/serving/predict",
                            {"x": TensorSpec(x, 1, [None])}, {"y": TensorSpec(y, 1, [None])})
            Model(g, {"serving_default": sig}, source=Path("synthetic"), format="graph_def")
            t_load = time.perf_counter() - t0
            rules = build_pipeline(" ".join(DEFAULT_TRANSFORMS))
            t1 = time.perf_counter()
            run_pipeline(g, rules)
            t_run = time.perf_counter() - t1
            row = {"shape": shape, "nodes": len(gd.node), "nodes_after": len(g), "load_s": t_load, "pipeline_s": t_run,
                   "us_per_node": (t_load + t_run) / len(gd.node) * 1e6}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def markdown(results: dict) -> str:
    lines = [f"Machine: {results['machine']}  ", f"TensorFlow {results['tensorflow']}, run {results['date']}", ""]
    lines += [
        "| model | nodes in | graphxform nodes | Grappler nodes | OFI nodes | graphxform s | Grappler s | ratio | "
        "MB in | MB out | MB int8 | max rel diff | int8 top-1 | peak RSS / file |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["models"]:
        lines.append(
            f"| {r['model']} | {r['nodes_in']} | {r['nodes_graphxform']} | {r['nodes_grappler']} | {r['nodes_ofi']} | "
            f"{r['t_graphxform']:.2f} | {r['t_grappler']:.2f} | {r['ratio_vs_grappler']:.2f} | "
            f"{r['bytes_in'] / 2**20:.1f} | {r['bytes_graphxform'] / 2**20:.1f} | {r['bytes_int8'] / 2**20:.1f} | "
            f"{r['max_rel_diff']:.1e} | {r.get('top1_agreement_int8', float('nan')):.2f} | {r['rss_ratio']:.2f} |"
        )
    lines += ["", "Latency (ms, median, warm TF session) and servable load time (s):", "",
              "| model | orig b1 | grappler b1 | graphxform b1 | int8 b1 | orig b32 | graphxform b32 | int8 b32 | "
              "load orig | load graphxform | load int8 |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["models"]:
        lat = r["latency"]
        lines.append(
            f"| {r['model']} | {lat['original_b1_ms']:.1f} | {lat['grappler_b1_ms']:.1f} | {lat['graphxform_b1_ms']:.1f} | "
            f"{lat['int8_b1_ms']:.1f} | {lat['original_b32_ms']:.1f} | {lat['graphxform_b32_ms']:.1f} | "
            f"{lat['int8_b32_ms']:.1f} | {r['load_s_original']:.2f} | {r['load_s_graphxform']:.2f} | {r['load_s_int8']:.2f} |"
        )
    if results.get("scaling"):
        lines += ["", "Scaling of the default pipeline (synthetic graphs):", "",
                  "| shape | nodes | nodes after | seconds | µs/node |", "|---|---|---|---|---|"]
        for r in results["scaling"]:
            lines.append(f"| {r['shape']} | {r['nodes']} | {r['nodes_after']} | {r['load_s'] + r['pipeline_s']:.1f} | "
                         f"{r['us_per_node']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from tests.bench import models

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=None, help=f"subset of {models.ALL_MODELS}")
    p.add_argument("--quick", action="store_true", help="MobileNetV2 + ResNet50, scaling to 100k")
    p.add_argument("--no-scaling", action="store_true")
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--repeat", type=int, default=3, help="transform runs per tool (median)")
    p.add_argument("--runs", type=int, default=30, help="latency runs at batch 1")
    p.add_argument("--out", default=str(HERE / "results.json"))
    args = p.parse_args(argv)
    import tensorflow as tf

    names = args.models or (["MobileNetV2", "ResNet50"] if args.quick else models.ALL_MODELS)
    sizes = [int(s) for s in ("10000,100000" if args.quick else args.sizes).split(",")]
    results = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "tensorflow": tf.__version__,
               "date": time.strftime("%Y-%m-%d"), "models": [], "scaling": []}
    for name in names:
        results["models"].append(bench_model(name, args.repeat, args.runs))
    if not args.no_scaling:
        results["scaling"] = bench_scaling(sizes)
    Path(args.out).write_text(json.dumps(results, indent=1, default=float))
    md = markdown(results)
    (HERE / "RESULTS.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
