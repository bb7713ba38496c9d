"""Training benchmarks (issue 3), printed as ratios measured in one run; not collected by pytest.

    python tests/bench/bench_train.py throughput [--batch 8] [--steps 4]
    python tests/bench/bench_train.py profile [--batch 8]
    python tests/bench/bench_train.py memory --cohort DIR
    python tests/bench/bench_train.py cv --cohort DIR [--out RUN_DIR]

throughput: images/s of the Flax ResNet50 pmap train step (augmentation included) in several settings
  (`FLAX_SETUPS`: before the stride-2 rewrite, 2 or 1 host devices, bfloat16) vs a TensorFlow Keras
  ResNet50 (weights=None) with the same input [224, 224, 8], 3 classes and global batch, each in its
  own process on this machine, one after the other, from the median step time. Target: ratio >= 1.
  Run it under the CPU lock on an otherwise idle machine; repeat it and take medians.
profile: where the default Flax step (width 64, one device) spends its time on XLA:CPU: a profiler trace
  of two steps (`--xla_cpu_enable_xprof_traceme`), each XLA operation's time summed by kind (YNNPACK
  convolution/dot fusions, layout copies and transposes, elementwise fusions...), beside Keras' whole step.
memory: peak RSS of a small-configuration training run (`radpath train`, 2 epochs, 2 folds). Target < 4 GB.
cv: the small CPU configuration's 5-fold cross-validation on the default synthetic cohort: mean
  challenge score (target >= 0.85) and wall time (target < 30 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time

JAX_STEP = textwrap.dedent("""
    import os, sys, time, json
    batch, steps, width, n_dev = (int(a) for a in sys.argv[1:5])
    settings = json.loads(sys.argv[5])
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n_dev}"
    import jax, numpy as np
    if settings.pop("before", False):  # every convolution a plain lax one (before fast_conv)
        import radpath.train.resnet
        radpath.train.resnet.fast_conv = jax.lax.conv_general_dilated
    from radpath.train.config import TrainConfig
    from radpath.train.examples import Examples
    from radpath.train.loop import (_as_pmap_output, _pmapped_train_step, epoch_batches, init_variables,
                                    make_model, make_optimizer, TrainState, AXIS)
    cfg = TrainConfig(width=width, batch_size=batch, **settings)
    devs = jax.local_devices()
    v = init_variables(cfg)
    state = TrainState.create(apply_fn=make_model(cfg, AXIS).apply, params=v["params"],
                              tx=make_optimizer(cfg, steps), batch_stats=v["batch_stats"])
    state = _as_pmap_output(state, devs)
    rng = np.random.default_rng(0)
    ex = Examples(["x"] * batch, rng.normal(size=(batch, 1, 224, 224, 8)).astype(np.float16),
                  np.arange(batch) % 3, np.full(batch, 2e4, np.float32), (0,), [])
    step = _pmapped_train_step(cfg, tuple(devs))
    b = next(epoch_batches(ex, cfg, 0, len(devs)))
    keys = jax.random.split(jax.random.PRNGKey(0), len(devs))
    state, m = step(state, *b, keys); jax.block_until_ready(m)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, m = step(state, *b, keys)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t)
    print(json.dumps({"images_per_s": batch / float(np.median(times)), "devices": len(devs)}))
""")

KERAS_STEP = textwrap.dedent("""
    import sys, time, json
    import numpy as np, tensorflow as tf
    batch, steps = int(sys.argv[1]), int(sys.argv[2])
    model = tf.keras.applications.ResNet50(weights=None, input_shape=(224, 224, 8), classes=3)
    model.compile(optimizer=tf.keras.optimizers.AdamW(1e-3), loss="sparse_categorical_crossentropy", jit_compile=False)
    x = np.random.default_rng(0).normal(size=(batch, 224, 224, 8)).astype(np.float32)
    y = np.arange(batch) % 3
    model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    print(json.dumps({"images_per_s": batch / float(np.median(times))}))
