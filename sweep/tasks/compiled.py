"""The MLP's whole ``fit`` as one TensorFlow graph, traced once per process and reused by every job of that shape.

``model.fit`` on a brand-new Keras model traces and compiles its train and evaluation
functions (about 0.6-0.8 s on 2 cores) and then runs every step and every validation
batch from Python; on digits that is 50-100 times the arithmetic. Here the layer shapes
(input size, ``hidden_units``, activation, classes) and the optimizer's update rule
(:class:`Rule`: which optimizer, whether it keeps momentum, Nesterov or not) key a
:class:`Trainer` whose variables and graph live for the process; the hyperparameters
(learning rate, L1/L2 strength, dropout rate, the optimizer's momentum and rho), the seed,
the epoch count and the batch size are inputs of the graph, and every call re-initialises
the weights and zeroes the optimizer's state first.

The math is ``model.fit``'s, step for step: Glorot-uniform kernels and zero biases; per
epoch a fresh shuffle split into batches of ``batch_size`` (the last one partial); per
batch the mean sparse cross-entropy on the softmax's logits plus ``l1*sum|W| + l2*sum W^2``
over the hidden kernels, its gradient and the Keras 3 optimizer's update (:func:`update`:
Adam with beta 0.9/0.999 and epsilon 1e-7; SGD with momentum, Nesterov or not; RMSprop,
uncentered, with rho, momentum and epsilon 1e-7); inverted dropout after every hidden
layer; epoch ``loss``/``accuracy`` as the batch-size-weighted means Keras reports, ``val_loss``/``val_accuracy`` on the whole
validation set (penalty included, as Keras does); training stops after the first epoch
whose loss is NaN/inf (``TerminateOnNaN``). The random numbers (initial weights, batch
order, dropout masks) come from TensorFlow's stateless generators keyed on the job's
seed, so a job's result depends on its config and seed only, never on which jobs ran
before it in the process; they are different draws from the same distributions as
Keras' own.

Only configs whose math it reproduces take this path (:func:`supports`): ``model=mlp``
(the builder ``sweep.models.mlp``), ``optimizer=adam``, ``sgd`` or ``rmsprop`` with no keys
beyond their schemas' (``lr``; SGD's ``momentum`` in [0, 1] and ``nesterov``; RMSprop's
``rho`` and ``momentum`` in [0, 1]), no early stopping, ``verbose=0``. Everything else goes
through ``model.fit`` (:func:`sweep.tasks.classify.fit_keras`).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from omegaconf import DictConfig

from sweep.tasks import Fitted

MLP_TARGET = "sweep.models.mlp"
#: The optimizers this module trains with: ``_target_`` -> (name, the config keys it reads besides ``lr``).
OPTIMIZERS = {
    "keras.optimizers.Adam": ("adam", ()),
    "keras.optimizers.SGD": ("sgd", ("momentum", "nesterov")),
    "keras.optimizers.RMSprop": ("rmsprop", ("rho", "momentum")),
}
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7
#: Columns of the history the graph returns, one row per epoch.
COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy")


def supports(cfg: DictConfig) -> bool:
    """Whether ``cfg`` is a run this module trains with ``model.fit``'s math."""
    model, opt, trainer = cfg.model, cfg.optimizer, cfg.trainer
    return (
        model.get("_target_") == MLP_TARGET
        and set(model) <= {"_target_", "name", "hidden_units", "activation"}
        and model.get("activation", "relu") in ACTIVATIONS
        and opt.get("_target_") in OPTIMIZERS
        and set(opt) <= {"_target_", "name", "lr", *OPTIMIZERS[opt._target_][1]}
        and isinstance(opt.get("momentum", 0.0), float)
        and 0.0 <= opt.get("momentum", 0.0) <= 1.0
        and isinstance(opt.get("nesterov", False), bool)
        and trainer.get("early_stopping_patience") is None
        and not trainer.get("verbose", 0)
    )


