"""The batched graph: ``model.fit`` of the tutorial MLP for a population of members at once, the one place sweep re-implements Keras' math.

A member is one (config, fold). Each has its own rows (index arrays into the shared dataset,
padded and masked), initial weights, batch order and dropout masks (stateless draws keyed
on its seed: :data:`SHUFFLE_KEY`, :data:`DROPOUT_KEY`), learning rate, L1/L2 strengths,
dropout rate, optimizer state, step count and early stopping. Weights are stacked along a
leading member axis and every step is one batched matmul per layer. A single fit is a
population of one.

The math is ``model.fit``'s, step for step: Glorot-uniform kernels and zero biases; per
epoch a fresh shuffle split into batches of ``batch_size`` (the last one partial); per batch
the mean sparse cross-entropy of the softmax (a regression: the mean ``task.loss`` of one
linear unit mapped to the target's units as Keras' ``Normalization(invert=True)`` does) plus ``l1*sum|W| + l2*sum W^2`` over the
hidden kernels, its gradient and the Keras 3 optimizer's update
(:mod:`sweep.engines.optimizers`); inverted dropout after every hidden layer; epoch
``loss``/``accuracy`` (a regression: ``loss``/``mae``/``mse``) as Keras reports them, and the
same on the whole validation set (``val_loss`` penalty included); a member stops after the first epoch whose loss is
NaN/inf (``TerminateOnNaN``) or, with ``trainer.early_stopping_patience``, as Keras 3's
``EarlyStopping(restore_best_weights=True)`` would, and keeps its best epoch's weights.
The random numbers are different draws from the same distributions as Keras' own.
A member with a :attr:`~sweep.engines.member.Member.start` goes on from its saved weights,
slots and step count at the epoch after its history's last: the batch order and dropout
draws are keyed on the epoch's and its chunk of steps' numbers, so it ends with the bits of a fit of
all the epochs at once.

Bits: a member's numbers do not depend on the population it trains in. Every op works on
each member's slice alone (batched matmuls, per-member sums and draws), and every slice
that goes through ``exp``, ``pow`` or an activation is a whole number of
:data:`~sweep.engines.optimizers.LANES` floats: Eigen's vectorized and scalar versions of
those differ in the last bit, and a tensor's tail takes the scalar one. So batches and
validation rows are padded to multiples of LANES rows (masked), and the validation sums run
over chunks of at most :data:`VAL_CHUNK` rows, below which Eigen's summation order does not
change with trailing (masked) zeros.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from omegaconf import DictConfig

from sweep.engines.fitted import CLASSIFICATION_COLUMNS, REGRESSION_COLUMNS, Fitted, summarize
from sweep.engines.member import Member, TrainedState
from sweep.engines.optimizers import LANES, OPTIMIZERS, Rule, coefficients, optimizer_inputs, update
from sweep.engines.saved import write_model

MLP_TARGET = "sweep.models.mlp"
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "linear")
#: ``task.loss`` values the graph computes: Keras' mean squared and absolute errors and Huber loss (delta 1).
LOSSES = ("mse", "mae", "huber")
#: Validation rows evaluated at once per member (bounds memory; see the bits, above).
VAL_CHUNK = 1024
#: The stateless generators' keys are (member's seed, k): k = the layer for its initial kernel,
#: SHUFFLE_KEY + epoch for an epoch's batch order, and (DROPOUT_KEY + epoch * EPOCH_CHUNKS +
#: chunk) * DROPOUT_STRIDE + the layer for the dropout draws of a chunk of an epoch's steps.
SHUFFLE_KEY = 1 << 20
DROPOUT_KEY = 1 << 40
EPOCH_CHUNKS = 1 << 20
DROPOUT_STRIDE = 16
#: Rows of dropout draws at once: an epoch's steps draw their masks in chunks of
#: ``max(DRAW_ROWS // width, 1)`` steps (a batch's padded width), one graph loop per chunk, not per step.
DRAW_ROWS = 1024
#: Members whose random draws run at once (a scheduling bound: the draws are the same whatever it is).
PARALLEL_DRAWS = 64


def unsupported(cfg: DictConfig) -> str | None:
    """Why the graph cannot train ``cfg``, in one line naming the key; ``None`` when it can."""
    model, opt, trainer = cfg.model, cfg.optimizer, cfg.trainer
    target = opt.get("_target_")
    if model.get("_target_") != MLP_TARGET:
        return f"model._target_={model.get('_target_')}: the graph trains {MLP_TARGET} only"
    extra = sorted(set(model) - {"_target_", "name", "hidden_units", "activation"})
    if extra:
        return f"model.{extra[0]}: not a setting of the graph's MLP"
    if model.get("activation", "relu") not in ACTIVATIONS:
        return f"model.activation={model.activation}: the graph has {', '.join(ACTIVATIONS)}"
    if target not in OPTIMIZERS:
        return f"optimizer._target_={target}: the graph has {', '.join(OPTIMIZERS)}"
    extra = sorted(set(opt) - {"_target_", "name", "lr", *OPTIMIZERS[target][1]})
    if extra:
        return f"optimizer.{extra[0]}: not a setting of the graph's {OPTIMIZERS[target][0]}"
    momentum = opt.get("momentum", 0.0)
    if not isinstance(momentum, float) or not 0.0 <= momentum <= 1.0 or not isinstance(opt.get("nesterov", False), bool):
        return f"optimizer.momentum={momentum}, nesterov={opt.get('nesterov', False)}: the graph takes a float in [0, 1] and a bool"
    if isinstance(opt.get("lr"), DictConfig):
        return f"optimizer.lr._target_={opt.lr.get('_target_')}: the graph trains at a constant rate"
    if trainer.get("callbacks"):
        return f"trainer.callbacks.{next(iter(trainer.callbacks))}: the graph runs no Keras callbacks"
    if trainer.get("timeout_s") is not None:
        return f"trainer.timeout_s={trainer.timeout_s}: the graph trains all epochs in one call, which no time limit stops"
    if trainer.get("class_weight") is not None:
        return f"trainer.class_weight={trainer.class_weight}: the graph weighs every row alike"
    regression = cfg.task.name == "regress"
    if regression and cfg.task.get("loss") not in LOSSES:
        return f"task.loss={cfg.task.get('loss')}: the graph has {', '.join(LOSSES)}"
    columns = REGRESSION_COLUMNS if regression else CLASSIFICATION_COLUMNS
    if trainer.get("early_stopping_patience") is not None and trainer.get("early_stopping_monitor") not in columns:
        return f"trainer.early_stopping_monitor={trainer.get('early_stopping_monitor')}: the graph monitors {', '.join(columns)}"
    if trainer.get("verbose", 0):
        return f"trainer.verbose={trainer.verbose}: the graph prints no progress"
    return None


@dataclass(frozen=True)
class Shape:
    """The MLP's layer sizes and activation; ``n_outputs`` the last layer's width (the classes, or 1 for a regression)."""

    n_features: int
    hidden_units: tuple[int, ...]
    activation: str
    n_outputs: int

    @classmethod
    def of(cls, cfg: DictConfig, input_shape: tuple[int, ...], n_outputs: int) -> Shape:
        """The shape of ``cfg``'s MLP on inputs of ``input_shape`` with ``n_outputs`` outputs."""
        units = tuple(int(u) for u in cfg.model.get("hidden_units", (128,)))
        return cls(int(np.prod(input_shape)), units, str(cfg.model.get("activation", "relu")), n_outputs)

    @property
    def layers(self) -> list[tuple[int, int]]:
        """(fan in, fan out) of each Dense layer, the output last."""
        sizes = [self.n_features, *self.hidden_units, self.n_outputs]
        return list(zip(sizes[:-1], sizes[1:]))