""")

PROFILE_STEP = JAX_STEP[: JAX_STEP.index("times = []")].replace(
    'f"--xla_force_host_platform_device_count={n_dev}"',
    'f"--xla_force_host_platform_device_count={n_dev} --xla_cpu_enable_xprof_traceme=true"',
) + textwrap.dedent("""
    import collections, glob, gzip, re, tempfile
    out = tempfile.mkdtemp()
    with jax.profiler.trace(out, create_perfetto_trace=True):
        for _ in range(2):
            state, m = step(state, *b, keys)
            jax.block_until_ready(m)
    trace = json.load(gzip.open(sorted(glob.glob(out + "/**/*.trace.json.gz", recursive=True))[-1]))
    kinds = collections.Counter()
    for e in trace["traceEvents"]:
        if e.get("ph") == "X" and not e["name"].startswith(("ThunkExecutor", "$", "SlinkyThreadPool", "Pjit")):
            kinds[re.sub(r"[.][0-9]+$", "", e["name"])] += e.get("dur", 0) / 2e3
    print(json.dumps({"ms_per_step": dict(kinds.most_common(12)), "total_ms": sum(kinds.values())}))
""")
"""JAX_STEP, then two steps under the profiler: XLA operation time per kind (number suffixes dropped)."""

FLAX_SETUPS = {
    "before fast_conv (every conv a lax conv), 2 devices, float32": (2, {"before": True}),
    "2 devices, float32 (the default)": (2, {}),
    "1 device, float32": (1, {}),
    "2 devices, compute_dtype bfloat16": (2, {"compute_dtype": "bfloat16"}),
}
"""Flax settings measured against Keras: pmap device count (XLA_FLAGS) and TrainConfig changes."""


def _run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(args) -> None:
    """Each setting in its own process, one after the other; images/s from the median step time."""
    keras = _run(KERAS_STEP, str(args.batch), str(args.steps))["images_per_s"]
    print(
        f"train step, ResNet50 width 64, [224, 224, 8], 3 classes, global batch {args.batch}, median of {args.steps}:"
    )
    print(f"  TensorFlow Keras ResNet50 (float32):   {keras:.2f} images/s")
    for name, (n_dev, settings) in FLAX_SETUPS.items():
        flax = _run(JAX_STEP, str(args.batch), str(args.steps), "64", str(n_dev), json.dumps(settings))
        print(
            f"  Flax, {name}: {flax['images_per_s']:.2f} images/s, ratio Flax/Keras {flax['images_per_s'] / keras:.2f}"
        )
    print("  (target: ratio >= 1 for the default setting)")


def profile(args) -> None:
    """The default step's XLA operations by kind, in ms per step, against Keras' whole step."""
    keras = _run(KERAS_STEP, str(args.batch), str(args.steps))["images_per_s"]
    prof = _run(PROFILE_STEP, str(args.batch), "1", "64", "1", "{}")
    print(
        f"Flax ResNet50 width 64, batch {args.batch}, one device: {prof['total_ms']:.0f} ms of XLA operations per step"
    )
    print(f"Keras' whole step: {1e3 * args.batch / keras:.0f} ms")
    for kind, ms in prof["ms_per_step"].items():
        print(f"  {ms:8.1f} ms  {100 * ms / prof['total_ms']:5.1f} %  {kind}")


def _radpath(*a: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "radpath", *a], check=True)
    return time.perf_counter() - t


def memory(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _radpath(
            "train", args.cohort, "--out", f"{tmp}/run", "--devices", "2", "--epochs", "2", "--folds", "2", "--quiet"
        )
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    print(f"peak RSS of a small-configuration training run (width 8, 2 devices): {peak_gb:.2f} GB (target < 4 GB)")


def cv(args) -> None:
    out = args.out or tempfile.mkdtemp()
    seconds = _radpath(
        "train", args.cohort, "--out", out, "--devices", "2", "--folds", "5", "--holdout", "0", "--quiet"
    )
    m = json.loads(open(os.path.join(out, "metrics.json")).read())["cross_validation"]
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    print(
        f"5-fold CV on {args.cohort}: mean challenge score {m['mean']:.4f} (95% CI {m['ci95']['mean'][0]:.3f}-"
        f"{m['ci95']['mean'][1]:.3f}; target >= 0.85), F1 {m['f1_micro']:.4f}, kappa {m['kappa']:.4f}, "
        f"BA {m['balanced_accuracy']:.4f}; wall time {seconds / 60:.1f} min including the final model "
        f"(target < 30 min); peak RSS {peak_gb:.2f} GB"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["throughput", "profile", "memory", "cv"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--cohort")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.what in ("memory", "cv") and not args.cohort:
        ap.error("--cohort is required (e.g. `radpath synth cohort --cases 221` first)")
    {"throughput": throughput, "profile": profile, "memory": memory, "cv": cv}[args.what](args)


if __name__ == "__main__":
    main()
