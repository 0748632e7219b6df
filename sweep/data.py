"""Datasets as arrays, checked and scaled, with the held-out test split cut off first.

A loader is any function returning :class:`Arrays`; ``dataset._target_`` names it and
every other key of the ``dataset`` node except ``name``, ``test_size``, ``stratify``
and ``split_seed`` is passed to it. Loaders that ship a test split of their own
(the Keras ``.npz`` files) keep it; the others get one cut by ``test_size``.

Nothing a sweep sees depends on the test rows: the inputs are scaled by the non-test
rows alone, and labels (any whole numbers or strings) become class indices 0..K-1 in
sorted order, the original labels kept on the :class:`Dataset`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from sweep.config import SweepConfigError, build

SPLIT_KEYS = ("test_size", "stratify", "split_seed")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arrays:
    """What a loader returns: inputs, labels, an optional test split of its own, and where it came from."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    source: str = ""


@dataclass(frozen=True)
class Dataset:
    """The rows a sweep may use (``x``, ``y``) and the test rows it never sees.

    ``y`` and ``y_test`` are class indices; ``classes[i]`` is the original label of class
    ``i`` (``None``: the labels were already 0..K-1). ``stratified`` says whether the test
    split was cut stratified on ``y`` (``None``: the loader shipped its own test split).
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    stratified: bool | None = None
    classes: tuple[int | str, ...] | None = None


# ------------------------------------------------------------------------- loaders


def digits() -> Arrays:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes); no download."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return Arrays(bunch.images.astype("float32"), bunch.target.astype("int64"), source="sklearn digits")


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded datasets: ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "datasets"


def keras_npz(filename: str, path: str | None = None) -> Arrays:
    """A dataset in Keras' ``.npz`` format (``x_train``, ``y_train``, ``x_test``, ``y_test``), e.g. ``mnist.npz``.

    Nothing is downloaded: the file is read from ``path`` or from Keras' cache dir.
    """
    file = Path(path).expanduser() if path else keras_cache_dir() / filename
    if not file.is_file():
        raise SweepConfigError(
            f"dataset.path: no file at {file}; put {filename} (Keras format: x_train, y_train, x_test, y_test) "
            f"there or pass dataset.path=<file>"
        )
    with _open_npz(file) as arrays:
        _require_keys(arrays, file, ("x_train", "y_train", "x_test", "y_test"))
        return Arrays(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], source=str(file))


def npz(path: str) -> Arrays:
    """A user's ``.npz`` file with arrays ``x`` (inputs, any shape after the row axis) and ``y`` (class labels)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise SweepConfigError(f"dataset.path: no file at {file}")
    with _open_npz(file) as arrays:
        _require_keys(arrays, file, ("x", "y"))
        return Arrays(arrays["x"], arrays["y"], source=str(file))


def synthetic(
    n_samples: int = 1000, n_features: int = 20, n_informative: int | None = None, n_classes: int = 3, seed: int = 0
) -> Arrays:
    """A classification problem from ``sklearn.datasets.make_classification``, sized by config.

    ``n_informative`` defaults to half the features; the others are noise.
    """
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=n_informative or max(2, n_features // 2),
        n_redundant=0,
        n_classes=n_classes,
        random_state=seed,
    )
    return Arrays(x.astype("float32"), y.astype("int64"), source="sklearn make_classification")


def _open_npz(file: Path):
    if file.suffix != ".npz":
        raise SweepConfigError(f"dataset.path: {file} is not an .npz file")
    try:
        return np.load(file, allow_pickle=False)
    except Exception as error:
        raise SweepConfigError(f"dataset.path: cannot read {file} as .npz ({error})") from None


def _require_keys(arrays, file: Path, keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in arrays.files]
    if missing:
        raise SweepConfigError(f"dataset.path: {file} lacks array(s) {', '.join(missing)} (has {', '.join(arrays.files)})")


# ---------------------------------------------------------------- checks, scaling


def _checked(x: np.ndarray, y: np.ndarray, source: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y).reshape(-1)
    if len(x) != len(y):
        raise SweepConfigError(f"dataset: {source}: {part} x has {len(x)} rows but y has {len(y)}")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise SweepConfigError(f"dataset: {source}: {part} x contains NaN, inf or non-numbers")
    return x, _labels(y, f"dataset: {source}: {part} y")


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    """``y`` as int64 (whole numbers) or str labels; NaN, fractions and other objects are refused."""
    if y.dtype.kind in "US" or (y.dtype == object and all(isinstance(label, str) for label in y)):
        return y.astype(str)
    if y.dtype.kind in "iub":
        return y.astype("int64")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise SweepConfigError(f"{where} has NaN labels")
    if y.dtype.kind != "f" or not np.isfinite(y).all() or (y != np.round(y)).any():
        raise SweepConfigError(f"{where} must hold class labels: whole numbers or strings")
    return y.astype("int64")