@dataclass(frozen=True)
class Plan:
    """What fixes a population's graph; every other setting is an input (:class:`Feeds`).

    Without ``dropout`` (every member's rate 0) the masks are left out of the graph, and
    without ``l1`` or ``l2`` (every member's strength 0) that penalty's terms: a rate or
    strength of 0 in a population that has them multiplies by 1 or adds exact zeros, so
    leaving them out changes no number (and saves their passes over the weights every step).
    """

    shape: Shape
    rule: Rule
    dropout: bool
    l1: bool
    l2: bool
    monitor: str | None  # early stopping's, when on
    loss: str | None = None  # a regression's (:data:`LOSSES`); None: a classifier's cross-entropy

    @classmethod
    def of(cls, members: Sequence[Member]) -> Plan:
        """The plan of ``members``, which share everything but :data:`sweep.engines.VECTORIZABLE` keys, their rows and their starts' epoch."""
        first, cfg = members[0], members[0].cfg
        hp = np.array([hyperparameters(m.cfg) for m in members])
        monitor = cfg.trainer.early_stopping_monitor if cfg.trainer.get("early_stopping_patience") is not None else None
        shape = Shape.of(cfg, first.x.shape[1:], first.output.units)
        l1, l2, dropout = (bool(hp[:, i].any()) for i in (1, 2, 3))
        return cls(shape, Rule.of(cfg), dropout, l1, l2, monitor, cfg.task.loss if first.output.regression else None)

    @property
    def columns(self) -> tuple[str, ...]:
        """The history's columns, one row per epoch: training's, then validation's; early stopping may monitor any."""
        return CLASSIFICATION_COLUMNS if self.loss is None else REGRESSION_COLUMNS

    def start_dims(self, members: int | None) -> list[list]:
        """The dims of the ``start`` feeds (:attr:`Feeds.start`) for ``members`` members (``None``: any number): each layer's kernel and bias, for the weights and each slot, then the steps."""
        params = [dims for fan_in, fan_out in self.shape.layers for dims in ([members, fan_in, fan_out], [members, 1, fan_out])]
        return params * (1 + len(self.rule.slots)) + [[members]]


