"""The Keras model a graph-trained member saves: the model ``model.fit`` would have left, holding the member's weights and optimizer state."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweep.engines.keras_fit import build_model
from sweep.engines.member import TrainedState
from sweep.engines.optimizers import Rule


def keras_model(cfg: DictConfig, input_shape: tuple[int, ...], n_classes: int, state: TrainedState):
    """The model ``cfg`` builds and compiles, holding ``state``.

    Building and compiling a Keras model costs ~45 ms, mostly creating its variables, so one
    model per structure (layers, which penalties, whether dropout) is kept and given the job's
    penalty strengths, dropout rate and learning rate: its ``get_config()`` then equals a fresh
    build's, which is what ``model.save`` writes and ``load_model`` rebuilds from.
    """
    from sweep.models import _penalty

    l1, l2, dropout = _strengths(cfg)
    model = _template(cfg, tuple(input_shape), n_classes)
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


def load_state(cfg: DictConfig, path: str, input_shape: tuple[int, ...], n_classes: int) -> TrainedState:
    """The state held by the model ``cfg`` saved at ``path`` (``model.keras``): the inverse of :func:`keras_model`.

    Read into the kept model of its structure (``load_weights`` takes a ``.keras`` archive's
    weights and optimizer variables), not rebuilt from the archive's config as ``load_model``
    would: far cheaper, for the many members a halving rung continues.
    """
    from sweep.backend import load_weights

    model = _template(cfg, tuple(input_shape), n_classes)
    load_weights(model, path)
    optimizer = model.optimizer
    slots = [[getattr(optimizer, name)[optimizer._get_variable_index(v)].numpy() for v in model.trainable_variables] for name in Rule.of(cfg).slots]
    return TrainedState(model.get_weights(), slots, int(optimizer.iterations.numpy()))


def _strengths(cfg: DictConfig) -> tuple[float, float, float]:
    """``cfg``'s L1 and L2 penalties and dropout rate (0: none)."""
    reg = cfg.regularizer
    return reg.get("l1", 0.0), reg.get("l2", 0.0), reg.get("dropout", 0.0)


_TEMPLATES: dict[tuple, Any] = {}


def _template(cfg: DictConfig, input_shape: tuple[int, ...], n_classes: int):
    """The kept Keras model for this structure, built (with its optimizer) from ``cfg`` the first time.

    Built under fresh Keras name counters (``reset``), so its layers have a fresh build's names
    (``dense``, ``dense_1``) whatever was built in the process before.
    """
    from sweep.backend import reset

    flags = tuple(bool(strength) for strength in _strengths(cfg))  # which penalties, whether dropout
    opt = {k: v for k, v in OmegaConf.to_container(cfg.optimizer, resolve=True).items() if k != "lr"}
    key = (repr(OmegaConf.to_container(cfg.model, resolve=True)), repr(sorted(opt.items())), input_shape, n_classes, flags)
    if key not in _TEMPLATES:
        if len(_TEMPLATES) >= 8:
            _TEMPLATES.clear()
        reset(collect=False)
        model = build_model(cfg, input_shape, n_classes)
        model.optimizer.build(model.trainable_variables)
        _TEMPLATES[key] = model
    return _TEMPLATES[key]