def _activations() -> dict[str, Any]:
    import tensorflow as tf

    return {"relu": tf.nn.relu, "tanh": tf.math.tanh, "sigmoid": tf.math.sigmoid, "elu": tf.nn.elu, "linear": tf.identity}


ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "linear")


@dataclass(frozen=True)
class Shape:
    """What fixes the graph: every other setting is an input."""

    n_features: int
    hidden_units: tuple[int, ...]
    activation: str
    n_classes: int

    @classmethod
    def of(cls, cfg: DictConfig, input_shape: tuple[int, ...], n_classes: int) -> Shape:
        """The shape of ``cfg``'s MLP on inputs of ``input_shape`` with ``n_classes`` classes."""
        model = cfg.model
        units = tuple(int(u) for u in model.get("hidden_units", (128,)))
        return cls(int(np.prod(input_shape)), units, str(model.get("activation", "relu")), n_classes)

    @property
    def layers(self) -> list[tuple[int, int]]:
        """(fan in, fan out) of each Dense layer, the softmax output last."""
        sizes = [self.n_features, *self.hidden_units, self.n_classes]
        return list(zip(sizes[:-1], sizes[1:]))


@dataclass(frozen=True)
class Rule:
    """What of the optimizer fixes the graph's update; its momentum and rho are inputs (:func:`optimizer_inputs`)."""

    name: str  # adam, sgd or rmsprop
    momentum: bool = False  # SGD and RMSprop: momentum > 0, a momentum slot
    nesterov: bool = False  # SGD with momentum: Nesterov's

    @classmethod
    def of(cls, cfg: DictConfig) -> Rule:
        """The rule of ``cfg.optimizer`` (one :func:`supports` accepts)."""
        opt = cfg.optimizer
        momentum = opt.get("momentum", 0.0) > 0
        return cls(OPTIMIZERS[opt._target_][0], momentum, momentum and bool(opt.get("nesterov", False)))

    @property
    def slots(self) -> tuple[str, ...]:
        """The Keras optimizer's attributes holding its per-variable state, in :attr:`TrainedState.slots` order."""
        if self.name == "adam":
            return ("_momentums", "_velocities")
        if self.name == "sgd":
            return ("momentums",) if self.momentum else ()
        return ("_velocities", "_momentums") if self.momentum else ("_velocities",)


def optimizer_inputs(cfg: DictConfig) -> list[float]:
    """The graph's optimizer input of ``cfg``: momentum, rho and ``1 - rho``, Keras' defaults where absent.

    ``1 - rho`` is computed here in double, as Keras does before casting it to float32 (in
    float32 it can round to another number).
    """
    opt = cfg.optimizer
    rho = opt.get("rho", 0.9)
    return [opt.get("momentum", 0.0), rho, 1.0 - rho]


def coefficients(rule: Rule, lr, opt, step, on=None) -> dict[str, Any]:
    """The factors of one ``rule`` step that every variable shares, from ``lr``, :func:`optimizer_inputs` and the step number.

    Scalars; or, for a population, one per member, with ``on`` the members' 1 (update) or 0
    (leave as it is): an inactive member's step sizes are 0 and its decays 1, so its update
    changes nothing without its state being selected, and an active one's factors are the
    very numbers of its ordinary run.
    """
    import tensorflow as tf

    def scaled(c):
        return c if on is None else on * c

    def kept(c):
        return c if on is None else tf.where(on > 0.0, c, 1.0)

    if rule.name == "adam":
        alpha = lr * tf.sqrt(1.0 - tf.pow(BETA_2, step)) / (1.0 - tf.pow(BETA_1, step))
        return {"alpha": scaled(alpha), "decay_1": scaled(1.0 - BETA_1), "decay_2": scaled(1.0 - BETA_2)}
    momentum, rho, one_minus_rho = opt[0], opt[1], opt[2]
    factors = {"lr": scaled(lr), "momentum": kept(momentum), "nesterov": scaled(momentum), "on": on}
    if rule.name == "rmsprop":
        factors |= {"rho": kept(rho), "one_minus_rho": scaled(one_minus_rho)}
    return factors