def hyperparameters(cfg: DictConfig) -> list[float]:
    """A member's own hyperparameters: learning rate, L1, L2, dropout rate."""
    reg = cfg.regularizer
    return [cfg.optimizer.lr, reg.get("l1", 0.0), reg.get("l2", 0.0), reg.get("dropout", 0.0)]


class EpochProgress:
    """A line on stderr while a long population trains: ``population of 40 jobs: epoch 7 of 27 (31s)``, every :attr:`every_s` seconds.

    The graph calls :meth:`tick` after each epoch (a ``numpy_function`` that returns 1, the
    step of its epoch counter); a population done sooner than :attr:`every_s` prints nothing.
    """

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.members, self.started, self.last = 0, 0.0, 0.0

    def begin(self, members: int) -> None:
        self.members, self.started = members, time.monotonic()
        self.last = self.started

    def tick(self, epoch: np.ndarray, epochs: np.ndarray) -> np.int32:
        now = time.monotonic()
        if now - self.last >= self.every_s and epoch < epochs:
            self.last = now
            jobs = f"{self.members} job{'s' if self.members > 1 else ''}"
            print(f"population of {jobs}: epoch {int(epoch)} of {int(epochs)} ({now - self.started:.0f}s)", file=sys.stderr, flush=True)
        return np.int32(1)


#: The progress of the population this process trains (one at a time).
EPOCHS = EpochProgress()


def fit_population(members: Sequence[Member]) -> list[Fitted]:
    """Train ``members`` as one population (they share one :class:`Plan`, dataset and class count); one :class:`Fitted` each.

    A member's ``fit_time_s`` is the population's wall time (its graph's tracing on first use
    included) divided equally among them.
    """
    from sweep.backend import keras

    keras()  # the TensorFlow import is not the fit's time
    start = time.perf_counter()
    plan = Plan.of(members)
    EPOCHS.begin(len(members))
    history, ran, weights, slots, iterations, restored = compiled(plan)(*_inputs(plan, members))
    per_member = (time.perf_counter() - start) / len(members)
    fits = []
    for i, member in enumerate(members):
        state = TrainedState([w[i] for w in weights], [[s[i] for s in slot] for slot in slots], int(iterations[i]))
        fitted = _fitted(member, plan, history[: ran[i], i], state, int(restored[i]) if plan.monitor else None)
        fitted.metrics["fit_time_s"] = per_member
        fitted.population_size = len(members)
        fits.append(fitted)
    return fits


def _fitted(member: Member, plan: Plan, rows: np.ndarray, state: TrainedState, restored: int | None) -> Fitted:
    """The :class:`Fitted` of one member's history ``rows`` (one row of :attr:`Plan.columns` per epoch run) and final ``state``."""
    cfg, input_shape, output = member.cfg, member.x.shape[1:], member.output
    earlier = list(member.start.history) if member.start is not None else []
    history = earlier + [{"epoch": i, **dict(zip(plan.columns, map(float, row)))} for i, row in enumerate(rows, start=len(earlier) + 1)]
    artifacts = {}
    if cfg.trainer.save_model:
        artifacts["model.keras"] = lambda path: write_model(cfg, input_shape, output, state, path)
    fitted = summarize(history, restored, artifacts, "graph", member.y[member.val] if output.regression else None)
    fitted.n_train_rows, fitted.n_val_rows, fitted.resumed_epochs = len(member.train), len(member.val), len(earlier)
    return fitted


