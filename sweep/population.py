"""Many configs and folds of the tutorial MLP trained together as one population (issue 7).

A launcher groups the jobs of a sweep by :func:`group_key` (configs that differ only in
:data:`VECTORIZABLE` keys) and hands each group to :func:`fit_population`, which returns,
per config, what :func:`sweep.run._fit_folds` would have returned for it.

Members are (config, fold) pairs. All of them index into the dataset's rows; each has its
own rows (its fold, index arrays padded to the longest with a mask), its own initial
weights, batch order and dropout masks (:mod:`sweep.tasks.compiled`'s stateless keys on
its seed, so a member follows exactly the trajectory of its ordinary run, up to float
rounding of batched matmuls), its own learning rate, L1/L2 strengths and dropout rate, and
its own optimizer state and step count. The optimizer is one
:func:`sweep.tasks.compiled.supports` trains (Adam, SGD or RMSprop), with its update
(:func:`sweep.tasks.compiled.update`); its settings but the learning rate (which optimizer,
momentum, Nesterov, rho) are in the group key, shared by all members. Weights are stacked along a leading member axis and every step is
one batched matmul per layer; the loss summed over members keeps each member's gradient
its own. A member past its last step of an epoch (folds differ by a row) does not update;
a member whose epoch loss is NaN/inf is frozen there while the others go on. A member's
history is judged as its ordinary run's is (:func:`sweep.tasks.exploded`), so it is
recorded diverged exactly when that run would be. The graph is traced once per (shape,
population size, whether any member has dropout, an L1 or an L2 penalty, the optimizer's
update rule) and kept for the process; larger groups are trained in chunks of ``max_population``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from omegaconf import DictConfig

from sweep.config import SweepConfigError, fingerprint, flatten, validate
from sweep.data import Dataset
from sweep.splits import Fold
from sweep.tasks import Fitted, compiled

#: Keys in which the members of one population may differ.
VECTORIZABLE: tuple[str, ...] = (
    "optimizer.lr",
    "regularizer.l1",
    "regularizer.l2",
    "regularizer.dropout",
    "validation.fold",
    "seed",
)
#: Validation rows evaluated at once per member, so memory stays bounded on large validation sets.
VAL_CHUNK = 2048


def group_key(cfg: DictConfig) -> str | None:
    """``None`` if ``cfg`` can't join a population; else a hash of its resolved config without the :data:`VECTORIZABLE` keys.

    A config joins when it passes :func:`sweep.config.validate`, has ``task.name=classify``
    and is one :func:`sweep.tasks.compiled.supports`. Equal keys: trainable together.
    """
    try:
        validate(cfg)
        if cfg.task.name != "classify" or not compiled.supports(cfg):
            return None
    except (SweepConfigError, AttributeError, KeyError):
        return None
    return fingerprint({k: v for k, v in flatten(cfg).items() if k not in VECTORIZABLE})


@dataclass(frozen=True)
class Member:
    """One (config, fold) of a population: which config, which fold, and the fold's rows."""

    config: int
    fold: Fold


def fit_population(
    cfgs: Sequence[DictConfig], max_population: int = 64, checked: Sequence[tuple[Dataset, list[Fold]]] | None = None
) -> list[list[tuple[int | None, Fitted]]]:
    """For each config, what :func:`sweep.run._fit_folds` returns for it: ``[(fold index, Fitted), ...]``.

    All ``cfgs`` must share one :func:`group_key`; at most ``max_population`` members
    (config x fold) train at a time. A member's ``trained_by`` is ``"population of N"``, N its
    chunk's size, and its ``fit_time_s`` the chunk's wall time (the graph's tracing on first
    use included) divided equally among the N. As in ``_fit_folds``, a config's folds after
    its first diverged one are left out. ``checked``, each config's :func:`sweep.run.check`
    (its dataset and folds) when the caller has it, saves loading them again.
    """
    from sweep.backend import keras
    from sweep.run import check

    keys = {group_key(cfg) for cfg in cfgs}
    if len(keys) > 1 or None in keys:
        raise ValueError(f"fit_population: the configs must share one group key, not {sorted(map(str, keys))}")
    if max_population < 1:
        raise ValueError(f"fit_population: max_population={max_population} must be >= 1")
    keras()  # TensorFlow started quietly, with the process's thread limits
    if checked is None:
        checked = [check(cfg) for cfg in cfgs]
    data = checked[0][0] if checked else None
    members = [Member(c, fold) for c, (_, folds) in enumerate(checked) for fold in folds]
    # a fold missing a class gets a narrower softmax in the ordinary path: such members train apart
    by_classes: dict[int, list[int]] = {}
    for i, member in enumerate(members):
        by_classes.setdefault(_n_classes(data, member.fold), []).append(i)
    fits: dict[int, Fitted] = {}
    for n_classes, group in by_classes.items():
        for start in range(0, len(group), max_population):
            chunk = group[start : start + max_population]
            fits |= zip(chunk, _fit_chunk(cfgs, [members[i] for i in chunk], data, n_classes))
    out: list[list[tuple[int | None, Fitted]]] = [[] for _ in cfgs]
    for i, member in enumerate(members):
        runs = out[member.config]
        if not (runs and runs[-1][1].diverged):
            runs.append((member.fold.index, fits[i]))
    return out


