"""The Keras model a graph-trained member saves: the model ``model.fit`` would have left, holding the member's weights and optimizer state."""

from __future__ import annotations

import copy
import io
import tempfile
import zipfile
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
    from sweep.models import _penalty

    l1, l2, dropout = _strengths(cfg)
    model = _template(cfg, tuple(input_shape), output)
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

    Keras saves the first member of each config (its structure and hyperparameters: the
    archive's ``config.json``); the config's other members (its folds) get a copy of that
    archive with their own arrays written where Keras put the first one's (:class:`Kept`;
    its ``metadata.json`` keeps the first one's save date): ~1 ms against ~35 ms for Keras'
    save, which walks the model and its optimizer each time.
    """
    from sweep.backend import save_model

    input_shape = tuple(input_shape)
    key = (_key(cfg, input_shape, output), cfg.optimizer.lr, *_strengths(cfg))
    kept = _ARCHIVES.get(key)
    if kept is not None:
        kept.write(state, path)
        return
    save_model(keras_model(cfg, input_shape, output, state), path)
    if key not in _ARCHIVES:
        if len(_ARCHIVES) >= 64:
            _ARCHIVES.clear()
        layout = _layout(cfg, input_shape, output)
        _ARCHIVES[key] = Kept.of(path, layout) if layout is not None else None


#: The weights file inside a ``.keras`` archive.
WEIGHTS = "model.weights.h5"


@dataclass(frozen=True)
class Layout:
    """Where a structure's ``model.keras`` holds a state's arrays: the weights file's dataset of each (weights, each slot's, steps)."""

    names: list[str]  # in the order of :meth:`arrays`
    n_weights: int

    @staticmethod
    def arrays(state: TrainedState) -> list[np.ndarray]:
        """``state``'s arrays in :attr:`names`' order."""
        return [*state.weights, *(array for slot in state.slots for array in slot), np.asarray(state.iterations, np.int64)]

    def state(self, arrays: list[np.ndarray]) -> TrainedState:
        """The inverse of :meth:`arrays`."""
        n = self.n_weights
        slots = [list(arrays[n * (j + 1) : n * (j + 2)]) for j in range((len(arrays) - 1) // n - 1)]
        return TrainedState(list(arrays[:n]), slots, int(arrays[-1]))


@dataclass(frozen=True)
class Kept:
    """A ``model.keras`` Keras wrote (its zip entries), and each array's bytes in its weights file (offset, dtype, shape)."""

    entries: list[tuple[zipfile.ZipInfo, bytes]]
    places: list[tuple[int, np.dtype, tuple[int, ...]]]

    @classmethod
    def of(cls, path: str, layout: Layout) -> Kept | None:
        """The archive at ``path``, or ``None`` if one of ``layout``'s arrays has no place of its own in the file (chunked, compressed, compact)."""
        import h5py

        with zipfile.ZipFile(path) as archive:
            entries = [(info, archive.read(info)) for info in archive.infolist()]
        weights = next(data for info, data in entries if info.filename == WEIGHTS)
        with h5py.File(io.BytesIO(weights), "r") as h5:
            places = [(h5[name].id.get_offset(), h5[name].dtype, h5[name].shape) for name in layout.names]
        return None if any(offset is None for offset, _, _ in places) else cls(entries, places)

    def write(self, state: TrainedState, path: str) -> None:
        """This archive with ``state``'s arrays in place of the ones Keras wrote."""
        with zipfile.ZipFile(path, "w") as archive:
            for info, data in self.entries:
                if info.filename == WEIGHTS:
                    data = bytearray(data)
                    for (offset, dtype, shape), array in zip(self.places, Layout.arrays(state), strict=True):
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


#: The first marker value: far from any learning rate, which Keras saves beside the marked arrays.
MARK = 4096


def _found_layout(cfg: DictConfig, input_shape: tuple[int, ...], output: Output) -> Layout | None:
    import h5py

    from sweep.backend import save_model

    shapes = [w.shape for w in _template(cfg, input_shape, output).get_weights()]
    n_slots, n = len(Rule.of(cfg).slots), len(shapes)
    marks = [np.full(shape, MARK + i + n * j, np.float32) for j in range(n_slots + 1) for i, shape in enumerate(shapes)]
    marked = Layout([], n).state([*marks, np.int64(MARK + n * (n_slots + 1))])
    names: dict[int, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        save_model(keras_model(cfg, input_shape, output, marked), str(Path(tmp) / "marked.keras"))
        with zipfile.ZipFile(Path(tmp) / "marked.keras") as archive, h5py.File(io.BytesIO(archive.read(WEIGHTS)), "r") as h5:

            def visit(name: str, item: Any) -> None:
                numeric = isinstance(item, h5py.Dataset) and item.size and item.dtype.kind in "fiu"
                values = item[()] if numeric else np.array([np.nan])
                index = float(values.flat[0]) - MARK
                if np.all(values == values.flat[0]) and index.is_integer() and 0 <= index < len(marks) + 1:
                    names[int(index)] = name if int(index) not in names else ""  # "": found twice

            h5.visititems(visit)
    if sorted(names) != list(range(len(marks) + 1)) or "" in names.values():
        return None
    return Layout([names[i] for i in range(len(marks) + 1)], n)


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