def update(rule: Rule, factors: dict[str, Any], w, g, slots: list, shaped=None) -> tuple[Any, list]:
    """Keras 3's ``update_step`` of ``rule`` on one variable: ``(new w, new slots)`` from ``w``, its gradient and slots.

    ``factors`` come from :func:`coefficients`; ``shaped(factor, w)`` broadcasts a per-member
    factor onto ``w`` (a population's). Each expression is Keras' own, up to the order of a
    product's operands (which changes no bit).
    """
    import tensorflow as tf

    def at(key):
        return factors[key] if shaped is None else shaped(factors[key], w)

    def applied(delta):
        return delta if factors.get("on") is None else delta * at("on")

    if rule.name == "adam":
        m, v = slots
        m = m + (g - m) * at("decay_1")
        v = v + (tf.square(g) - v) * at("decay_2")
        return w - (m * at("alpha")) / (tf.sqrt(v) + EPSILON), [m, v]
    lr = at("lr")
    if rule.name == "sgd":
        if not rule.momentum:
            return w - g * lr, []
        m = slots[0] * at("momentum") - g * lr
        return (w + (m * at("nesterov") - g * lr), [m]) if rule.nesterov else (w + applied(m), [m])
    v = slots[0] * at("rho") + tf.square(g) * at("one_minus_rho")
    increment = (lr * g) / tf.sqrt(v + EPSILON)
    if not rule.momentum:
        return w - increment, [v]
    m = slots[1] * at("momentum") + increment
    return w - applied(m), [v, m]