def _inputs(plan: Plan, members: Sequence[Member]) -> list[np.ndarray]:
    """The graph's :class:`Feeds` for ``members``, whose plan is ``plan``."""
    first, trainer = members[0], members[0].cfg.trainer
    train, n_train = _padded([m.train for m in members], 1)
    val, n_val = _padded([m.val for m in members], LANES)
    return [
        np.ascontiguousarray(first.x, np.float32).reshape(len(first.x), -1),
        np.asarray(first.y, np.float32 if plan.loss else np.int64),
        train,
        n_train,
        val,
        n_val,
        np.array([hyperparameters(m.cfg) for m in members], np.float32),
        np.array([(m.output.mean, m.output.variance) for m in members], np.float32),
        np.asarray(optimizer_inputs(first.cfg), np.float32),
        np.array([m.cfg.seed for m in members], np.int64),
        np.int32(trainer.epochs),
        np.int32(trainer.batch_size),
        np.int32(trainer.get("early_stopping_patience") or 0),
        np.int32(len(first.start.history) if first.start is not None else 0),
        *(_starts([m.start for m in members]) if first.start is not None else _no_starts(plan)),
    ]


def _starts(starts: list) -> list[np.ndarray]:
    """The members' :class:`~sweep.engines.member.Checkpoint` states stacked as the graph's ``start`` feeds: weights, slots, steps."""
    def stacked(arrays: list[np.ndarray]) -> np.ndarray:  # biases as the graph holds them, [M, 1, units]
        return np.stack([a.reshape(1, -1) if a.ndim == 1 else a for a in arrays]).astype(np.float32)

    states = [start.state for start in starts]
    weights = [stacked([s.weights[k] for s in states]) for k in range(len(states[0].weights))]
    slots = [stacked([s.slots[j][k] for s in states]) for j in range(len(states[0].slots)) for k in range(len(states[0].weights))]
    return [*weights, *slots, np.array([s.iterations for s in states], np.float32)]


def _no_starts(plan: Plan) -> list[np.ndarray]:
    """The ``start`` feeds of members that start from scratch: no rows (the graph then draws their initial weights)."""
    return [np.zeros(dims, np.float32) for dims in plan.start_dims(0)]


