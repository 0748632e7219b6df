"""The arithmetic floor of training a population: a minimal batched TensorFlow kernel doing its matmuls and little else.

Issue 17 asks for training within 2x of this floor. ``members`` copies of the tutorial's MLP
(64 -> 128 -> 10) train for ``epochs`` epochs of batches of 32 over ``rows`` rows, each
scored on ``val_rows`` rows after every epoch, as one ``tf.function`` of batched matmuls
(``[M, 32, 64] @ [M, 64, 128]`` and so on). It uses plain SGD, with no dropout, no penalty and
no metric but the validation accuracy. The data is random, since the FLOPs do not depend on it.
Its FLOPs (:func:`flops`) are the matmuls' of sweep's graph for the same members. Timed warm,
in a fresh process per thread count (TensorFlow sets its threads once), it gives the GFLOP/s
to hold sweep's training against.

    python -m benchmarks.floor [--members 60] [--rows 1149] [--val-rows 288] [--epochs 10] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

#: The tutorial's MLP on digits: inputs, hidden units, classes.
DIMS = (64, 128, 10)
BATCH = 32
#: A fold's training and validation rows in a 5-fold split of digits less its test rows (some folds have one more or fewer).
ROWS, VAL_ROWS = 1149, 288


def flops(members: int, rows: int, val_rows: int, epochs: int, dims: tuple[int, ...] = DIMS) -> float:
    """The matmul FLOPs of training ``members`` for ``epochs`` on ``rows`` rows, scoring ``val_rows`` each epoch.

    A row costs 2 FLOPs per weight forward. Backward, each layer's weight gradient costs as
    much again, and every layer's input gradient but the first's.
    """
    macs = [fan_in * fan_out for fan_in, fan_out in zip(dims, dims[1:])]
    forward = 2 * sum(macs)
    backward = 2 * sum(macs) + 2 * sum(macs[1:])
    return float(members * epochs * (rows * (forward + backward) + val_rows * forward))


def kernel_seconds(members: int, rows: int, val_rows: int, epochs: int, threads: int) -> float:
    """Seconds the minimal kernel takes for the members' training, warm (its graph traced and run once before)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    n_in, n_hidden, n_out = DIMS
    x = tf.constant(rng.random((rows + val_rows, n_in), np.float32))
    y = tf.constant(rng.integers(0, n_out, rows + val_rows).astype(np.int32))
    steps = -(-rows // BATCH)
    order = np.stack([rng.permutation(np.resize(np.arange(rows), steps * BATCH)) for _ in range(members)])
    batches = tf.constant(order.reshape(members, steps, BATCH).transpose(1, 0, 2))  # [steps, M, 32]
    val = tf.range(rows, rows + val_rows)
    shapes = [(members, n_in, n_hidden), (members, 1, n_hidden), (members, n_hidden, n_out), (members, 1, n_out)]
    params = [tf.Variable(tf.random.stateless_uniform(shape, (1, 2), -0.1, 0.1)) for shape in shapes]

    def logits(inputs):
        w1, b1, w2, b2 = params
        return tf.matmul(tf.nn.relu(tf.matmul(inputs, w1) + b1), w2) + b2

    def step(s, total):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.gather(y, batches[s]), logits(tf.gather(x, batches[s]))))
        for param, grad in zip(params, tape.gradient(loss, params)):
            param.assign_sub(0.01 * grad)
        return s + 1, total + loss

    def epoch(e, accuracy):
        tf.while_loop(lambda s, _: s < steps, step, (tf.constant(0), tf.constant(0.0)))
        scores = logits(tf.broadcast_to(tf.gather(x, val), (members, val_rows, n_in)))
        right = tf.equal(tf.argmax(scores, -1, output_type=tf.int32), tf.gather(y, val))
        return e + 1, tf.reduce_mean(tf.cast(right, tf.float32))

    fit = tf.function(lambda: tf.while_loop(lambda e, _: e < epochs, epoch, (tf.constant(0), tf.constant(0.0))), autograph=False)
    fit()
    start = time.perf_counter()
    fit()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=60)
    parser.add_argument("--rows", type=int, default=ROWS, help=f"training rows (default {ROWS}: a 5-fold split of digits less its test rows)")
    parser.add_argument("--val-rows", type=int, default=VAL_ROWS)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="intra-op threads (default: one a core)")
    parser.add_argument("--json", type=Path, help="write the result here too")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    seconds = kernel_seconds(args.members, args.rows, args.val_rows, args.epochs, args.threads)
    total = flops(args.members, args.rows, args.val_rows, args.epochs)
    result = {"floor_s": seconds, "floor_gflops": total / seconds / 1e9, "flops": total}
    print(f"floor: {args.members} members x {args.epochs} epochs, {args.threads} thread(s): {seconds:.3f} s, {result['floor_gflops']:.1f} GFLOP/s")
    if args.json:
        args.json.write_text(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