def _encoded(y: np.ndarray, y_test: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """``y`` and ``y_test`` as class indices, one mapping for both (sorted labels), and the labels (``None`` if 0..K-1).

    A test label absent from ``y`` would be a class no model trains on, so it is refused.
    """
    if y.dtype.kind != y_test.dtype.kind:
        kinds = {"i": "numbers", "U": "strings"}
        raise SweepConfigError(
            f"dataset: {source}: training labels are {kinds[y.dtype.kind]} but test labels {kinds[y_test.dtype.kind]}"
        )
    unseen = np.setdiff1d(y_test, y)
    if len(unseen):
        raise SweepConfigError(
            f"dataset: {source}: test label(s) {', '.join(map(str, unseen[:10]))} not among the training labels; "
            f"a model cannot learn them"
        )
    labels, codes = np.unique(np.concatenate([y, y_test]), return_inverse=True)
    already = labels.dtype.kind == "i" and np.array_equal(labels, np.arange(len(labels)))
    classes = None if already else tuple(label.item() for label in labels)
    return codes[: len(y)], codes[len(y) :], classes


def _stratifiable(y: np.ndarray, test_size: float, source: str) -> bool:
    """Whether a test split of ``test_size`` can hold every label present in ``y`` in proportion; if not, a warning says why."""
    labels, counts = np.unique(y, return_counts=True)
    if (counts < 2).any():
        single = ", ".join(map(str, labels[counts < 2][:10]))
        log.warning("dataset %s: class(es) %s have a single row; the test split is not stratified", source, single)
        return False
    n_test = math.ceil(test_size * len(y))  # as train_test_split counts
    if min(n_test, len(y) - n_test) < len(labels):
        log.warning(
            "dataset %s: %d classes do not fit in %d test and %d other rows; the test split is not stratified",
            source, len(labels), n_test, len(y) - n_test,
        )  # fmt: skip
        return False
    return True


def _unit_scaler(x: np.ndarray) -> tuple[float, float]:
    """Offset and range mapping ``x`` onto [0, 1]: images of bytes by 255, anything else by its min and max."""
    if x.dtype == np.uint8:
        return 0.0, 255.0
    low, high = float(x.min()), float(x.max())
    return low, (high - low) or 1.0


def _frozen(a: np.ndarray, dtype: str) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=dtype)
    a.setflags(write=False)
    return a


# -------------------------------------------------------------------------- loading


def load_dataset(cfg: DictConfig) -> Dataset:
    """Load, check and scale the dataset named by ``cfg`` (the ``dataset`` node) and cut its test split.

    Cached per process on the node's content, so the jobs of a sweep share one load.
    """
    return _load(json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True))


@lru_cache(maxsize=4)
def _load(key: str) -> Dataset:
    cfg = OmegaConf.create(json.loads(key))
    arrays = _built(cfg)
    source = arrays.source or cfg.name
    x, y = _checked(arrays.x, arrays.y, source, "training")
    if len(np.unique(y)) < 2:
        raise SweepConfigError(f"dataset: {source}: y has a single class; at least two are needed")
    if arrays.x_test is not None and arrays.y_test is not None:
        x_test, y_test = _checked(arrays.x_test, arrays.y_test, source, "test")
        stratified = None
    else:
        from sklearn.model_selection import train_test_split

        stratified = bool(cfg.stratify) and _stratifiable(y, cfg.test_size, source)
        rows = np.arange(len(y))
        dev, test = train_test_split(rows, test_size=cfg.test_size, stratify=y if stratified else None, random_state=cfg.split_seed)
        x, y, x_test, y_test = x[dev], y[dev], x[test], y[test]
    y, y_test, classes = _encoded(y, y_test, source)
    offset, scale = _unit_scaler(x)  # the sweep's rows alone: test rows move nothing the sweep sees

    def unit(a: np.ndarray) -> np.ndarray:
        return _frozen((a.astype("float64") - offset) / scale, "float32")

    y, y_test = _frozen(y, "int64"), _frozen(y_test, "int64")
    return Dataset(cfg.name, unit(x), y, unit(x_test), y_test, stratified=stratified, classes=classes)


def _built(cfg: DictConfig) -> Arrays:
    """What ``cfg._target_`` returns, refused in one line naming the loader unless it is :class:`Arrays`."""
    arrays = build(cfg, reserved=SPLIT_KEYS)
    if not isinstance(arrays, Arrays):
        raise SweepConfigError(
            f"dataset._target_={cfg._target_} returned {type(arrays).__name__}; expected sweep.data.Arrays(x, y)"
        )
    return arrays