class Trainer:
    """The variables and the ``fit`` graph of one :class:`Shape` and :class:`Rule`, traced once.

    The graph runs in a TensorFlow session of its own (``own_session=True``), whose compiled
    kernels nothing else touches: every Keras ``clear_session()`` and ``tf.random.set_seed()``
    (both run before each job to make ``model.fit`` reproducible) clears the eager runtime's
    caches, and an eager ``tf.function`` then pays ~120 ms per job to instantiate its graph
    again. ``own_session=False`` keeps eager variables and a plain ``tf.function`` (tests).
    """

    def __init__(self, shape: Shape, rule: Rule = Rule("adam"), own_session: bool = True) -> None:
        import tensorflow as tf

        self.shape, self.rule = shape, rule
        self.graph = tf.Graph() if own_session else None
        with self.graph.as_default() if own_session else contextlib.nullcontext():
            self.weights = []
            for fan_in, fan_out in shape.layers:
                self.weights += [tf.Variable(tf.zeros([fan_in, fan_out])), tf.Variable(tf.zeros([fan_out]))]
            self.slots = [[tf.Variable(tf.zeros_like(w)) for w in self.weights] for _ in rule.slots]
            self.iterations = tf.Variable(0.0)
            specs = [
                tf.TensorSpec([None, shape.n_features], tf.float32),
                tf.TensorSpec([None], tf.int64),
                tf.TensorSpec([None, shape.n_features], tf.float32),
                tf.TensorSpec([None], tf.int64),
                tf.TensorSpec([4], tf.float32),  # lr, l1, l2, dropout
                tf.TensorSpec([3], tf.float32),  # momentum, rho, 1 - rho
                tf.TensorSpec([], tf.int64),  # seed
                tf.TensorSpec([], tf.int32),  # epochs
                tf.TensorSpec([], tf.int32),  # batch size
            ]
            self._function = tf.function(self._fit, input_signature=specs, autograph=False)
            if own_session:
                self._feeds = [tf.compat.v1.placeholder(spec.dtype, spec.shape) for spec in specs]
                self._history = self._function(*self._feeds)
                self._state = self.variables
                init = tf.compat.v1.variables_initializer(self._state)
                threading = tf.config.threading
                config = tf.compat.v1.ConfigProto(
                    intra_op_parallelism_threads=threading.get_intra_op_parallelism_threads(),
                    inter_op_parallelism_threads=threading.get_inter_op_parallelism_threads(),
                )
                self.session = tf.compat.v1.Session(graph=self.graph, config=config)
                self.session.run(init)

    @property
    def variables(self) -> list:
        """The weights, each slot's variables and the step count."""
        return [*self.weights, *(v for slot in self.slots for v in slot), self.iterations]

    def fit(self, *inputs: np.ndarray) -> tuple[np.ndarray, TrainedState]:
        """Run the fit graph on ``inputs`` (as :meth:`_fit` takes them); return the history and the final state."""
        if self.graph is None:
            history = self._function(*inputs).numpy()
            values = [v.numpy() for v in self.variables]
        else:
            history = self.session.run(self._history, dict(zip(self._feeds, inputs)))
            values = self.session.run(self._state)
        return history, self.state(values)

    def state(self, values: list[np.ndarray]) -> TrainedState:
        """The :class:`TrainedState` of :attr:`variables`' ``values``."""
        k = len(self.weights)
        slots = [values[k * (i + 1) : k * (i + 2)] for i in range(len(self.slots))]
        return TrainedState(values[:k], slots, int(values[-1]))

    # -- pieces of the graph

    def _init(self, seed) -> list:
        """Glorot-uniform kernels, zero biases, fresh optimizer state (the assignments); kernel draws keyed on (seed, layer)."""
        import tensorflow as tf

        ops = []
        for i, (fan_in, fan_out) in enumerate(self.shape.layers):
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            draw = tf.random.stateless_uniform([fan_in, fan_out], tf.stack([seed, tf.constant(i, tf.int64)]), -limit, limit)
            ops += [self.weights[2 * i].assign(draw), self.weights[2 * i + 1].assign(tf.zeros([fan_out]))]
        ops += [v.assign(tf.zeros_like(v)) for slot in self.slots for v in slot]
        ops.append(self.iterations.assign(0.0))
        return ops

    def _forward(self, x, dropout, seed):
        """Logits of ``x``; with a ``seed`` (training), inverted dropout at ``dropout`` after each hidden layer."""
        import tensorflow as tf

        act = _activations()[self.shape.activation]
        n_hidden = len(self.shape.hidden_units)
        for i in range(n_hidden):
            x = act(tf.matmul(x, self.weights[2 * i]) + self.weights[2 * i + 1])
            if seed is not None:
                x = tf.nn.experimental.stateless_dropout(x, dropout, tf.stack([seed[0], seed[1] * 16 + i]))
        return tf.matmul(x, self.weights[2 * n_hidden]) + self.weights[2 * n_hidden + 1]

    def _penalty(self, l1, l2):
        import tensorflow as tf

        total = tf.constant(0.0)
        for i in range(len(self.shape.hidden_units)):
            kernel = self.weights[2 * i]
            total += l1 * tf.reduce_sum(tf.abs(kernel)) + l2 * tf.reduce_sum(tf.square(kernel))
        return total

    def _scores(self, logits, y, penalty):
        """(mean cross-entropy + penalty, accuracy) of ``logits`` against labels ``y``."""
        import tensorflow as tf

        ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        hits = tf.cast(tf.equal(tf.argmax(logits, axis=-1), y), tf.float32)
        return ce + penalty, tf.reduce_mean(hits)

    def _step(self, xb, yb, lr, l1, l2, dropout, opt, seed):
        """One optimizer step on one batch; returns the batch's loss and accuracy before the update."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            logits = self._forward(xb, dropout, seed)
            loss, acc = self._scores(logits, yb, self._penalty(l1, l2))
        grads = tape.gradient(loss, self.weights)
        factors = coefficients(self.rule, lr, opt, self.iterations + 1.0)
        for i, (w, g) in enumerate(zip(self.weights, grads)):
            slots = [slot[i] for slot in self.slots]
            new_w, new_slots = update(self.rule, factors, w.read_value(), g, [s.read_value() for s in slots])
            for variable, value in zip(slots, new_slots):
                variable.assign(value)
            w.assign(new_w)
        self.iterations.assign_add(1.0)
        return loss, acc

    def _fit(self, x, y, x_val, y_val, hp, opt, seed, epochs, batch_size):
        """Every epoch of one fit; returns the history, one row of :data:`COLUMNS` per epoch run.

        Written with ``tf.while_loop`` rather than through AutoGraph, which would double the one-off trace time.
        """
        import tensorflow as tf

        lr, l1, l2, dropout = hp[0], hp[1], hp[2], hp[3]
        n = tf.shape(x)[0]
        size = tf.cast(n, tf.float32)
        steps = (n + batch_size - 1) // batch_size

        def epoch_body(epoch, finite, history):
            order = tf.random.experimental.stateless_shuffle(tf.range(n), tf.stack([seed, tf.cast(epoch, tf.int64) + (1 << 20)]))

            def step_body(step, loss_sum, hit_sum):
                rows = order[step * batch_size : tf.minimum((step + 1) * batch_size, n)]
                count = tf.cast(tf.shape(rows)[0], tf.float32)
                key = tf.stack([seed, tf.cast(epoch * steps + step, tf.int64) + (1 << 40)])
                loss, acc = self._step(tf.gather(x, rows), tf.gather(y, rows), lr, l1, l2, dropout, opt, key)
                return step + 1, loss_sum + loss * count, hit_sum + acc * count

            _, loss_sum, hit_sum = tf.while_loop(
                lambda step, *_: step < steps, step_body, (tf.constant(0), tf.constant(0.0), tf.constant(0.0))
            )
            val_loss, val_acc = self._scores(self._forward(x_val, dropout, None), y_val, self._penalty(l1, l2))
            train_loss = loss_sum / size
            history = history.write(epoch, tf.stack([train_loss, hit_sum / size, val_loss, val_acc]))
            return epoch + 1, tf.math.is_finite(train_loss), history

        with tf.control_dependencies(self._init(seed)):
            start = (tf.constant(0), tf.constant(True), tf.TensorArray(tf.float32, size=epochs))
        ran, _, history = tf.while_loop(lambda epoch, finite, _: tf.logical_and(epoch < epochs, finite), epoch_body, start)
        return history.stack()[:ran]


@lru_cache(maxsize=8)
def trainer(shape: Shape, rule: Rule = Rule("adam")) -> Trainer:
    """The process's :class:`Trainer` for ``shape`` and ``rule``, made (and later traced) on first use."""
    return Trainer(shape, rule)