def _padded(rows: list[np.ndarray], multiple: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` as one ``[members, width]`` index array (padded with row 0 to a multiple of ``multiple``) and each member's count."""
    counts = np.array([len(r) for r in rows], np.int32)
    out = np.zeros((len(rows), -(-int(counts.max()) // multiple) * multiple), np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, counts


@lru_cache(maxsize=8)
def compiled(plan: Plan) -> Callable[..., Any]:
    """``plan``'s fit graph, traced on first use and kept for the process, run in a TensorFlow session of its own.

    Its own session, whose compiled kernels nothing else touches: every Keras
    ``clear_session()`` and ``tf.random.set_seed()`` (the model.fit engine's, before each of
    its fits) clears the eager runtime's caches, after which an eager ``tf.function`` pays
    ~120 ms to instantiate its graph again. Not XLA: it compiles for longer than it saves in
    one sweep, and its random ops draw other numbers than the CPU kernels.
    """
    from sweep.backend import keras

    keras()  # TensorFlow started quietly, with the process's thread limits, before anything imports it
    import tensorflow as tf
    from tensorflow.core.protobuf import rewriter_config_pb2

    specs = Feeds.specs(plan)
    graph = tf.Graph()
    with graph.as_default():
        feeds = [tf.compat.v1.placeholder(spec.dtype, spec.shape) for spec in specs]
        outputs = tf.function(Population(plan).fit, input_signature=specs, autograph=False)(*feeds)
    threading = tf.config.threading
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=threading.get_intra_op_parallelism_threads(),
        inter_op_parallelism_threads=threading.get_inter_op_parallelism_threads(),
    )
    # Grappler's arithmetic rewrites (RMSprop's g / sqrt(v + eps) into g * rsqrt(...)) depend on
    # which terms a plan leaves out, so they would give a member other bits in another population
    config.graph_options.rewrite_options.arithmetic_optimization = rewriter_config_pb2.RewriterConfig.OFF
    session = tf.compat.v1.Session(graph=graph, config=config)
    return lambda *inputs: session.run(outputs, dict(zip(feeds, inputs)))


class Feeds(NamedTuple):
    """The graph's inputs: the dataset's rows, each member's rows, hyperparameters and seed, and the shared settings."""

    x: Any  # [rows, features]
    y: Any  # [rows]
    train: Any  # [members, width]: each member's training rows, padded
    n_train: Any  # [members]
    val: Any  # [members, width]: validation rows, padded to a multiple of LANES
    n_val: Any  # [members]
    lr: Any  # [members]: hyperparameters(), one column each
    l1: Any
    l2: Any
    rate: Any  # dropout's
    target: Any  # [members, 2]: a regression's training target mean and variance (Output's)
    opt: Any  # [3]: optimizer_inputs(), shared
    seeds: Any  # [members]
    epochs: Any
    batch_size: Any
    patience: Any  # early stopping's, when the plan has a monitor
    first_epoch: Any  # epochs the members' starts have run (0: from scratch)
    start: list  # the members' weights, then each slot's, then steps [M]; no rows for members starting from scratch

    @staticmethod
    def specs(plan: Plan) -> list:
        """The graph's inputs: x, y, train rows, counts, val rows, counts, hyperparameters [M, 4], targets [M, 2], optimizer, seeds, epochs, batch size, patience, first epoch, start."""
        import tensorflow as tf

        m, f32, i32 = None, tf.float32, tf.int32  # any number of members: one trace serves every population of the plan
        y = f32 if plan.loss else tf.int64
        shapes = [([None, plan.shape.n_features], f32), ([None], y), ([m, None], i32), ([m], i32), ([m, None], i32), ([m], i32)]
        shapes += [([m, 4], f32), ([m, 2], f32), ([3], f32), ([m], tf.int64), ([], i32), ([], i32), ([], i32), ([], i32)]
        shapes += [(dims, f32) for dims in plan.start_dims(m)]
        return [tf.TensorSpec(shape, dtype) for shape, dtype in shapes]

    @classmethod
    def of(cls, feeds: Sequence) -> Feeds:
        """The feeds of the graph's inputs, as :meth:`specs` lists them (the hyperparameters' columns split once)."""
        import tensorflow as tf

        return cls(*feeds[:6], *tf.unstack(feeds[6], axis=1), *feeds[7:14], list(feeds[14:]))


class State(NamedTuple):
    """What a step hands the next, per member: weights, optimizer slots (per :attr:`Rule.slots`) and step count."""

    params: list
    slots: list
    iterations: Any


class Watch(NamedTuple):
    """Early stopping's bookkeeping per member: the monitor's best value, its epoch (0-based), epochs since, its weights."""

    best: Any
    epoch: Any
    wait: Any
    params: list


def _members(factor, w):
    """A per-member ``factor`` ``[M]`` broadcast onto ``w`` ``[M, ...]``."""
    return factor[(slice(None),) + (None,) * (len(w.shape) - 1)]


def _biased(h, b):
    """``h`` ``[M, rows, units]`` plus each member's bias ``b`` ``[M, 1, units]``.

    For a layer narrower than a whole number of LANES (the 10-class output), the gradient of
    a plain broadcast sums the rows in an order that depends on the member's place in the
    population: there it sums each unit's column as a row of the transpose instead.
    """
    import tensorflow as tf

    if b.shape[-1] % LANES == 0:
        return h + b

    @tf.custom_gradient
    def add(h, b):
        def gradient(dy):
            return dy, tf.reshape(tf.reduce_sum(tf.transpose(dy, [0, 2, 1]), 2), tf.shape(b))

        return h + b, gradient

    return add(h, b)


class Population:
    """The pieces of one :class:`Plan`'s fit graph; :meth:`fit` puts them together.

    Written with ``tf.while_loop`` rather than through AutoGraph, which would double the
    one-off trace time. A step is bound by the count and passes of its ops, not by
    arithmetic, so it makes few: an inactive member's step sizes are zeroed rather than its
    state selected (:func:`sweep.engines.optimizers.coefficients`), the penalty's gradient
    is written out, the dropout draws are made outside the tape.
    """

    def __init__(self, plan: Plan) -> None:
        import tensorflow as tf

        self.plan = plan
        self.n_hidden = len(plan.shape.hidden_units)
        self.act = {"relu": tf.nn.relu, "tanh": tf.math.tanh, "sigmoid": tf.math.sigmoid, "elu": tf.nn.elu, "linear": tf.identity}[
            plan.shape.activation
        ]

    def per_member(self, draw: Callable, inputs, dtype):
        """``draw`` of each member's slice of ``inputs``, stacked: one graph loop, so the graph does not grow with the size."""
        import tensorflow as tf

        return tf.map_fn(draw, inputs, fn_output_signature=dtype, parallel_iterations=PARALLEL_DRAWS)

    def initial(self, seeds) -> list:
        """Glorot-uniform kernels (each member's drawn with key (seed, layer)) and zero biases ``[M, 1, units]``."""
        import tensorflow as tf

        params = []
        for i, (fan_in, fan_out) in enumerate(self.plan.shape.layers):
            limit = math.sqrt(6.0 / (fan_in + fan_out))

            def draw(seed, dims=(fan_in, fan_out), i=i, limit=limit):
                return tf.random.stateless_uniform(dims, tf.stack([seed, tf.constant(i, tf.int64)]), -limit, limit)

            kernels = tf.ensure_shape(self.per_member(draw, seeds, tf.float32), [None, fan_in, fan_out])
            params += [kernels, tf.zeros(tf.stack([tf.shape(seeds)[0], 1, fan_out]))]
        return params

    def forward(self, params: list, x, f: Feeds, masks: list):
        """Logits ``[M, rows, classes]`` (a regression: predictions ``[M, rows]`` in the target's units) of ``x``
        ``[M, rows, features]``; with ``masks`` (training: :meth:`masks`), each hidden layer's output times its mask."""
        import tensorflow as tf

        for i in range(self.n_hidden):
            x = self.act(_biased(tf.matmul(x, params[2 * i]), params[2 * i + 1]))
            if masks:
                x = x * masks[i]
        out = _biased(tf.matmul(x, params[2 * self.n_hidden]), params[2 * self.n_hidden + 1])
        if self.plan.loss is None:
            return out
        mean, std = f.target[:, 0, None], tf.maximum(tf.sqrt(f.target[:, 1]), 1e-7)[:, None]  # Keras' Normalization(invert=True)
        return mean + out[:, :, 0] * std

    def masks(self, f: Feeds, counter, rows) -> list:
        """Per hidden layer, each member's inverted-dropout factors ``[M, rows, units]`` (``1 / (1 - rate)``
        where its uniform draw is at least its rate, else 0; none without dropout): what a unit's output is multiplied by."""
        import tensorflow as tf

        if not self.plan.dropout:
            return []
        counters = tf.fill(tf.shape(f.seeds), counter)
        rate, scale = f.rate[:, None, None], (1.0 / (1.0 - f.rate))[:, None, None]
        masks = []
        for i, units in enumerate(self.plan.shape.hidden_units):
            keys = tf.stack([f.seeds, counters * DROPOUT_STRIDE + i], axis=1)
            draws = self.per_member(lambda key, dims=tf.stack([rows, units]): tf.random.stateless_uniform(dims, key), keys, tf.float32)
            masks.append(tf.where(draws >= rate, scale, 0.0))
        return masks

    def penalty(self, params: list, f: Feeds):
        """Each member's ``l1*sum|W| + l2*sum W^2`` over the hidden kernels."""
        import tensorflow as tf

        total = tf.zeros_like(f.lr)
        for kernel in params[: 2 * self.n_hidden : 2]:
            if self.plan.l1:
                total += f.l1 * tf.reduce_sum(tf.abs(kernel), [1, 2])
            if self.plan.l2:
                total += f.l2 * tf.reduce_sum(tf.square(kernel), [1, 2])
        return total

    def penalty_gradients(self, grads: list, params: list, f: Feeds, on) -> list:
        """``grads`` plus the penalty's, ``l1 * sign(W) + 2 * l2 * W`` on each hidden kernel, times ``on``.

        Written out rather than taped: the tape's gradient of the penalty's sums broadcasts
        ``l1`` and ``l2`` to the kernel's shape first, two more passes over the weights per step.
        """
        import tensorflow as tf

        l1, l2 = (on * f.l1)[:, None, None], (on * f.l2 * 2.0)[:, None, None]
        grads = list(grads)
        for i in range(0, 2 * self.n_hidden, 2):
            terms = ([l1 * tf.sign(params[i])] if self.plan.l1 else []) + ([l2 * params[i]] if self.plan.l2 else [])
            if terms:
                grads[i] += sum(terms[1:], terms[0])  # (l1 term + l2 term), then added
        return grads

    def scores(self, outputs, y, mask) -> list:
        """Per member, sums over the rows ``mask`` keeps: the loss, then each metric of :attr:`Plan.columns`' training part."""
        import tensorflow as tf

        if self.plan.loss is None:
            # log-softmax and a gather: the op TensorFlow traces for the fused one under op determinism,
            # which the model.fit engine turns on; written out, the graph is the same whenever it is traced
            rows = [-tf.gather(tf.nn.log_softmax(outputs), y, batch_dims=2), tf.cast(tf.equal(tf.argmax(outputs, axis=-1), y), tf.float32)]
        else:
            error = outputs - y
            absolute, squared = tf.abs(error), tf.square(error)
            loss = {"mse": squared, "mae": absolute, "huber": tf.where(absolute <= 1.0, 0.5 * squared, absolute - 0.5)}[self.plan.loss]
            rows = [loss, absolute, squared]
        zero = tf.zeros_like(rows[0])
        return [tf.reduce_sum(tf.where(mask, row, zero), 1) for row in rows]

    def step(self, f: Feeds, state: State, batch, count, active, masks: list) -> tuple[State, list]:
        """One optimizer step of every ``active`` member on its ``batch``, with its dropout ``masks`` (:meth:`masks`):
        the new state, and each one's batch loss times its rows, then its metrics' sums."""
        import tensorflow as tf

        mask = tf.range(tf.shape(batch)[1])[None, :] < count[:, None]
        count_f, on = tf.cast(count, tf.float32), tf.cast(active, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(state.params)
            sums = self.scores(self.forward(state.params, tf.gather(f.x, batch), f, masks), tf.gather(f.y, batch), mask)
            ce = tf.math.divide_no_nan(sums[0], count_f)
            total = tf.reduce_sum(tf.where(active, ce, tf.zeros_like(ce)))
        grads = self.penalty_gradients(tape.gradient(total, state.params), state.params, f, on)
        loss = ce + self.penalty(state.params, f)
        factors = coefficients(self.plan.rule, f.lr, f.opt, state.iterations + 1.0, on)
        params, slots = [], [[] for _ in state.slots]
        for i, (w, g) in enumerate(zip(state.params, grads)):
            w, values = update(self.plan.rule, factors, w, g, [slot[i] for slot in state.slots])
            params.append(w)
            for slot, value in zip(slots, values):
                slot.append(value)
        zero = tf.zeros_like(loss)
        return State(params, slots, state.iterations + on), [tf.where(active, value, zero) for value in [loss * count_f, *sums[1:]]]

    def epoch(self, f: Feeds, epoch, alive, state: State) -> tuple[State, list]:
        """One epoch of every ``alive`` member, in batches of its own shuffled rows: the new state, each one's summed loss and metrics."""
        import tensorflow as tf

        size = f.batch_size
        width = (size + LANES - 1) // LANES * LANES
        max_steps = tf.reduce_max((f.n_train + size - 1) // size)
        key = tf.cast(epoch, tf.int64) + SHUFFLE_KEY

        def order(args):
            seed, n = args
            return tf.pad(tf.random.experimental.stateless_shuffle(tf.range(n), tf.stack([seed, key])), [[0, max_steps * size - n]])

        rows = tf.gather(f.train, self.per_member(order, (f.seeds, f.n_train), tf.int32), batch_dims=1)
        batches = tf.pad(tf.reshape(rows, tf.stack([-1, max_steps, size])), [[0, 0], [0, 0], [0, width - size]])

        chunk = tf.maximum(DRAW_ROWS // width, 1)

        def chunk_of_steps(first, state, sums):
            counter = tf.cast(epoch * EPOCH_CHUNKS + first // chunk, tf.int64) + DROPOUT_KEY
            last = tf.minimum(first + chunk, max_steps)
            masks = self.masks(f, counter, (last - first) * width)  # a shorter chunk draws a prefix of a whole one

            def body(step, state, sums):
                at = (step - first) * width
                count = tf.clip_by_value(f.n_train - step * size, 0, size)
                active = tf.logical_and(alive, count > 0)
                state, values = self.step(f, state, batches[:, step], count, active, [m[:, at : at + width] for m in masks])
                return step + 1, state, [total + value for total, value in zip(sums, values)]

            _, state, sums = tf.while_loop(lambda step, *_: step < last, body, (first, state, sums))
            return first + chunk, state, sums

        _, state, sums = tf.while_loop(lambda first, *_: first < max_steps, chunk_of_steps, (tf.constant(0), state, self.zeros(f)))
        return state, sums

    def zeros(self, f: Feeds) -> list:
        """Each member's zero for the loss and every metric (:attr:`Plan.columns`' training part)."""
        import tensorflow as tf

        return [tf.zeros_like(f.lr) for _ in range(len(self.plan.columns) // 2)]

    def evaluate(self, params: list, f: Feeds) -> list:
        """Per member: the loss's and each metric's sums over its validation rows, :data:`VAL_CHUNK` rows at a time."""
        import tensorflow as tf

        def body(start, sums):
            rows = f.val[:, start : start + VAL_CHUNK]
            mask = (start + tf.range(tf.shape(rows)[1]))[None, :] < f.n_val[:, None]
            values = self.scores(self.forward(params, tf.gather(f.x, rows), f, []), tf.gather(f.y, rows), mask)
            return start + VAL_CHUNK, [total + value for total, value in zip(sums, values)]

        _, sums = tf.while_loop(lambda start, *_: start < tf.shape(f.val)[1], body, (tf.constant(0), self.zeros(f)))
        return sums

    def watch(self, watch: Watch, epoch, row, params: list, alive, patience) -> tuple[Watch, Any]:
        """Keras 3's ``EarlyStopping(restore_best_weights=True)`` after ``epoch`` for each ``alive`` member: the new watch, and who stops."""
        import tensorflow as tf

        monitor = self.plan.monitor
        if monitor is None:
            return watch, tf.zeros_like(alive)
        current = row[:, self.plan.columns.index(monitor)]
        better = current > watch.best if "acc" in monitor else current < watch.best
        improved = tf.logical_and(alive, tf.logical_or(better, tf.equal(epoch, 0)))  # Keras: the first epoch improves on None
        wait = tf.where(improved, 0, watch.wait + tf.cast(alive, tf.int32))
        kept = [tf.where(_members(improved, p), p, b) for p, b in zip(params, watch.params)]
        stop = tf.logical_and(tf.logical_and(alive, tf.logical_not(improved)), tf.logical_and(wait >= patience, epoch > 0))
        return Watch(tf.where(improved, current, watch.best), tf.where(improved, epoch, watch.epoch), wait, kept), stop

    def fit(self, *feeds):
        """Every epoch of every member: the history ``[epochs, M, COLUMNS]``, epochs each ran, weights kept, slots, steps, restored epoch."""
        import tensorflow as tf

        f, monitor = Feeds.of(feeds), self.plan.monitor
        # one graph for both: a population starts from scratch or goes on from its fed starts
        state = tf.cond(tf.shape(f.start[-1])[0] > 0, lambda: self.resumed(f.start), lambda: self.fresh(f.seeds))
        params = state.params
        counts = tf.zeros_like(f.seeds, tf.int32)
        watch = Watch(tf.zeros_like(f.lr), counts, counts, params if monitor else [])

        def body(epoch, alive, ran, state, watch, history):
            state, sums = self.epoch(f, epoch, alive, state)
            val_sums = self.evaluate(state.params, f)
            n_train, n_val = tf.cast(f.n_train, tf.float32), tf.cast(f.n_val, tf.float32)
            val_loss = val_sums[0] / n_val + self.penalty(state.params, f)
            row = tf.stack([total / n_train for total in sums] + [val_loss] + [total / n_val for total in val_sums[1:]], axis=1)
            watch, stop = self.watch(watch, epoch, row, state.params, alive, f.patience)
            ran += tf.cast(alive, tf.int32)
            alive = tf.logical_and(tf.logical_and(alive, tf.math.is_finite(row[:, 0])), tf.logical_not(stop))
            with tf.control_dependencies([row]):  # after the epoch, before the next: it changes no number
                tick = tf.reshape(tf.numpy_function(EPOCHS.tick, [epoch + 1, f.epochs], tf.int32, stateful=True), [])
            return epoch + tick, alive, ran, state, watch, history.write(epoch - f.first_epoch, row)

        history = tf.TensorArray(tf.float32, size=f.epochs - f.first_epoch)
        start = (f.first_epoch, tf.ones_like(f.seeds, tf.bool), counts, state, watch, history)
        epochs, _, ran, state, watch, history = tf.while_loop(
            lambda epoch, alive, *_: tf.logical_and(epoch < f.epochs, tf.reduce_any(alive)), body, start
        )
        kept = watch.params if monitor else state.params
        flat = [[v if k % 2 == 0 else v[:, 0] for k, v in enumerate(values)] for values in (kept, *state.slots)]  # biases [M, units]
        return history.stack()[: epochs - f.first_epoch], ran, flat[0], flat[1:], state.iterations, watch.epoch

    def fresh(self, seeds) -> State:
        """The state before the first step: :meth:`initial` weights, zero slots and steps."""
        import tensorflow as tf

        params = self.initial(seeds)
        return State(params, [[tf.zeros_like(p) for p in params] for _ in self.plan.rule.slots], tf.zeros_like(seeds, tf.float32))

    def resumed(self, start: list) -> State:
        """The state fed in as ``start`` (:attr:`Feeds.start`)."""
        n = 2 * len(self.plan.shape.layers)
        return State(start[:n], [start[n * (j + 1) : n * (j + 2)] for j in range(len(self.plan.rule.slots))], start[-1])
