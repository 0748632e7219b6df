"""The Keras model a graph-trained member saves: the model ``model.fit`` would have left, holding the member's weights and optimizer state."""

from __future__ import annotations

import copy
import io
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from sweep.engines.keras_fit import build_model
from sweep.engines.member import TrainedState
from sweep.engines.optimizers import Rule
from sweep.models import Output


def keras_model(cfg: DictConfig, input_shape: tuple[int, ...], output: Output, state: TrainedState):
    """The model ``cfg`` builds and compiles, holding ``state``.

    Building and compiling a Keras model costs ~45 ms, mostly creating its variables, so one
    model per structure (layers, which penalties, whether dropout) is kept and given the job's
    penalty strengths, dropout rate and learning rate: its ``get_config()`` then equals a fresh
    build's, which is what ``model.save`` writes and ``load_model`` rebuilds from.
    """
    model = _configured(cfg, tuple(input_shape), output)
    model.set_weights(state.weights)
    optimizer = model.optimizer
    optimizer.iterations.assign(state.iterations)
    for name, values in zip(Rule.of(cfg).slots, state.slots, strict=True):
        for variable, value in zip(model.trainable_variables, values, strict=True):
            getattr(optimizer, name)[optimizer._get_variable_index(variable)].assign(value)
    return model


def _configured(cfg: DictConfig, input_shape: tuple[int, ...], output: Output):
    """The kept model of ``cfg``'s structure given ``cfg``'s penalty strengths, dropout rate and learning rate."""
    from sweep.models import _penalty

    l1, l2, dropout = _strengths(cfg)
    model = _template(cfg, input_shape, output)
    for layer in model.layers:
        if getattr(layer, "kernel_regularizer", None) is not None:
            layer.kernel_regularizer = _penalty(l1, l2)
        if hasattr(layer, "rate"):
            layer.rate = dropout
    model.optimizer.learning_rate.assign(cfg.optimizer.lr)
    return model


def load_state(cfg: DictConfig, path: str, input_shape: tuple[int, ...], output: Output) -> TrainedState:
    """The state held by the model ``cfg`` saved at ``path`` (``model.keras``): the inverse of :func:`keras_model`.

    Read from the archive's weights file where :func:`_layout` found Keras puts each array,
    not rebuilt from its config as ``load_model`` would: far cheaper, for the many members a
    halving rung continues. Without a layout, read into the kept model with ``load_weights``.
    """
    from sweep.backend import load_weights

    layout = _layout(cfg, tuple(input_shape), output)
    if layout is not None:
        import h5py

        with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read(WEIGHTS)), "r") as weights:
            return layout.state([weights[name][()] for name in layout.names])
    model = _template(cfg, tuple(input_shape), output)
    load_weights(model, path)
    optimizer = model.optimizer
    slots = [[getattr(optimizer, name)[optimizer._get_variable_index(v)].numpy() for v in model.trainable_variables] for name in Rule.of(cfg).slots]
    return TrainedState(model.get_weights(), slots, int(optimizer.iterations.numpy()))


def _strengths(cfg: DictConfig) -> tuple[float, float, float]:
    """``cfg``'s L1 and L2 penalties and dropout rate (0: none)."""
    reg = cfg.regularizer
    return reg.get("l1", 0.0), reg.get("l2", 0.0), reg.get("dropout", 0.0)


def write_model(cfg: DictConfig, input_shape: tuple[int, ...], output: Output, state: TrainedState, path: str) -> None:
    """Write ``model.keras`` holding ``state``: the config and weights files ``model.save`` writes of :func:`keras_model`, bit for bit.

    Keras saves the first member of each structure; every other member's file is a copy of
    that archive (:class:`Kept`) with its own arrays and learning rate written where Keras put
    the first one's, and its own ``config.json``, which Keras' serializer writes once per
    config: ~1 ms a file against ~8 ms for Keras' save, which walks the model and its
    optimizer each time. Its ``metadata.json`` keeps the first save's date.
    """
    from sweep.backend import save_model

    input_shape = tuple(input_shape)
    structure = _key(cfg, input_shape, output)
    kept = _ARCHIVES.get(structure)
    if kept is not None:
        kept.write(state, cfg.optimizer.lr, kept.config_text(_hyperparameters(cfg), lambda: _config_text(cfg, input_shape, output)), path)
        return
    save_model(keras_model(cfg, input_shape, output, state), path)
    if structure not in _ARCHIVES:
        if len(_ARCHIVES) >= 64:
            _ARCHIVES.clear()
        layout = _layout(cfg, input_shape, output)
        _ARCHIVES[structure] = Kept.of(path, layout, _hyperparameters(cfg)) if layout is not None else None


