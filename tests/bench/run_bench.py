"""graphxform benchmark: transform speed, size, servable latency, memory and scaling vs Grappler.

Run from the repo root (``tests`` is not a package: ``-m`` puts the root on ``sys.path``)::

    python -m tests.bench.run_bench                 # every model + estimator + scaling to 1M nodes
    python -m tests.bench.run_bench --quick         # MobileNetV2, ResNet50, the estimator, scaling to 100k
    python -m tests.bench.run_bench --models ResNet50 --no-scaling --no-estimator
    python -m tests.bench.run_bench --only DenseNet121 --no-latency   # one row of results.json, ~1 min

Writes ``tests/bench/results.json`` and ``tests/bench/RESULTS.md`` (``--out``
moves both), with the machine (cores, CPU model), TensorFlow version, date and
load average of the run; ``python -m tests.figures --update`` then quotes the
new figures in README.md and docs/. Not part of the test run: nothing here is
collected by pytest.

What is measured (the machine is shared: every figure records the load
average; transform times are medians of runs that alternate graphxform and
Grappler, latencies medians of runs that alternate the servables):

* **Keras applications / Transformer / embedding graph / TF1 convnet** (``models.py``):
  graphxform's default float pipeline
  (``graphxform.engine.pipeline.FLOAT_PIPELINE``, via ``TransformGraph``) and the int8 one (``+ quantize_weights``) against
  Grappler run offline by ``tf_optimizer.OptimizeGraph`` in two configs
  (:func:`grappler_config`): *default* — TensorFlow's default
  ``RewriterConfig`` (every default optimizer, ``meta_optimizer_iterations``
  and ``min_graph_nodes`` at their defaults) with only ``remapping`` and
  ``layout_optimizer`` OFF, the peer every ratio is taken against — and
  *restricted* — ``optimizers = [constfold, arithmetic, dependency]`` — and
  ``optimize_for_inference``: seconds, nodes, the op types whose counts
  differ from Grappler's, bytes, output difference, int8 top-1 agreement,
  session latency at batch 1 and 32 (TF1 session, Grappler on at run time as
  in TF Serving), servable load time, and the peak RSS of a transform in a
  fresh process (``VmHWM``) over the file size (median of ``RSS_REPEAT``
  processes; see :func:`_rss_row`). ``--no-latency`` skips the
  latency and load-time part.
* **Estimator servable** (``fixtures/make_estimator_fixtures.py
  --large-embedding``, built once with ``.venv-estimator/bin/python`` or
  ``$GX_ESTIMATOR_PYTHON`` into ``--cache``, never committed): the
  optimize path graphxform.load → freeze → pipeline → export, float and
  int8, timed per step, beside both Grappler configs on the same frozen graph
  (fetch: every signature's outputs, the init op and the table initializers);
  latency of the ``serving_default`` signature on serialized tf.Examples
  through TensorFlow's SavedModel loader.
* **Scaling**: synthetic 10k/100k/1M-node graphs through the default
  pipeline: seconds (wall and CPU) and µs per node, each graph in
  ``--scaling-repeat`` fresh processes (after a warm-up on a 1,000-node
  graph), the run of median wall time reported with every run's; the seconds of the
  Graph build and of each rule at each size, and how their time per node grows
  from one size to the next; and, beside them, what one probe into a dict keyed
  by node name costs at each size on this machine (``probes.py``: the tables
  the Graph and its view are made of, with no graphxform code).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
from graphxform.engine.pipeline import FLOAT_PIPELINE  # noqa: E402
from tests.bench.probes import probe_costs  # noqa: E402

DEFAULT_TRANSFORMS = list(FLOAT_PIPELINE)  # graphxform's default float pipeline, as `optimize` runs it
INT8_TRANSFORMS = [*DEFAULT_TRANSFORMS, "quantize_weights"]
ESTIMATOR_PYTHON = os.environ.get("GX_ESTIMATOR_PYTHON", ".venv-estimator/bin/python")
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "graphxform-bench"
ESTIMATOR_ROW = "EstimatorDNN100kx64"


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def machine_info() -> dict:
    """Where the benchmark runs: ``machine`` ("x86_64 2 cores"), ``cores``, ``cpu`` (the CPU model)."""
    cores = os.cpu_count() or 1
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"machine": f"{platform.machine()} {cores} cores", "cores": cores,
            "cpu": cpu or platform.processor() or platform.machine()}


def median_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def alternate(fns: dict[str, object], repeat: int) -> dict[str, tuple[float, float, object]]:
    """Run every ``fns[k]()`` ``repeat`` times, alternating; {k: (median wall s, median CPU s, last result)}."""
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    out: dict[str, object] = {}
    for _ in range(repeat):
        for k, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            out[k] = fn()  # type: ignore[operator]
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k]), out[k]) for k in fns}


def graphxform_transform(gd, inputs, outputs, transforms):
    from graphxform.jobs.gtt import TransformGraph

    return TransformGraph(gd, [i.split(":")[0] for i in inputs], [o.split(":")[0] for o in outputs], transforms)


#: The two Grappler configurations the benchmark compares with (built by :func:`grappler_config`).
#: ``default``: TensorFlow's default meta-optimizer as a session or ``tf_optimizer.OptimizeGraph`` runs it
#: (``RewriterConfig`` left at its defaults: model pruner, implementation selector, function optimizer,
#: common subgraph elimination, constant folding, shape, arithmetic, loop, dependency and memory
#: optimizers, ``meta_optimizer_iterations`` DEFAULT = 2, ``min_graph_nodes`` DEFAULT = 4), with only
#: ``remapping`` and ``layout_optimizer`` OFF because they emit device-specific fused ops / layouts.
#: ``restricted``: ``optimizers = ["constfold", "arithmetic", "dependency"]`` (the first benchmark's peer).
GRAPPLER_CONFIGS = ("default", "restricted")


def grappler_config(config: str = "default"):
    """The ``ConfigProto`` of a Grappler run: ``"default"`` or ``"restricted"`` (see :data:`GRAPPLER_CONFIGS`)."""
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2

    cfg = config_pb2.ConfigProto()
    rw = cfg.graph_options.rewrite_options
    if config == "default":
        rw.remapping = rewriter_config_pb2.RewriterConfig.OFF
        rw.layout_optimizer = rewriter_config_pb2.RewriterConfig.OFF
    elif config == "restricted":
        rw.optimizers[:] = ["constfold", "arithmetic", "dependency"]
        rw.min_graph_nodes = -1
    else:
        raise ValueError(f"unknown Grappler config {config!r}: one of {GRAPPLER_CONFIGS}")
    return cfg


def grappler(gd, inputs, outputs, config: str = "default"):
    """Grappler run offline by ``tf_optimizer.OptimizeGraph``, as a user runs it on a frozen graph.

    The MetaGraphDef carries the graph and the output nodes as the fetch
    (the ``train_op`` collection, which ``GrapplerItemFromMetaGraphDef``
    reads); with no signature, every ``Placeholder`` is a feed, as in
    ``Session.run(outputs, feed_dict)``. Checked against a session: the
    graph TF's ``DirectSession`` runs after Grappler (``RunOptions.output_partition_graphs``)
    has the same nodes, the Placeholder replaced by ``_Arg`` plus a ``_Retval``.
    """
    import tensorflow as tf
    from tensorflow.python.grappler import tf_optimizer

    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(gd, name="")
        mg = tf.compat.v1.train.export_meta_graph(graph=g)
    fetch = mg.collection_def["train_op"]
    fetch.node_list.value.extend(o.split(":")[0] for o in outputs)
    return tf_optimizer.OptimizeGraph(grappler_config(config), mg, verbose=False)


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


def interleaved_latency(run_fns: dict[str, object], runs: int, warmup: int = 3) -> dict[str, float]:
    """Median seconds of ``run_fns[k]()``, the servables taking turns (a load spike hits all of them)."""
    for fn in run_fns.values():
        for _ in range(warmup):
            fn()  # type: ignore[operator]
    times: dict[str, list[float]] = {k: [] for k in run_fns}
    for _ in range(runs):
        for k, fn in run_fns.items():
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def servable_load_time(gd, inputs, outputs) -> float:
    """Seconds for the TF1 SavedModel loader to load the graph exported as a servable."""
    import tensorflow as tf

    import graphxform
    from graphxform.model.export import export

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


_RSS_CODE = """
import json, os, sys, time
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
def status():
    out = {}
    for line in open('/proc/self/status'):
        key, _, rest = line.partition(':')
        if key in ('VmRSS', 'VmHWM'):
            out[key] = int(rest.split()[0]) / 1024
    return out
