"""Keras 3's Adam, SGD and RMSprop update rules for a population: one set of factors per member, the math of ``update_step``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

#: The optimizers the graph trains with: ``_target_`` -> (name, the config keys it reads besides ``lr``).
OPTIMIZERS = {
    "keras.optimizers.Adam": ("adam", ()),
    "keras.optimizers.SGD": ("sgd", ("momentum", "nesterov")),
    "keras.optimizers.RMSprop": ("rmsprop", ("rho", "momentum")),
}
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7
#: Per-member scalars go through ``pow`` as rows this wide: Eigen's vectorized and scalar ``pow``
#: differ in the last bit, and a lone scalar would take the scalar path (see :mod:`sweep.engines.graph`).
LANES = 16


@dataclass(frozen=True)
class Rule:
    """What of the optimizer fixes the graph's update; its momentum and rho are inputs (:func:`optimizer_inputs`)."""

    name: str  # adam, sgd or rmsprop
    momentum: bool = False  # SGD and RMSprop: momentum > 0, a momentum slot
    nesterov: bool = False  # SGD with momentum: Nesterov's

    @classmethod
    def of(cls, cfg: DictConfig) -> Rule:
        """The rule of ``cfg.optimizer`` (one of :data:`OPTIMIZERS`)."""
        opt = cfg.optimizer
        momentum = opt.get("momentum", 0.0) > 0
        return cls(OPTIMIZERS[opt._target_][0], momentum, momentum and bool(opt.get("nesterov", False)))

    @property
    def slots(self) -> tuple[str, ...]:
        """The Keras optimizer's attributes holding its per-variable state, in the graph's slot order."""
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


def coefficients(rule: Rule, lr, opt, step, on) -> dict[str, Any]:
    """The factors of one step that every variable of a member shares: ``[M, 1, 1]``, from ``lr``, :func:`optimizer_inputs` and its step number.

    ``on`` is each member's 1 (update) or 0 (leave as it is): an inactive member's step sizes
    are 0 and its decays 1, so its update changes nothing without its state being selected.
    """
    import tensorflow as tf

    def kept(c):
        return tf.where(on > 0.0, c, 1.0)

    if rule.name == "adam":
        steps = tf.tile(step[:, None], [1, LANES])
        alpha = lr * tf.sqrt(1.0 - tf.pow(BETA_2, steps)[:, 0]) / (1.0 - tf.pow(BETA_1, steps)[:, 0])
        factors = {"alpha": on * alpha, "decay_1": on * (1.0 - BETA_1), "decay_2": on * (1.0 - BETA_2)}
    else:
        momentum, rho, one_minus_rho = opt[0], opt[1], opt[2]
        factors = {"lr": on * lr, "momentum": kept(momentum), "nesterov": on * momentum, "on": on}
        if rule.name == "rmsprop":
            factors |= {"rho": kept(rho), "one_minus_rho": on * one_minus_rho}
    return {key: tf.reshape(value, [-1, 1, 1]) for key, value in factors.items()}


def update(rule: Rule, factors: dict[str, Any], w, g, slots: list) -> tuple[Any, list]:
    """Keras 3's ``update_step`` of ``rule`` on one stacked variable ``w`` ``[members, ., .]``: ``(new w, new slots)``.

    ``factors`` come from :func:`coefficients`. Each expression is Keras' own, up to the
    order of a product's operands (which changes no bit).
    """
    import tensorflow as tf

    if rule.name == "adam":
        m, v = slots
        m = m + (g - m) * factors["decay_1"]
        v = v + (tf.square(g) - v) * factors["decay_2"]
        return w - (m * factors["alpha"]) / (tf.sqrt(v) + EPSILON), [m, v]
    lr = factors["lr"]
    if rule.name == "sgd":
        if not rule.momentum:
            return w - g * lr, []
        m = slots[0] * factors["momentum"] - g * lr
        return (w + (m * factors["nesterov"] - g * lr), [m]) if rule.nesterov else (w + m * factors["on"], [m])
    v = slots[0] * factors["rho"] + tf.square(g) * factors["one_minus_rho"]
    increment = (lr * g) / tf.sqrt(v + EPSILON)
    if not rule.momentum:
        return w - increment, [v]
    m = slots[1] * factors["momentum"] + increment
    return w - m * factors["on"], [v, m]