def _hyperparameters(cfg: DictConfig) -> tuple[float, ...]:
    """What of ``cfg`` a structure's ``config.json`` holds: the learning rate, penalty strengths and dropout rate."""
    return (cfg.optimizer.lr, *_strengths(cfg))


def _config_text(cfg: DictConfig, input_shape: tuple[int, ...], output: Output) -> str:
    """The ``config.json`` Keras' ``model.save`` writes of ``cfg``'s model (its serializer's own text)."""
    from keras.src.saving.saving_lib import _serialize_model_as_json

    return _serialize_model_as_json(_configured(cfg, input_shape, output))[0]


#: The weights and config files inside a ``.keras`` archive.
WEIGHTS, CONFIG = "model.weights.h5", "config.json"


@dataclass(frozen=True)
class Layout:
    """Where a structure's ``model.keras`` holds a state's arrays: the weights file's dataset of each (weights, each slot's, steps),
    and of the optimizer's learning rate."""

    names: list[str]  # in the order of :meth:`arrays`
    n_weights: int
    learning_rate: str

    @staticmethod
    def arrays(state: TrainedState) -> list[np.ndarray]:
        """``state``'s arrays in :attr:`names`' order."""
        return [*state.weights, *(array for slot in state.slots for array in slot), np.asarray(state.iterations, np.int64)]

    def state(self, arrays: list[np.ndarray]) -> TrainedState:
        """The inverse of :meth:`arrays`."""
        n = self.n_weights
        slots = [list(arrays[n * (j + 1) : n * (j + 2)]) for j in range((len(arrays) - 1) // n - 1)]
        return TrainedState(list(arrays[:n]), slots, int(arrays[-1]))


#: Configs whose ``config.json`` a :class:`Kept` keeps before it starts again (bounds its memory on long sweeps).
MAX_CONFIGS = 256


@dataclass(frozen=True)
class Kept:
    """A ``model.keras`` Keras wrote (its zip entries), each array's bytes in its weights file (offset, dtype, shape; the learning
    rate last), and the ``config.json`` of each config of its structure written so far."""

    entries: list[tuple[zipfile.ZipInfo, bytes]]
    places: list[tuple[int, np.dtype, tuple[int, ...]]]
    configs: dict[tuple[float, ...], bytes]

    @classmethod
    def of(cls, path: str, layout: Layout, hyperparameters: tuple[float, ...]) -> Kept | None:
        """The archive at ``path`` of a config with ``hyperparameters``, or ``None`` if one of ``layout``'s arrays has no place of
        its own in the file (chunked, compressed, compact)."""
        import h5py

        with zipfile.ZipFile(path) as archive:
            entries = [(info, archive.read(info)) for info in archive.infolist()]
        weights = next(data for info, data in entries if info.filename == WEIGHTS)
        with h5py.File(io.BytesIO(weights), "r") as h5:
            places = [(h5[name].id.get_offset(), h5[name].dtype, h5[name].shape) for name in [*layout.names, layout.learning_rate]]
        if any(offset is None for offset, _, _ in places):
            return None
        return cls(entries, places, {hyperparameters: next(data for info, data in entries if info.filename == CONFIG)})

    def config_text(self, hyperparameters: tuple[float, ...], serialized: Callable[[], str]) -> bytes:
        """The ``config.json`` of the config with ``hyperparameters``: ``serialized()`` the first time."""
        text = self.configs.get(hyperparameters)
        if text is None:
            if len(self.configs) >= MAX_CONFIGS:
                self.configs.clear()
            text = self.configs[hyperparameters] = serialized().encode()
        return text

    def write(self, state: TrainedState, learning_rate: float, config: bytes, path: str) -> None:
        """This archive with ``state``'s arrays and ``learning_rate`` in place of the ones Keras wrote, and ``config`` as its config."""
        with zipfile.ZipFile(path, "w") as archive:
            for info, data in self.entries:
                if info.filename == CONFIG:
                    data = config
                elif info.filename == WEIGHTS:
                    data = bytearray(data)
                    for (offset, dtype, shape), array in zip(self.places, [*Layout.arrays(state), learning_rate], strict=True):
                        raw = np.ascontiguousarray(np.asarray(array, dtype).reshape(shape)).tobytes()
                        data[offset : offset + len(raw)] = raw
                archive.writestr(copy.copy(info), bytes(data))


def _layout(cfg: DictConfig, input_shape: tuple[int, ...], output: Output) -> Layout | None:
    """Where Keras saves each array of a state of ``cfg``'s structure, found once by saving one whose every array holds its own number.

    ``None`` when the weights file does not hold each array once, as its own dataset.
    """
    key = _key(cfg, input_shape, output)
    if key not in _LAYOUTS:
        _LAYOUTS[key] = _found_layout(cfg, input_shape, output)
    return _LAYOUTS[key]


#: The first marker value: far from the other numbers Keras saves beside the marked arrays.
MARK = 4096


def _found_layout(cfg: DictConfig, input_shape: tuple[int, ...], output: Output) -> Layout | None:
    import h5py

    from sweep.backend import save_model

    shapes = [w.shape for w in _template(cfg, input_shape, output).get_weights()]
    n_slots, n = len(Rule.of(cfg).slots), len(shapes)
    marks = [np.full(shape, MARK + i + n * j, np.float32) for j in range(n_slots + 1) for i, shape in enumerate(shapes)]
    marked = Layout([], n, "").state([*marks, np.int64(MARK + n * (n_slots + 1))])
    names: dict[int, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = keras_model(cfg, input_shape, output, marked)
        model.optimizer.learning_rate.assign(MARK + len(marks) + 1)
        save_model(model, str(Path(tmp) / "marked.keras"))
        with zipfile.ZipFile(Path(tmp) / "marked.keras") as archive, h5py.File(io.BytesIO(archive.read(WEIGHTS)), "r") as h5:

            def visit(name: str, item: Any) -> None:
                numeric = isinstance(item, h5py.Dataset) and item.size and item.dtype.kind in "fiu"
                values = item[()] if numeric else np.array([np.nan])
                index = float(values.flat[0]) - MARK
                if np.all(values == values.flat[0]) and index.is_integer() and 0 <= index < len(marks) + 2:
                    names[int(index)] = name if int(index) not in names else ""  # "": found twice

            h5.visititems(visit)
    if sorted(names) != list(range(len(marks) + 2)) or "" in names.values():
        return None
    return Layout([names[i] for i in range(len(marks) + 1)], n, names[len(marks) + 1])


_TEMPLATES: dict[tuple, Any] = {}
_LAYOUTS: dict[tuple, Layout | None] = {}
_ARCHIVES: dict[tuple, Kept | None] = {}


def _key(cfg: DictConfig, input_shape: tuple[int, ...], output: Output) -> tuple:
    """What fixes a kept model's structure: the model, the optimizer but its rate, the input, the output (classes, or a
    regression's target mean and variance) and loss, which penalties and whether dropout."""
    flags = tuple(bool(strength) for strength in _strengths(cfg))
    opt = {k: v for k, v in OmegaConf.to_container(cfg.optimizer, resolve=True).items() if k != "lr"}
    model = repr(OmegaConf.to_container(cfg.model, resolve=True))
    return (model, repr(sorted(opt.items())), input_shape, output, cfg.task.get("loss"), flags)


def _template(cfg: DictConfig, input_shape: tuple[int, ...], output: Output):
    """The kept Keras model for this structure, built (with its optimizer) from ``cfg`` the first time.

    Built under fresh Keras name counters (``reset``), so its layers have a fresh build's names
    (``dense``, ``dense_1``) whatever was built in the process before.
    """
    from sweep.backend import reset

    key = _key(cfg, input_shape, output)
    if key not in _TEMPLATES:
        if len(_TEMPLATES) >= 8:
            _TEMPLATES.clear()
        reset(collect=False)
        model = build_model(cfg, input_shape, output)
        model.optimizer.build(model.trainable_variables)
        _TEMPLATES[key] = model
    return _TEMPLATES[key]