import tensorflow as tf
import graphxform.jobs.gtt, graphxform.engine.pipeline, graphxform.engine.runner  # noqa
import graphxform.engine.registry; graphxform.engine.registry.registry()  # the built-in rules  # noqa
from tensorflow.core.framework import graph_pb2
base = status()['VmRSS']
args = json.loads(sys.argv[1])
if args['warm']:  # TF runtime start-up (a first session: thread pools, kernels) before the transform
    g = tf.Graph()
    with g.as_default():
        y = tf.constant([[1.0]]) + tf.constant([[1.0]])
    with tf.compat.v1.Session(graph=g) as s:
        s.run(y)
warm = status()['VmRSS']
t0 = time.perf_counter()
gd = graph_pb2.GraphDef()
gd.ParseFromString(open(args['pb'], 'rb').read())
out = graphxform.jobs.gtt.TransformGraph(gd, args['inputs'], args['outputs'], args['transforms'])
print(json.dumps({'import_mb': base, 'warm_mb': warm, 'peak_mb': status()['VmHWM'], 'seconds': time.perf_counter() - t0,
                  'nodes_out': len(out.node)}))
"""


_CLI_RSS_CODE = """
import json, os, sys
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1]) / 1024
import tensorflow as tf
import graphxform.cli, graphxform.model.export, graphxform.model.loader, graphxform.engine.pipeline, graphxform.engine.runner  # noqa
import graphxform.engine.registry; graphxform.engine.registry.registry()  # the built-in rules  # noqa
base = hwm()
try:
    graphxform.cli.main(sys.argv[1:])
    code = 0
except SystemExit as exc:  # (the entry point exits with its code)
    code = exc.code
print('RSS ' + json.dumps({'import_mb': base, 'peak_mb': hwm(), 'exit': code}))
"""


def cli_peak_rss_mb(pb_path: Path, inputs, outputs, transforms) -> dict:
    """Peak RSS of ``graphxform transform in.pb out.pb`` (load, rules, streamed export) in a fresh process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory() as tmp:
        args = ["transform", str(pb_path), str(Path(tmp) / "out.pb"), "--json", "-t", " ".join(transforms),
                "--inputs", ",".join(i.split(":")[0] for i in inputs),
                "--outputs", ",".join(o.split(":")[0] for o in outputs)]
        res = subprocess.run([sys.executable, "-c", _CLI_RSS_CODE, *args], capture_output=True, text=True,
                             check=True, env=env)
    return json.loads(next(line[4:] for line in res.stdout.splitlines() if line.startswith("RSS ")))


def peak_rss_mb(pb_path: Path, inputs, outputs, transforms, warm: bool = False) -> dict:
    """Peak RSS (VmHWM) of read + transform in a fresh process, and its RSS right after importing TensorFlow.

    ``warm``: run a first TF session before reading the file (``warm_mb``: the RSS after it), to tell the
    transform's own memory from TensorFlow's runtime start-up.
    """
    args = {"pb": str(pb_path), "inputs": [i.split(":")[0] for i in inputs],
            "outputs": [o.split(":")[0] for o in outputs], "transforms": transforms, "warm": warm}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", _RSS_CODE, json.dumps(args)], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(res.stdout.strip().splitlines()[-1])