def classify(cfg: DictConfig, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> Fitted:
    """:func:`sweep.tasks.classify.classify` for the runs :func:`supports` accepts, on a reused graph."""
    n_classes = int(max(y_train.max(), y_val.max())) + 1
    trainer_cfg = cfg.trainer
    job = trainer(Shape.of(cfg, x_train.shape[1:], n_classes), Rule.of(cfg))
    rows, state = job.fit(
        np.asarray(x_train, np.float32).reshape(len(x_train), -1),
        np.asarray(y_train, np.int64),
        np.asarray(x_val, np.float32).reshape(len(x_val), -1),
        np.asarray(y_val, np.int64),
        np.asarray(hyperparameters(cfg), np.float32),
        np.asarray(optimizer_inputs(cfg), np.float32),
        np.int64(cfg.seed),
        np.int32(trainer_cfg.epochs),
        np.int32(trainer_cfg.batch_size),
    )
    return fitted(cfg, rows, state, x_train.shape[1:], n_classes, trained_by="graph")


def fitted(
    cfg: DictConfig, rows: np.ndarray, state: TrainedState, input_shape: tuple[int, ...], n_classes: int, trained_by: str
) -> Fitted:
    """The :class:`Fitted` of a fit graph's history ``rows`` (one row of :data:`COLUMNS` per epoch run) and final ``state``."""
    from sweep.backend import save_model
    from sweep.tasks.classify import summarize

    history = [{"epoch": i, **dict(zip(COLUMNS, map(float, row)))} for i, row in enumerate(rows, start=1)]
    artifacts = {}
    if cfg.trainer.save_model:
        artifacts["model.keras"] = lambda path: save_model(keras_model(cfg, input_shape, n_classes, state), path)
    return summarize(history, restored=None, artifacts=artifacts, trained_by=trained_by)


def hyperparameters(cfg: DictConfig) -> list[float]:
    """The graph's hyperparameter input of ``cfg``: learning rate, L1, L2, dropout rate."""
    reg = cfg.regularizer
    return [cfg.optimizer.lr, reg.get("l1", 0.0), reg.get("l2", 0.0), reg.get("dropout", 0.0)]


@dataclass(frozen=True)
class TrainedState:
    """A finished fit: the weights, the optimizer's slots (per :attr:`Rule.slots`, each in the weights' order) and its step count."""

    weights: list[np.ndarray]
    slots: list[list[np.ndarray]]
    iterations: int


def keras_model(cfg: DictConfig, input_shape: tuple[int, ...], n_classes: int, state: TrainedState):
    """The Keras model ``model.fit`` would have left: the model ``cfg`` builds and compiles, holding ``state``.

    Building and compiling a Keras model costs ~45 ms, mostly creating its variables, so one
    model per structure (layers, which penalties, whether dropout) is kept and given the job's
    penalty strengths, dropout rate and learning rate: its ``get_config()`` then equals a fresh
    build's, which is what ``model.save`` writes and ``load_model`` rebuilds from.
    """
    from sweep.models import _penalty

    reg = cfg.regularizer
    l1, l2, dropout = reg.get("l1", 0.0), reg.get("l2", 0.0), reg.get("dropout", 0.0)
    model = _template(cfg, tuple(input_shape), n_classes, (bool(l1), bool(l2), bool(dropout)))
    for layer in model.layers:
        if getattr(layer, "kernel_regularizer", None) is not None:
            layer.kernel_regularizer = _penalty(l1, l2)
        if hasattr(layer, "rate"):
            layer.rate = dropout
    model.set_weights(state.weights)
    optimizer = model.optimizer
    optimizer.learning_rate.assign(cfg.optimizer.lr)
    optimizer.iterations.assign(state.iterations)
    for name, values in zip(Rule.of(cfg).slots, state.slots, strict=True):
        for variable, value in zip(model.trainable_variables, values, strict=True):
            getattr(optimizer, name)[optimizer._get_variable_index(variable)].assign(value)
    return model


_TEMPLATES: dict[tuple, Any] = {}


def _template(cfg: DictConfig, input_shape: tuple[int, ...], n_classes: int, flags: tuple[bool, bool, bool]):
    """The kept Keras model for this structure, built (with its optimizer) from ``cfg`` the first time."""
    from omegaconf import OmegaConf

    from sweep.tasks.classify import build_model

    opt = {k: v for k, v in OmegaConf.to_container(cfg.optimizer, resolve=True).items() if k != "lr"}
    key = (repr(OmegaConf.to_container(cfg.model, resolve=True)), repr(sorted(opt.items())), input_shape, n_classes, flags)
    if key not in _TEMPLATES:
        if len(_TEMPLATES) >= 8:
            _TEMPLATES.clear()
        model = build_model(cfg, input_shape, n_classes)
        model.optimizer.build(model.trainable_variables)
        _TEMPLATES[key] = model
    return _TEMPLATES[key]