def _n_classes(data: Dataset, fold: Fold) -> int:
    """The class count :func:`sweep.tasks.compiled.classify` sees on ``fold``."""
    return int(max(data.y[fold.train].max(), data.y[fold.val].max())) + 1


def _padded(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` as one ``[members, longest]`` index array (padded with row 0) and each member's count."""
    counts = np.array([len(r) for r in rows], np.int32)
    out = np.zeros((len(rows), counts.max()), np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, counts


def _fit_chunk(cfgs: Sequence[DictConfig], chunk: list[Member], data: Dataset, n_classes: int) -> list[Fitted]:
    """Train ``chunk`` as one population; one Fitted per member."""
    import tensorflow as tf

    start = time.perf_counter()
    input_shape = data.x.shape[1:]
    member_cfgs = [cfgs[m.config] for m in chunk]
    cfg = member_cfgs[0]  # for what all members share
    hp = np.array([compiled.hyperparameters(c) for c in member_cfgs], np.float32)
    shape, rule = compiled.Shape.of(cfg, input_shape, n_classes), compiled.Rule.of(cfg)
    fit = _population_graph(shape, len(chunk), bool(hp[:, 3].any()), bool(hp[:, 1].any()), bool(hp[:, 2].any()), rule)
    train, n_train = _padded([m.fold.train for m in chunk])
    val, n_val = _padded([m.fold.val for m in chunk])
    outputs = fit(
        _flat_rows(data),
        np.asarray(data.y, np.int64),
        train,
        n_train,
        val,
        n_val,
        hp,
        np.asarray(compiled.optimizer_inputs(cfg), np.float32),
        np.array([c.seed for c in member_cfgs], np.int64),
        np.int32(cfg.trainer.epochs),
        np.int32(cfg.trainer.batch_size),
    )
    history, ran, weights, slots, iterations = tf.nest.map_structure(lambda t: t.numpy(), outputs)
    per_member = (time.perf_counter() - start) / len(chunk)
    fits = []
    for i, member_cfg in enumerate(member_cfgs):
        state = compiled.TrainedState([w[i] for w in weights], [[s[i] for s in slot] for slot in slots], int(iterations[i]))
        fitted = compiled.fitted(member_cfg, history[: ran[i], i], state, input_shape, n_classes, f"population of {len(chunk)}")
        fitted.metrics["fit_time_s"] = per_member
        fitted.n_train_rows, fitted.n_val_rows = len(chunk[i].fold.train), len(chunk[i].fold.val)
        fits.append(fitted)
    return fits


def _flat_rows(data: Dataset) -> np.ndarray:
    """The dataset's rows flattened to float32 vectors."""
    return np.ascontiguousarray(data.x, np.float32).reshape(len(data.x), -1)


@lru_cache(maxsize=8)
def _population_graph(shape: compiled.Shape, size: int, dropout: bool, l1: bool, l2: bool, rule: compiled.Rule):
    """The population's fit as a ``tf.function`` for ``size`` members of ``shape`` trained by ``rule``, traced on first call and kept.

    Without ``dropout`` (every member's rate 0) the masks are left out of the graph, and without
    ``l1`` or ``l2`` (every member's strength 0) that penalty's terms, which changes no number.
    Only ``rule``'s update is traced (chosen in Python); its momentum and rho are inputs.
    A step is bound by the count and passes of its ops, not by arithmetic, so it makes few:
    an inactive member's step sizes are zeroed and its decays set to 1 rather than its state
    selected (:func:`sweep.tasks.compiled.coefficients`), the
    penalty's gradient is written out, the dropout draws are made outside the tape, and
    the matmuls are ``BatchMatMul`` rather than ``Einsum``; the numbers are the same bits.
    Not XLA (``jit_compile``): it compiles the step for longer (~0.7 s) than it saves in
    one sweep's population, and its random ops draw other numbers than the CPU kernels.
    """
    import tensorflow as tf

    act = compiled._activations()[shape.activation]
    n_hidden = len(shape.hidden_units)
    has_l1, has_l2 = l1, l2  # below, l1 and l2 are the members' strengths

    def per_member(draw, inputs, dtype):
        """``draw`` of each member's slice of ``inputs``, stacked: one graph loop, so the graph does not grow with ``size``."""
        return tf.map_fn(draw, inputs, fn_output_signature=dtype, parallel_iterations=size)

    def forward(params, x, rate, noises):
        """Logits ``[M, rows, classes]`` of ``x`` ``[M, rows, features]``; with ``noises`` (training), inverted dropout."""
        for i in range(n_hidden):
            x = act(tf.matmul(x, params[2 * i]) + params[2 * i + 1][:, None, :])
            if noises:
                x = tf.where(noises[i] >= rate[:, None, None], x / (1.0 - rate)[:, None, None], 0.0)
        return tf.matmul(x, params[2 * n_hidden]) + params[2 * n_hidden + 1][:, None, :]

    def dropout_noise(seeds, counters, rows):
        """Per hidden layer, each member's draws ``[M, rows, units]`` for its dropout, keyed (seed, counter * 16 + layer)."""
        if not dropout:
            return []
        return [
            per_member(
                lambda key, dims=tf.stack([rows, units]): tf.random.stateless_uniform(dims, key),
                tf.stack([seeds, counters * 16 + i], axis=1),
                tf.float32,
            )
            for i, units in enumerate(shape.hidden_units)
        ]

    def penalty(params, l1, l2):
        total = tf.zeros([size])
        for i in range(n_hidden):
            kernel = params[2 * i]
            terms = [l1 * tf.reduce_sum(tf.abs(kernel), [1, 2])] if has_l1 else []
            terms += [l2 * tf.reduce_sum(tf.square(kernel), [1, 2])] if has_l2 else []
            if terms:
                total += tf.add_n(terms)
        return total

    def penalty_gradients(grads, params, l1, l2, on):
        """``grads`` plus the gradient of the penalty, ``l1 * sign(W) + 2 * l2 * W`` on each hidden kernel, times ``on``.

        Written out rather than taped: the tape's gradient of the penalty's sums broadcasts
        ``l1`` and ``l2`` to the kernel's shape first, two more passes over the weights per step.
        """
        l1, l2 = (on * l1)[:, None, None], (on * l2 * 2.0)[:, None, None]
        grads = list(grads)
        for i in range(n_hidden):
            kernel = params[2 * i]
            if has_l1:
                grads[2 * i] += l1 * tf.sign(kernel)
            if has_l2:
                grads[2 * i] += l2 * kernel
        return grads

    def scores(logits, y, mask):
        """Per member: summed cross-entropy and hits over the rows ``mask`` keeps."""
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        hits = tf.cast(tf.equal(tf.argmax(logits, axis=-1), y), tf.float32)
        zero = tf.zeros_like(ce)
        return tf.reduce_sum(tf.where(mask, ce, zero), 1), tf.reduce_sum(tf.where(mask, hits, zero), 1)

    def shaped(factor, w):
        """A per-member ``factor`` ``[M]`` broadcast onto ``w`` ``[M, ...]``."""
        return factor[(slice(None),) + (None,) * (len(w.shape) - 1)]

    def fit(x, y, train, n_train, val, n_val, hp, opt, seeds, epochs, batch_size):
        lr, l1, l2, rate = hp[:, 0], hp[:, 1], hp[:, 2], hp[:, 3]
        steps = (n_train + batch_size - 1) // batch_size
        max_steps = tf.reduce_max(steps)
        width = max_steps * batch_size
        size_f = tf.cast(n_train, tf.float32)
        params = []
        for i, (fan_in, fan_out) in enumerate(shape.layers):
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            draws = per_member(
                lambda seed, dims=[fan_in, fan_out], i=i, limit=limit: tf.random.stateless_uniform(
                    dims, tf.stack([seed, tf.constant(i, tf.int64)]), -limit, limit
                ),
                seeds,
                tf.float32,
            )
            params += [tf.ensure_shape(draws, [size, fan_in, fan_out]), tf.zeros([size, fan_out])]
        zeros = [tf.zeros_like(p) for p in params]

        def epoch_body(epoch, alive, ran, params, slots, iterations, history):
            shuffle_key = tf.cast(epoch, tf.int64) + (1 << 20)
            order = per_member(
                lambda args: tf.pad(
                    tf.random.experimental.stateless_shuffle(tf.range(args[1]), tf.stack([args[0], shuffle_key])),
                    [[0, width - args[1]]],
                ),
                (seeds, n_train),
                tf.int32,
            )
            rows = tf.gather(train, order, batch_dims=1)

            def step_body(step, params, slots, iterations, loss_sum, hit_sum):
                batch = rows[:, step * batch_size : (step + 1) * batch_size]
                count = tf.clip_by_value(n_train - step * batch_size, 0, batch_size)
                mask = tf.range(batch_size)[None, :] < count[:, None]
                active = tf.logical_and(alive, count > 0)
                count_f = tf.cast(count, tf.float32)
                noises = dropout_noise(seeds, tf.cast(epoch * steps + step, tf.int64) + (1 << 40), batch_size)
                with tf.GradientTape() as tape:
                    tape.watch(params)
                    logits = forward(params, tf.gather(x, batch), rate, noises)
                    ce_sum, hit = scores(logits, tf.gather(y, batch), mask)
                    ce = tf.math.divide_no_nan(ce_sum, count_f)
                    total = tf.reduce_sum(tf.where(active, ce, tf.zeros_like(ce)))
                # an inactive member's step sizes are 0: its update leaves it as it was (a frozen diverged one may go NaN)
                on = tf.cast(active, tf.float32)
                grads = penalty_gradients(tape.gradient(total, params), params, l1, l2, on)
                loss = ce + penalty(params, l1, l2)
                factors = compiled.coefficients(rule, lr, opt, iterations + 1.0, on)
                new_w, new_slots = [], [[] for _ in slots]
                for i, (w, g) in enumerate(zip(params, grads)):
                    w, values = compiled.update(rule, factors, w, g, [slot[i] for slot in slots], shaped)
                    new_w.append(w)
                    for slot, value in zip(new_slots, values):
                        slot.append(value)
                iterations += on
                hit_acc = tf.math.divide_no_nan(hit, count_f)
                loss_sum += tf.where(active, loss * count_f, tf.zeros_like(loss))
                hit_sum += tf.where(active, hit_acc * count_f, tf.zeros_like(loss))
                return step + 1, new_w, new_slots, iterations, loss_sum, hit_sum

            zero = tf.zeros([size])
            _, params, slots, iterations, loss_sum, hit_sum = tf.while_loop(
                lambda step, *_: step < max_steps,
                step_body,
                (tf.constant(0), params, slots, iterations, zero, zero),
            )
            val_ce, val_hits = evaluate(params, x, y, val, n_val)
            n_val_f = tf.cast(n_val, tf.float32)
            train_loss = loss_sum / size_f
            row = tf.stack(
                [train_loss, hit_sum / size_f, val_ce / n_val_f + penalty(params, l1, l2), val_hits / n_val_f], axis=1
            )
            history = history.write(epoch, row)
            ran += tf.cast(alive, tf.int32)
            alive = tf.logical_and(alive, tf.math.is_finite(train_loss))
            return epoch + 1, alive, ran, params, slots, iterations, history

        start = (
            tf.constant(0),
            tf.ones([size], tf.bool),
            tf.zeros([size], tf.int32),
            params,
            [zeros for _ in rule.slots],
            tf.zeros([size]),
            tf.TensorArray(tf.float32, size=epochs),
        )
        ran_epochs, _, ran, params, slots, iterations, history = tf.while_loop(
            lambda epoch, alive, *_: tf.logical_and(epoch < epochs, tf.reduce_any(alive)), epoch_body, start
        )
        return history.stack()[:ran_epochs], ran, params, slots, iterations

    def evaluate(params, x, y, val, n_val):
        """Per member: summed cross-entropy and hits over its validation rows, :data:`VAL_CHUNK` rows at a time."""
        width = tf.shape(val)[1]

        def body(start, ce_sum, hit_sum):
            idx = val[:, start : start + VAL_CHUNK]
            mask = (start + tf.range(tf.shape(idx)[1]))[None, :] < n_val[:, None]
            ce, hits = scores(forward(params, tf.gather(x, idx), None, []), tf.gather(y, idx), mask)
            return start + VAL_CHUNK, ce_sum + ce, hit_sum + hits

        zero = tf.zeros([size])
        _, ce_sum, hit_sum = tf.while_loop(lambda start, *_: start < width, body, (tf.constant(0), zero, zero))
        return ce_sum, hit_sum

    specs = [
        tf.TensorSpec([None, shape.n_features], tf.float32),
        tf.TensorSpec([None], tf.int64),
        tf.TensorSpec([size, None], tf.int32),
        tf.TensorSpec([size], tf.int32),
        tf.TensorSpec([size, None], tf.int32),
        tf.TensorSpec([size], tf.int32),
        tf.TensorSpec([size, 4], tf.float32),
        tf.TensorSpec([3], tf.float32),  # the optimizer's momentum, rho, 1 - rho, shared
        tf.TensorSpec([size], tf.int64),
        tf.TensorSpec([], tf.int32),
        tf.TensorSpec([], tf.int32),
    ]
    return tf.function(fit, input_signature=specs, autograph=False)