def top1(o: np.ndarray, q: np.ndarray) -> dict:
    """Top-1 agreement on all rows and on the more confident half (largest top-1 margin)."""
    if o.ndim != 2 or o.shape[1] < 2:
        return {}
    srt = np.sort(o, axis=1)
    confident = np.argsort(srt[:, -2] - srt[:, -1])[: max(1, len(o) // 2)]
    same = o.argmax(1) == q.argmax(1)
    return {"top1_agreement_int8": float(same.mean()), "top1_agreement_int8_confident": float(same[confident].mean()),
            "classes_predicted": len(set(o.argmax(1).tolist()))}


def op_diff(ours, theirs) -> dict[str, int]:
    """{op type: our count − their count} for the op types whose counts differ (positive: we leave more)."""
    from collections import Counter

    a, b = Counter(n.op for n in ours.node), Counter(n.op for n in theirs.node)
    return {op: a[op] - b[op] for op in sorted(set(a) | set(b)) if a[op] != b[op]}


#: Fresh processes per peak-RSS figure, the run of median ratio (every run's ratio kept beside it: a check that
#: one process was not an outlier).
RSS_REPEAT = 3


def _median_run(runs: list[dict], file_mb: float, base: str = "import_mb") -> tuple[dict, list[float]]:
    """The run of median ``(peak - base) / file`` among ``runs``, and every run's ratio (sorted)."""
    runs = sorted(runs, key=lambda r: r["peak_mb"] - r[base])
    return runs[(len(runs) - 1) // 2], [round((r["peak_mb"] - r[base]) / file_mb, 3) for r in runs]


def _rss_row(gd, m) -> dict:
    """Peak RSS of a transform over the size of the model file, ``RSS_REPEAT`` fresh processes per figure.

    ``rss_ratio``: import, read, ``TransformGraph``, as a user's program does (the TF runtime the rules start,
    constant folding's session, is in it). ``rss_ratio_warm``: processes that run a first TF session before
    reading, above the RSS after it (the transform's memory alone); ``rss_ratio_prewarmed``: the same processes
    above the import (the TF session of the benchmark counted with the transform, the measure before 2026-12-07).
    ``rss_ratio_cli``: ``graphxform transform in.pb out.pb``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        pb = Path(tmp) / "m.pb"
        pb.write_bytes(gd.SerializeToString())
        file_mb = pb.stat().st_size / 2**20
        rss, api_runs = _median_run([peak_rss_mb(pb, m.inputs, m.outputs, DEFAULT_TRANSFORMS)
                                     for _ in range(RSS_REPEAT)], file_mb)
        warm_runs = [peak_rss_mb(pb, m.inputs, m.outputs, DEFAULT_TRANSFORMS, warm=True) for _ in range(RSS_REPEAT)]
        warm, warm_ratios = _median_run(warm_runs, file_mb, base="warm_mb")
        pre, pre_ratios = _median_run(warm_runs, file_mb)
        cli, cli_runs = _median_run([cli_peak_rss_mb(pb, m.inputs, m.outputs, DEFAULT_TRANSFORMS)
                                     for _ in range(RSS_REPEAT)], file_mb)
    return {"file_mb": file_mb, "rss_ratio_cli": (cli["peak_mb"] - cli["import_mb"]) / file_mb,
            "rss_import_mb": rss["import_mb"], "rss_peak_mb": rss["peak_mb"], "rss_warm_mb": warm["warm_mb"],
            "rss_ratio": (rss["peak_mb"] - rss["import_mb"]) / file_mb,
            "rss_ratio_warm": (warm["peak_mb"] - warm["warm_mb"]) / file_mb,
            "rss_ratio_prewarmed": (pre["peak_mb"] - pre["import_mb"]) / file_mb,
            "rss_ratio_runs": api_runs, "rss_ratio_warm_runs": warm_ratios,
            "rss_ratio_prewarmed_runs": pre_ratios, "rss_ratio_cli_runs": cli_runs}


def bench_model(name: str, repeat: int, runs: int, latency: bool = True) -> dict:
    from graphxform.tf.session import GraphSession
    from tests.bench import models

    print(f"== {name}", flush=True)
    m = models.build(name)
    gd = m.graph_def
    row: dict = {"model": name, "measured": time.strftime("%Y-%m-%d %H:%M"), "nodes_in": len(gd.node),
                 "bytes_in": gd.ByteSize(), "load_avg_start": load_avg()}
    # Warm every tool once (imports, registry, TF kernels), then alternate.
    graphxform_transform(gd, m.inputs, m.outputs, DEFAULT_TRANSFORMS)
    for config in GRAPPLER_CONFIGS:
        grappler(gd, m.inputs, m.outputs, config)
    timed = alternate({"graphxform": lambda: graphxform_transform(gd, m.inputs, m.outputs, DEFAULT_TRANSFORMS),
                       "grappler": lambda: grappler(gd, m.inputs, m.outputs, "default"),
                       "grappler_restricted": lambda: grappler(gd, m.inputs, m.outputs, "restricted")}, repeat)
    t_ours, c_ours, ours = timed["graphxform"]
    t_grap, c_grap, grap = timed["grappler"]
    t_grst, c_grst, grst = timed["grappler_restricted"]
    t_int8, ours8 = median_time(lambda: graphxform_transform(gd, m.inputs, m.outputs, INT8_TRANSFORMS), 1)
    try:
        t_ofi, ofi = median_time(lambda: optimize_for_inference(gd, m.inputs, m.outputs), repeat)
    except Exception as exc:  # noqa: BLE001 - a peer failing is a result, not a crash
        t_ofi, ofi = float("nan"), None
        row["ofi_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
    row.update(
        t_graphxform=t_ours, t_graphxform_cpu=c_ours, t_graphxform_int8=t_int8, t_grappler=t_grap,
        t_grappler_cpu=c_grap, t_grappler_restricted=t_grst, t_grappler_restricted_cpu=c_grst, t_ofi=t_ofi,
        ratio_vs_grappler=t_ours / t_grap, ratio_vs_grappler_restricted=t_ours / t_grst,
        ratio_vs_ofi=t_ours / t_ofi if ofi is not None else None,
        nodes_graphxform=len(ours.node), nodes_grappler=len(grap.node), nodes_grappler_restricted=len(grst.node),
        nodes_ofi=len(ofi.node) if ofi is not None else None, nodes_int8=len(ours8.node),
        nodes_ratio_vs_grappler=len(ours.node) / len(grap.node),
        nodes_ratio_vs_grappler_restricted=len(ours.node) / len(grst.node),
        bytes_graphxform=ours.ByteSize(), bytes_grappler=grap.ByteSize(), bytes_int8=ours8.ByteSize(),
        bn_left=sum(n.op.startswith("FusedBatchNorm") for n in ours.node),
        op_diff_vs_grappler=op_diff(ours, grap),
    )
    graphs = {"original": gd, "grappler": grap, "graphxform": ours, "int8": ours8}
    sessions = {k: GraphSession(g) for k, g in graphs.items()}
    try:
        lat = {}
        outs = {}
        for batch in (1, 32) if latency else (32,):
            feeds = m.make_inputs(batch)
            for k, s in sessions.items():
                outs[(k, batch)] = s.run(feeds, m.outputs)
            if latency:
                med = interleaved_latency({k: (lambda s=s, f=feeds: s.run(f, m.outputs)) for k, s in sessions.items()},
                                          runs if batch == 1 else max(5, runs // 4))
                lat.update({f"{k}_b{batch}_ms": v * 1e3 for k, v in med.items()})
    finally:
        for s in sessions.values():
            s.close()
    if latency:
        row["latency"] = lat
        row["latency_ratio_b1"] = lat["graphxform_b1_ms"] / lat["original_b1_ms"]
        row["latency_ratio_int8_b1"] = lat["int8_b1_ms"] / lat["original_b1_ms"]
    row["max_rel_diff"] = max(rel_diff(a, b) for a, b in zip(outs[("original", 32)], outs[("graphxform", 32)]))
    row["max_rel_diff_grappler"] = max(rel_diff(a, b) for a, b in zip(outs[("original", 32)], outs[("grappler", 32)]))
    row["max_rel_diff_int8"] = max(rel_diff(a, b) for a, b in zip(outs[("original", 32)], outs[("int8", 32)]))
    row.update(top1(outs[("original", 32)][0], outs[("int8", 32)][0]))
    if latency:
        row["load_s_original"] = servable_load_time(gd, m.inputs, m.outputs)
        row["load_s_graphxform"] = servable_load_time(ours, m.inputs, m.outputs)
        row["load_s_int8"] = servable_load_time(ours8, m.inputs, m.outputs)
    row.update(_rss_row(gd, m))
    row["load_avg_end"] = load_avg()
    print(json.dumps(row, indent=1, default=float), flush=True)
    return row


# ----------------------------------------------------------------------------- the Estimator servable
def _servable_session(path: Path, key: str = "serving_default"):
    import tensorflow as tf

    graph = tf.Graph()
    sess = tf.compat.v1.Session(graph=graph)
    meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(path))
    sig = meta.signature_def[key]
    fetch = {k: graph.get_tensor_by_name(v.name) for k, v in sorted(sig.outputs.items())}
    (info,) = sig.inputs.values()
    return sess, graph.get_tensor_by_name(info.name), fetch


def build_estimator_servable(cache: Path) -> tuple[Path, Path] | str:
    """(servable dir, samples npz), building them once with the Estimator venv; or why it cannot."""
    target = cache / "estimator_large_embedding"
    samples = cache / "estimator_large_embedding.samples.npz"
    if (target / "saved_model.pb").exists() and samples.exists():
        return target, samples
    if not Path(ESTIMATOR_PYTHON).exists():
        return (f"no Estimator Python at {ESTIMATOR_PYTHON} (TF 2.15 + tensorflow-estimator; set "
                "$GX_ESTIMATOR_PYTHON): the Estimator servable is skipped")
    cache.mkdir(parents=True, exist_ok=True)
    res = subprocess.run([ESTIMATOR_PYTHON, str(ROOT / "fixtures" / "make_estimator_fixtures.py"),
                          "--large-embedding", str(target)], capture_output=True, text=True, check=False)
    if res.returncode != 0 or not (target / "saved_model.pb").exists():
        return f"building the Estimator servable failed: {res.stderr.strip().splitlines()[-1:]}"
    return target, samples


def bench_estimator(cache: Path, repeat: int, runs: int) -> dict:
    import graphxform
    from graphxform.engine.pipeline import build_pipeline
    from graphxform.engine.runner import run_pipeline
    from graphxform.model.export import dir_size, export

    print("== Estimator DNNClassifier, 100k x 64 hashed embedding", flush=True)
    built = build_estimator_servable(cache)
    if isinstance(built, str):
        print(built, flush=True)
        return {"model": "EstimatorDNN100kx64", "skipped": built}
    src, samples_path = built
    row: dict = {"model": "EstimatorDNN100kx64", "measured": time.strftime("%Y-%m-%d %H:%M"),
                 "load_avg_start": load_avg(), "dir_mb_in": dir_size(src) / 2**20}
    outdir = Path(tempfile.mkdtemp(prefix="gx_bench_est_"))
    try:
        for label, quantize in (("graphxform", False), ("int8", "int8")):
            steps: dict[str, list[float]] = {"load": [], "freeze": [], "pipeline": [], "export": []}
            for r in range(repeat):
                t0 = time.perf_counter()
                model = graphxform.load(src)
                t1 = time.perf_counter()
                nodes_loaded = len(model.graph)
                model.freeze()
                t2 = time.perf_counter()
                nodes_frozen = len(model.graph)
                if r == 0 and label == "graphxform":
                    frozen_gd = model.graph.to_graph_def()
                    # What the servable must keep: every signature's outputs, the init op, the table initializers.
                    frozen_fetch = sorted({t.split(":")[0].lstrip("^") for s in model.signatures.values()
                                           for spec in s.outputs.values() for t in spec.tensor_names()}
                                          | {t.split(":")[0].lstrip("^") for t in
                                             [model.init_op or "", *model.table_initializers] if t})
                run_pipeline(model.graph, build_pipeline(None, quantize=quantize))
                t3 = time.perf_counter()
                out = outdir / f"{label}_{r}"
                export(model, out)
                t4 = time.perf_counter()
                for k, v in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    steps[k].append(v)
                if r == 0 and label == "graphxform":
                    graph_after = model.graph.to_graph_def()
                    row["nodes_loaded"], row["nodes_frozen"] = nodes_loaded, nodes_frozen
            row[f"t_{label}"] = {k: statistics.median(v) for k, v in steps.items()}
            row[f"t_{label}_total"] = sum(row[f"t_{label}"].values())
            row[f"nodes_{label}"] = len(model.graph)
            row[f"dir_mb_{label}"] = dir_size(out) / 2**20
            row[f"path_{label}"] = out
        # Grappler on the same frozen graph (the optimize path's 'pipeline' step is what it compares to), asked
        # to keep what graphxform keeps: every signature's outputs, the init op and the table initializers.
        for config in GRAPPLER_CONFIGS:
            grappler(frozen_gd, [], frozen_fetch, config)  # warm
        timed = alternate({c: (lambda c=c: grappler(frozen_gd, [], frozen_fetch, c)) for c in GRAPPLER_CONFIGS},
                          repeat)
        t_grap, _, grap = timed["default"]
        t_grst, _, grst = timed["restricted"]
        row["t_grappler"], row["nodes_grappler"] = t_grap, len(grap.node)
        row["t_grappler_restricted"], row["nodes_grappler_restricted"] = t_grst, len(grst.node)
        row["ratio_pipeline_vs_grappler"] = row["t_graphxform"]["pipeline"] / t_grap
        row["ratio_pipeline_vs_grappler_restricted"] = row["t_graphxform"]["pipeline"] / t_grst
        row["op_diff_vs_grappler"] = op_diff(graph_after, grap)
        # Latency: serving_default on serialized tf.Examples, through TensorFlow's SavedModel loader.
        with np.load(samples_path, allow_pickle=False) as data:
            examples = data["serving_default/inputs"]
        servables = {"original": src, "graphxform": row["path_graphxform"], "int8": row["path_int8"]}
        sessions = {k: _servable_session(p) for k, p in servables.items()}
        try:
            lat = {}
            outs = {}
            for batch in (1, 32):
                feed = np.resize(examples, batch)
                for k, (sess, inp, fetch) in sessions.items():
                    outs[(k, batch)] = sess.run(fetch, {inp: feed})
                med = interleaved_latency({k: (lambda s=s, f=feed: s[0].run(s[2], {s[1]: f}))
                                           for k, s in sessions.items()},
                                          runs if batch == 1 else max(5, runs // 2))
                lat.update({f"{k}_b{batch}_ms": v * 1e3 for k, v in med.items()})
        finally:
            for sess, _, _ in sessions.values():
                sess.close()
        row["latency"] = lat
        row["latency_ratio_b1"] = lat["graphxform_b1_ms"] / lat["original_b1_ms"]
        row["latency_ratio_int8_b1"] = lat["int8_b1_ms"] / lat["original_b1_ms"]
        ref = outs[("original", 32)]
        row["max_rel_diff"] = rel_diff(ref["scores"], outs[("graphxform", 32)]["scores"])
        row["max_rel_diff_int8"] = rel_diff(ref["scores"], outs[("int8", 32)]["scores"])
        row["same_classes"] = bool(np.array_equal(ref["classes"], outs[("graphxform", 32)]["classes"]))
        row.update(top1(ref["scores"], outs[("int8", 32)]["scores"]))
        for k in ("path_graphxform", "path_int8"):
            row.pop(k)
        row["load_avg_end"] = load_avg()
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
    print(json.dumps(row, indent=1, default=float), flush=True)
    return row


# ----------------------------------------------------------------------------- scaling
_SCALING_CODE = "import sys; from tests.bench.run_bench import scaling_run; scaling_run(sys.argv[1], sys.argv[2])"


def scaling_run(pb_path: str, shape: str) -> None:
    """One scaling measurement in this (fresh) process: the Graph of the GraphDef at ``pb_path`` (``.io`` beside it:
    its input and output) and the default pipeline on it, timed after a warm-up on a 1,000-node graph of the same
    ``shape`` (imports, the rule registry, first calls: not per-node costs). Prints the row as JSON."""
    from tensorflow.core.framework import graph_pb2

    from graphxform.core.graph import Graph
    from graphxform.core.signature import TensorSpec
    from graphxform.engine.pipeline import build_pipeline
    from graphxform.engine.runner import run_pipeline
    from graphxform.model.model import Model, Signature
    from tests.bench.models import synthetic_graph

    def measure(gd, x: str, y: str) -> dict:
        u0 = resource.getrusage(resource.RUSAGE_SELF)
        c0, t0 = time.process_time(), time.perf_counter()
        g = Graph(gd)
        sig = Signature("serving_default", "tensorflow/serving/predict",
                        {"x": TensorSpec(x, 1, [None])}, {"y": TensorSpec(y, 1, [None])})
        Model(g, {"serving_default": sig}, source=Path("synthetic"), format="graph_def")
        t_load = time.perf_counter() - t0
        rules = build_pipeline(" ".join(DEFAULT_TRANSFORMS))
        t1 = time.perf_counter()
        rep = run_pipeline(g, rules)
        t_run = time.perf_counter() - t1
        cpu = time.process_time() - c0
        u1 = resource.getrusage(resource.RUSAGE_SELF)
        n = len(gd.node)
        return {"shape": shape, "nodes": n, "nodes_after": len(g), "load_s": t_load, "pipeline_s": t_run,
                "cpu_s": cpu, "sys_s": u1.ru_stime - u0.ru_stime, "minor_faults": u1.ru_minflt - u0.ru_minflt,
                "us_per_node": (t_load + t_run) / n * 1e6, "cpu_us_per_node": cpu / n * 1e6,
                "rules_s": {r["rule"]: round(r["seconds"], 3) for r in rep.table()}}

    measure(*synthetic_graph(1000, shape))  # warm-up, not reported
    gd = graph_pb2.GraphDef()
    gd.ParseFromString(Path(pb_path).read_bytes())
    x, y = json.loads(Path(pb_path + ".io").read_text())
    print(json.dumps(measure(gd, x, y)), flush=True)


def bench_scaling(sizes: list[int], shapes: tuple[str, ...] = ("chain", "fan"), repeat: int = 3) -> list[dict]:
    """Each synthetic graph measured ``repeat`` times, each time in a fresh process (as a user runs a model: memory
    new to the process at every size, none left warm by a smaller size); the row is the run of median wall time,
    with every run's wall time beside it (this machine is shared: one run can take 1.5× another). The sizes of a
    shape take turns (one run of each, smallest first, ``repeat`` times over), so that the time per node of one
    size is compared with that of another measured under the same conditions, not minutes apart."""
    from tests.bench.models import synthetic_graph

    rows = []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes:
            graphs = {}
            for n in sizes:
                gd, x, y = synthetic_graph(n, shape)
                pb = graphs[n] = Path(tmp) / f"{shape}{n}.pb"
                pb.write_bytes(gd.SerializeToString())
                Path(f"{pb}.io").write_text(json.dumps([x, y]))
                del gd
            la = load_avg()
            runs: dict[int, list[dict]] = {n: [] for n in sizes}
            for _ in range(repeat):
                for n in sizes:
                    res = subprocess.run([sys.executable, "-c", _SCALING_CODE, str(graphs[n]), shape],
                                         capture_output=True, text=True, env=env)
                    if res.returncode:
                        raise RuntimeError(f"the scaling run of the {n}-node {shape} failed "
                                           f"(exit {res.returncode}):\n{res.stderr[-3000:]}")
                    runs[n].append(json.loads(res.stdout.strip().splitlines()[-1]))
            for n in sizes:
                done = sorted(runs[n], key=lambda r: r["load_s"] + r["pipeline_s"])
                row = dict(done[(len(done) - 1) // 2], load_avg=la, load_avg_end=load_avg(),
                           measured=time.strftime("%Y-%m-%d %H:%M"),
                           walls=[round(r["load_s"] + r["pipeline_s"], 2) for r in done])
                print(json.dumps(row), flush=True)
                rows.append(row)
                graphs[n].unlink()
    return rows


# ----------------------------------------------------------------------------- report
def _f(v, fmt: str) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def markdown(results: dict) -> str:
    lines = [f"Machine: {results['machine']} ({results.get('cpu') or 'CPU model not recorded'}); load average {results['load_avg_start']} at the start, "
             f"{results.get('load_avg_end', '?')} at the end (other jobs share the 2 cores)  ",
             f"TensorFlow {results['tensorflow']}, run {results['date']}", ""]
    models = [r for r in results["models"] if "skipped" not in r and "nodes_in" in r]
    if models:
        lines += [
            "Grappler: `tf_optimizer.OptimizeGraph` on the frozen graph, fetch = the outputs, feeds = the "
            "placeholders. *default*: TensorFlow's default `RewriterConfig` (every default optimizer, "
            "`meta_optimizer_iterations` 2) with only `remapping` and `layout_optimizer` OFF; *restricted*: "
            "`optimizers = [constfold, arithmetic, dependency]`. Ratios are graphxform / Grappler default; "
            "transform times are medians of alternating runs (a shared machine: indicative under load).", "",
            "| model | nodes in | graphxform | Grappler default | Grappler restricted | nodes ratio | OFI | "
            "graphxform s | Grappler default s | Grappler restricted s | time ratio | "
            "MB in | MB out | MB int8 | max rel diff (graphxform / Grappler) | int8 rel diff | "
            "int8 top-1 (all / confident half) | "
            "peak RSS − import / file: API (TF session first: − import, − warm TF) / CLI .pb→.pb | "
            "measured (load avg) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in models:
            lines.append(
                f"| {r['model']} | {r['nodes_in']} | {r['nodes_graphxform']} | {r['nodes_grappler']} | "
                f"{_f(r.get('nodes_grappler_restricted'), 'd')} | "
                f"{r['nodes_ratio_vs_grappler']:.2f} | {_f(r['nodes_ofi'], 'd')} | "
                f"{r['t_graphxform']:.2f} | {r['t_grappler']:.2f} | {_f(r.get('t_grappler_restricted'), '.2f')} | "
                f"{r['ratio_vs_grappler']:.2f} | "
                f"{r['bytes_in'] / 2**20:.1f} | {r['bytes_graphxform'] / 2**20:.1f} | {r['bytes_int8'] / 2**20:.1f} | "
                f"{r['max_rel_diff']:.1e} / {_f(r.get('max_rel_diff_grappler'), '.1e')} | "
                f"{r['max_rel_diff_int8']:.1e} | "
                f"{_f(r.get('top1_agreement_int8'), '.2f')} / {_f(r.get('top1_agreement_int8_confident'), '.2f')} | "
                f"{r['rss_ratio']:.2f} ({_f(r.get('rss_ratio_prewarmed'), '.2f')}, "
                f"{_f(r.get('rss_ratio_warm'), '.2f')}) / "
                f"{_f(r.get('rss_ratio_cli'), '.2f')} | "
                f"{r.get('measured', '?')} "
                f"({r.get('load_avg_start', '?')}) |"
            )
        diffs = [r for r in models if r.get("op_diff_vs_grappler")]
        if diffs:
            lines += ["", "Op types whose counts differ, graphxform − Grappler default (positive: graphxform leaves "
                      "more; see docs/grappler_gaps.md):", ""]
            for r in diffs:
                diff = sorted(r["op_diff_vs_grappler"].items())
                lines.append(f"* {r['model']}: " + ", ".join(f"{op} {d:+d}" for op, d in diff))
        lines += ["", "Latency (ms, median of alternating runs, warm TF1 session with Grappler on as in serving) and "
                  "servable load time (s):", "",
                  "| model | orig b1 | Grappler default b1 | graphxform b1 | int8 b1 | graphxform/orig b1 | "
                  "int8/orig b1 | "
                  "orig b32 | graphxform b32 | int8 b32 | load orig | load graphxform | load int8 |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in models if "latency" in r):
            lat = r["latency"]
            lines.append(
                f"| {r['model']} | {lat['original_b1_ms']:.1f} | {lat['grappler_b1_ms']:.1f} | "
                f"{lat['graphxform_b1_ms']:.1f} | {lat['int8_b1_ms']:.1f} | {r['latency_ratio_b1']:.2f} | "
                f"{r['latency_ratio_int8_b1']:.2f} | {lat['original_b32_ms']:.1f} | {lat['graphxform_b32_ms']:.1f} | "
                f"{lat['int8_b32_ms']:.1f} | {r['load_s_original']:.2f} | {r['load_s_graphxform']:.2f} | "
                f"{r['load_s_int8']:.2f} |"
            )
    for r in results["models"]:
        if r["model"] == "EstimatorDNN100kx64":
            lines += ["", "Estimator DNNClassifier servable, 100k×64 hashed embedding (optimize path: load → freeze → "
                      f"pipeline → export; measured {r.get('measured', '?')}, load avg {r.get('load_avg_start', '?')}):",
                      ""]
            if "skipped" in r:
                lines.append(f"Skipped: {r['skipped']}")
                continue
            tf_, t8 = r["t_graphxform"], r["t_int8"]
            lat = r["latency"]
            lines += [
                "| | load s | freeze s | pipeline s | export s | total s | nodes | dir MB | b1 ms | b32 ms |",
                "|---|---|---|---|---|---|---|---|---|---|",
                f"| original | | | | | | {r['nodes_loaded']} (frozen {r['nodes_frozen']}) | {r['dir_mb_in']:.1f} | "
                f"{lat['original_b1_ms']:.2f} | {lat['original_b32_ms']:.2f} |",
                f"| graphxform float | {tf_['load']:.2f} | {tf_['freeze']:.2f} | {tf_['pipeline']:.3f} | "
                f"{tf_['export']:.2f} | {r['t_graphxform_total']:.2f} | {r['nodes_graphxform']} | "
                f"{r['dir_mb_graphxform']:.1f} | {lat['graphxform_b1_ms']:.2f} | {lat['graphxform_b32_ms']:.2f} |",
                f"| graphxform int8 | {t8['load']:.2f} | {t8['freeze']:.2f} | {t8['pipeline']:.3f} | "
                f"{t8['export']:.2f} | {r['t_int8_total']:.2f} | {r['nodes_int8']} | {r['dir_mb_int8']:.1f} | "
                f"{lat['int8_b1_ms']:.2f} | {lat['int8_b32_ms']:.2f} |",
                f"| Grappler default (frozen graph) | | | {r['t_grappler']:.3f} | | | {r['nodes_grappler']} | | | |",
                f"| Grappler restricted (frozen graph) | | | {_f(r.get('t_grappler_restricted'), '.3f')} | | | "
                f"{_f(r.get('nodes_grappler_restricted'), 'd')} | | | |",
                "",
                f"Scores: max rel diff {r['max_rel_diff']:.1e} (float), {r['max_rel_diff_int8']:.1e} (int8); "
                f"same classes: {r['same_classes']}; int8 top-1 agreement "
                f"{_f(r.get('top1_agreement_int8'), '.2f')}.",
            ]
            if r.get("op_diff_vs_grappler"):
                diff = sorted(r["op_diff_vs_grappler"].items())
                lines += ["", "Op types whose counts differ, graphxform − Grappler default (Grappler asked to keep "
                          "every signature's outputs, the init op and the table initializers): "
                          + ", ".join(f"{op} {d:+d}" for op, d in diff)]
    if results.get("scaling"):
        how = ("; each graph run in fresh processes, the row is the run of median wall time"
               if all(r.get("walls") for r in results["scaling"]) else "")
        lines += ["", f"Scaling of the default pipeline (synthetic graphs; load = building the Graph{how}):", "",
                  "| shape | nodes | nodes after | load s | pipeline s | wall s | every run, wall s | CPU s | "
                  "of which system s | page faults | µs/node (wall) | µs/node (CPU) | load avg |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in results["scaling"]:
            faults = r.get("minor_faults")
            lines.append(f"| {r['shape']} | {r['nodes']} | {r['nodes_after']} | {r['load_s']:.1f} | "
                         f"{r['pipeline_s']:.1f} | {r['load_s'] + r['pipeline_s']:.1f} | "
                         f"{', '.join(f'{w:.1f}' for w in r.get('walls', ())) or '—'} | {r['cpu_s']:.1f} | "
                         f"{_f(r.get('sys_s'), '.1f')} | {'—' if faults is None else f'{faults:,}'} | "
                         f"{r['us_per_node']:.1f} | {r['cpu_us_per_node']:.1f} | {r['load_avg']} |")
        steps = scaling_steps(results["scaling"])
        if steps:
            lines += ["", "Seconds of each step (the Graph build, then each rule taking over 1 % of a run) at each size, "
                      "and its time per node at the largest size over that at the next (1.00: linear):", "",
                      "| shape | step | " + " | ".join(f"{size_label(n)} s" for n in steps[0]["sizes"])
                      + " | growth per node |",
                      "|---|---|" + "---|" * (len(steps[0]["sizes"]) + 1)]
            for s in steps:
                lines.append(f"| {s['shape']} | {s['step']} | " + " | ".join(f"{v:.3f}" for v in s["seconds"])
                             + f" | {s['growth']:.2f} |")
    if results.get("probes"):
        lines += ["", "One probe into a dict keyed by node name, ns (tests/bench/probes.py, no graphxform code; best of "
                  "3 passes): with the table's own keys in order / equal strings in order / equal strings shuffled:", "",
                  "| entries | same keys, in order | equal strings, in order | equal strings, shuffled |",
                  "|---|---|---|---|"]
        for p in results["probes"]:
            lines.append(f"| {p['entries']:,} | {p['ns_same']:.0f} | {p['ns_equal']:.0f} | {p['ns_shuffled']:.0f} |")
    return "\n".join(lines) + "\n"


def size_label(n: int) -> str:
    """``10k``, ``100k``, ``1M``: a scaling size (a synthetic graph has a few nodes less than asked) by its order."""
    return f"{round(n / 1e6):g}M" if n >= 500_000 else f"{round(n / 1e3):g}k"


def scaling_steps(scaling: list[dict], share: float = 0.01) -> list[dict]:
    """Per shape, the steps of its runs (``"Graph build"``, then each rule over ``share`` of the largest run's wall
    time): ``{"shape", "step", "sizes", "seconds", "growth"}``, ``growth`` being the step's time per node at the
    largest size over that at the next smaller one."""
    out = []
    for shape in sorted({r["shape"] for r in scaling}):
        rows = sorted((r for r in scaling if r["shape"] == shape and "rules_s" in r), key=lambda r: r["nodes"])
        if len(rows) < 2:
            continue
        big, prev = rows[-1], rows[-2]
        total = big["load_s"] + big["pipeline_s"]
        steps = {"Graph build": [r["load_s"] for r in rows]}
        for rule, s in big["rules_s"].items():
            if s > share * total:
                steps[rule] = [r["rules_s"].get(rule, 0.0) for r in rows]
        for step, seconds in steps.items():
            if seconds[-2] > 0:
                growth = (seconds[-1] / big["nodes"]) / (seconds[-2] / prev["nodes"])
                out.append({"shape": shape, "step": step, "sizes": [r["nodes"] for r in rows],
                            "seconds": seconds, "growth": growth})
    return out


def merge_results(old: dict, new: dict) -> dict:
    """``old`` with the model rows and scaling rows of ``new`` replacing theirs (new ones appended)."""
    for r in [*old.get("models", []), *old.get("scaling", [])]:
        r.setdefault("measured", old.get("date"))
    models = {r["model"]: r for r in old.get("models", [])}
    models.update({r["model"]: r for r in new["models"]})
    scaling = {(r["shape"], r["nodes"]): r for r in old.get("scaling", [])}
    scaling.update({(r["shape"], r["nodes"]): r for r in new["scaling"]})
    merged = dict(old)
    merged.update(machine=new["machine"], cores=new.get("cores"), cpu=new.get("cpu"), tensorflow=new["tensorflow"],
                  models=list(models.values()),
                  scaling=sorted(scaling.values(), key=lambda r: (r["shape"], r["nodes"])))
    merged["runs"] = [*old.get("runs", [{"date": old.get("date"), "load_avg_start": old.get("load_avg_start"),
                                         "load_avg_end": old.get("load_avg_end")}]),
                      {"date": new["date"], "machine": new["machine"], "cpu": new.get("cpu"),
                       "load_avg_start": new["load_avg_start"], "load_avg_end": new["load_avg_end"],
                       "models": [r["model"] for r in new["models"]],
                       "scaling": [f"{r['shape']} {r['nodes']}" for r in new["scaling"]]}]
    merged["date"], merged["load_avg_start"], merged["load_avg_end"] = new["date"], new["load_avg_start"], new["load_avg_end"]
    if new.get("probes"):
        merged["probes"] = new["probes"]
    return merged


def _rss_only(out: Path, names: list[str]) -> int:
    """``--rss-only``: the peak-RSS columns of each named row of ``out`` measured again; RESULTS.md rewritten."""
    from tests.bench import models

    results = json.loads(out.read_text())
    rows = {r["model"]: r for r in results["models"]}
    for name in names:
        if name not in rows:
            raise SystemExit(f"--rss-only: {out} has no row for {name!r}; measure it first (--only {name})")
        m = models.build(name)
        rows[name].update(_rss_row(m.graph_def, m), rss_measured=time.strftime("%Y-%m-%d %H:%M"))
        print(json.dumps({k: v for k, v in rows[name].items() if k.startswith("rss") or k == "model"}), flush=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    out.with_name("RESULTS.md").write_text(markdown(results))
    print("README.md and docs/ quote these figures: run `python -m tests.figures --update`", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    from tests.bench import models

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=None, help=f"subset of {models.ALL_MODELS}")
    p.add_argument("--quick", action="store_true", help="MobileNetV2 + ResNet50 + estimator, scaling to 100k")
    p.add_argument("--only", metavar="MODEL", default=None,
                   help=f"measure one model (one of {[*models.ALL_MODELS, ESTIMATOR_ROW]}) and update its row in "
                        "--out, keeping the others: --models MODEL --no-scaling --no-estimator --merge "
                        "(the Estimator row for its name)")
    p.add_argument("--no-latency", action="store_true",
                   help="skip the latency and servable-load measurements (nodes, times, output diff and RSS only)")
    p.add_argument("--no-scaling", action="store_true")
    p.add_argument("--no-estimator", action="store_true")
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--shapes", default="chain,fan")
    p.add_argument("--repeat", type=int, default=3, help="transform runs per tool (median)")
    p.add_argument("--scaling-repeat", type=int, default=3,
                   help="fresh-process runs per scaling graph (the row: the one of median wall time)")
    p.add_argument("--runs", type=int, default=30, help="latency runs at batch 1")
    p.add_argument("--cache", default=str(DEFAULT_CACHE), help="where the Estimator servable is built (not committed)")
    p.add_argument("--out", default=str(HERE / "results.json"), help="results JSON; RESULTS.md goes beside it")
    p.add_argument("--merge", action="store_true",
                   help="update the rows of an existing --out (same model, same scaling shape/size) and keep the rest")
    p.add_argument("--report-only", action="store_true", help="rewrite RESULTS.md from --out; measure nothing")
    p.add_argument("--rss-only", action="store_true",
                   help="re-measure only the peak-RSS columns of the --models rows of --out (default: every model), "
                        "keeping the rest of each row (memory does not depend on the machine's load)")
    args = p.parse_args(argv)
    if args.report_only:
        out = Path(args.out)
        md = markdown(json.loads(out.read_text()))
        out.with_name("RESULTS.md").write_text(md)
        print(md)
        return 0
    if args.rss_only:
        return _rss_only(Path(args.out), args.models or models.ALL_MODELS)
    if args.only is not None:
        if args.only not in (*models.ALL_MODELS, ESTIMATOR_ROW):
            p.error(f"--only {args.only}: not a benchmark model; one of {[*models.ALL_MODELS, ESTIMATOR_ROW]}")
        args.models = [] if args.only == ESTIMATOR_ROW else [args.only]
        args.no_estimator = args.only != ESTIMATOR_ROW
        args.no_scaling = args.merge = True
    import tensorflow as tf

    names = args.models if args.models is not None else (["MobileNetV2", "ResNet50"] if args.quick
                                                          else models.ALL_MODELS)
    sizes = [int(s) for s in ("10000,100000" if args.quick else args.sizes).split(",") if s]
    results = {**machine_info(), "tensorflow": tf.__version__,
               "date": time.strftime("%Y-%m-%d %H:%M"), "load_avg_start": load_avg(), "models": [], "scaling": []}
    for name in names:
        results["models"].append(bench_model(name, args.repeat, args.runs, latency=not args.no_latency))
    if not args.no_estimator:
        results["models"].append(bench_estimator(Path(args.cache), args.repeat, args.runs))
    if not args.no_scaling:
        results["scaling"] = bench_scaling(sizes, tuple(args.shapes.split(",")), args.scaling_repeat)
        results["probes"] = probe_costs(sizes)
    results["load_avg_end"] = load_avg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge and out.exists():
        results = merge_results(json.loads(out.read_text()), results)
    out.write_text(json.dumps(results, indent=1, default=str))
    md = markdown(results)
    out.with_name("RESULTS.md").write_text(md)
    print(md)
    print("README.md and docs/ quote these figures: run `python -m tests.figures --update`", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
