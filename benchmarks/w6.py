"""W6 (issue 15): the tutorial's grid on tutorial-sized data, 60,000 rows of 28x28, against the hand-written loop.

The rows are synthetic, of MNIST's shape and type (uint8 images, 10 classes, each class a
noisy prototype), written as an ``mnist.npz`` in Keras' format (60,000 training and 10,000
test images): nothing downloads. Both contenders run the tutorial's MNIST experiment
(``experiment=tutorial_mnist_holdout``: the last 10,000 training images validate, 5 epochs)
over its 8-config grid, each in a fresh process, and each reports its wall time and peak RSS
(the kernel's, :func:`benchmarks.contenders.measured`):

* ``loop``: the tutorial's loop: the file read once, ``x_train`` sliced once, a fresh model
  per config, ``model.fit`` with validation data;
* ``sweep``: ``sweep -m dataset=mnist dataset.path=<file> ...`` with its default launcher.

The dataset as float32 is :data:`ROWS` x 784 x 4 bytes (188 MB): a copy per job or per
population member would show in sweep's peak against the loop's.

    python -m benchmarks.w6 [--quick]
    python -m benchmarks.w6 child loop DATA OUT [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.contenders import ROOT, SWEEP, _quiet_tf, config_key, key, measured, sweep_records, tutorial_model
from benchmarks.workloads import GRID, Workload

ROWS, TEST_ROWS, VALIDATION_ROWS = 60_000, 10_000, 10_000
W6 = Workload("W6", **GRID, folds=None, epochs=5)
QUICK = Workload("W6", lrs=(1e-2,), l2s=(0.0,), dropouts=(0.0, 0.5), folds=None, epochs=1)
QUICK_ROWS = 6_000


def write_data(path: Path, rows: int) -> Path:
    """An ``mnist.npz`` of ``rows`` training and ``rows // 6`` test images (uint8 28x28, 10 classes), seeded."""
    rng = np.random.default_rng(0)
    prototypes = rng.integers(0, 128, (10, 28, 28), dtype=np.uint8)
    parts = {}
    for name, n in (("train", rows), ("test", rows // 6)):
        y = rng.integers(0, 10, n, dtype=np.uint8)
        parts[f"x_{name}"] = prototypes[y] + rng.integers(0, 128, (n, 28, 28), dtype=np.uint8)
        parts[f"y_{name}"] = y
    np.savez(path, **parts)
    return path


def _overrides(workload: Workload, data: Path, validation_rows: int) -> list[str]:
    return ["experiment=tutorial_mnist_holdout", f"dataset.path={data}", f"validation.size={validation_rows}", *workload.sweep_overrides()]


def loop(data: Path, workload: Workload, validation_rows: int) -> dict[str, Any]:
    """The tutorial's loop on ``data``: its rows as sweep reads them (``sweep.data``), the last ``validation_rows`` validating."""
    _quiet_tf()
    import keras
    from omegaconf import OmegaConf

    from sweep.config import KerasNpzConfig
    from sweep.data import load_dataset

    dataset = load_dataset(OmegaConf.structured(KerasNpzConfig(name="mnist", filename="mnist.npz", path=str(data))))
    n_train = len(dataset.y) - validation_rows
    x_train, y_train, x_val, y_val = dataset.x[:n_train], dataset.y[:n_train], dataset.x[n_train:], dataset.y[n_train:]
    accuracy = {}
    for lr, l2, dropout in workload.configs:
        keras.utils.set_random_seed(0)
        model = tutorial_model(lr, l2, dropout, x_train.shape[1:])
        fit = model.fit(x_train, y_train, epochs=workload.epochs, batch_size=workload.batch_size, validation_data=(x_val, y_val), verbose=0)
        accuracy[key(lr, l2, dropout)] = fit.history["val_accuracy"][-1]
    return accuracy


def bench(quick: bool = False) -> dict[str, Any]:
    """Run both contenders once each on freshly written data; return W6's columns of the benchmark's CSV row."""
    workload, rows = (QUICK, QUICK_ROWS) if quick else (W6, ROWS)
    validation_rows = rows // 6
    with tempfile.TemporaryDirectory(prefix="sweep-w6-") as tmp:
        data = write_data(Path(tmp) / "mnist.npz", rows)
        out = Path(tmp) / "loop.json"
        cmd = [sys.executable, "-m", "benchmarks.w6", "child", "loop", str(data), str(out), *(["--quick"] if quick else [])]
        loop_s, loop_rss = measured(cmd, ROOT, Path(tmp) / "loop.log")
        loop_acc = json.loads(out.read_text())
        sweep_dir = Path(tmp) / "sweep"
        cmd = [SWEEP, "-m", *_overrides(workload, data, validation_rows), f"hydra.sweep.dir={sweep_dir}"]
        sweep_s, sweep_rss = measured(cmd, Path(tmp), Path(tmp) / "sweep.log")
        records = [r for _, r in sweep_records(sweep_dir)]
    if len(records) != len(workload.configs) or any(r["status"] != "completed" for r in records):
        raise RuntimeError(f"W6 sweep: {len(records)} records of {len(workload.configs)}, not all completed")
    sweep_acc = {config_key(r): r["val_accuracy"] for r in records}
    return {
        "W6_rows": rows, "W6_configs": len(workload.configs), "W6_epochs": workload.epochs,
        "W6_dataset_mb": rows * 28 * 28 * 4 / 2**20,
        "W6_loop_s": loop_s, "W6_sweep_s": sweep_s, "W6_sweep_over_loop": sweep_s / loop_s,
        "W6_loop_rss_mb": loop_rss, "W6_sweep_rss_mb": sweep_rss, "W6_sweep_rss_over_loop": sweep_rss / loop_rss,
        "W6_loop_acc": max(loop_acc.values()), "W6_sweep_acc": max(sweep_acc.values()),
    }  # fmt: skip


def report(row: dict[str, Any]) -> str:
    """W6's lines of the benchmark's report."""
    return "\n".join([
        f"W6             the tutorial's grid on {row['W6_rows']:,} rows of 28x28 ({row['W6_configs']} configs, {row['W6_epochs']} epochs; "
        f"the rows as float32: {row['W6_dataset_mb']:.0f} MB)",
        f"  hand-written loop {row['W6_loop_s']:7.1f} s  peak RSS {row['W6_loop_rss_mb']:6.0f} MB  best val acc {row['W6_loop_acc']:.4f}",
        f"  sweep             {row['W6_sweep_s']:7.1f} s  peak RSS {row['W6_sweep_rss_mb']:6.0f} MB  best val acc {row['W6_sweep_acc']:.4f}",
        f"  sweep/loop: time {row['W6_sweep_over_loop']:.2f}x, peak memory {row['W6_sweep_rss_over_loop']:.2f}x",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.w6", description=__doc__.split("\n")[0])
    parser.add_argument("child", nargs="*", help="child loop DATA OUT: run the hand-written loop, write its accuracies to OUT")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS} rows, 2 configs, 1 epoch")
    args = parser.parse_args(argv)
    if args.child:
        _, _, data, out = args.child
        workload, rows = (QUICK, QUICK_ROWS) if args.quick else (W6, ROWS)
        start = time.perf_counter()
        accuracy = loop(Path(data), workload, rows // 6)
        Path(out).write_text(json.dumps(accuracy))
        print(f"loop trained in {time.perf_counter() - start:.1f} s")
        return None
    row = bench(args.quick)
    print(report(row))
    return row


if __name__ == "__main__":
    main()
