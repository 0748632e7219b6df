"""Datasets as arrays, checked and scaled, with the held-out test split cut off first.

A loader is any function returning :class:`Arrays`, an ``(x, y)`` tuple or a pandas
DataFrame whose label column ``dataset.target`` names; ``dataset._target_`` names it and
every other key of the ``dataset`` node except ``name``, :data:`SPLIT_KEYS` and
:data:`TABLE_KEYS` is passed to it. Loaders that ship a test split of their own (the
Keras ``.npz`` files) keep it; the others get one cut by ``test_size``.

Nothing a sweep sees depends on the test rows: array inputs are scaled by the non-test
rows' min and max, a table's columns by a scikit-learn ``ColumnTransformer`` fitted on the
non-test rows (numeric columns onto [0, 1], categorical ones one-hot, missing values
imputed only when ``dataset.impute`` says so), and labels (any whole numbers or strings)
become class indices 0..K-1 in sorted order, the original labels kept on the :class:`Dataset`.
"""

from __future__ import annotations

import difflib
import gzip
import json
import logging
import math
import os
import sys
from dataclasses import dataclass, replace
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path

from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from sweep.config import SweepConfigError, build

if TYPE_CHECKING:
    import pandas as pd

SPLIT_KEYS = ("test_size", "stratify", "split_seed")
#: How a table becomes arrays: its label column, its feature columns (null: all others), how missing values are filled.
TABLE_KEYS = ("target", "features", "impute")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arrays:
    """What a loader returns: inputs, labels, an optional test split of its own, and where it came from."""

    x: np.ndarray | pd.DataFrame
    y: np.ndarray
    x_test: np.ndarray | pd.DataFrame | None = None
    y_test: np.ndarray | None = None
    source: str = ""


@dataclass(frozen=True)
class Dataset:
    """The rows a sweep may use (``x``, ``y``) and the test rows it never sees.

    ``y`` and ``y_test`` are class indices; ``classes[i]`` is the original label of class
    ``i`` (``None``: the labels were already 0..K-1). ``stratified`` says whether the test
    split was cut stratified on ``y`` (``None``: the loader shipped its own test split).
    ``preprocessor``: a table's fitted ``ColumnTransformer`` (``transform`` turns rows of the
    table into the model's inputs); ``None`` for arrays.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    stratified: bool | None = None
    classes: tuple[int | str, ...] | None = None
    preprocessor: Any = None

    def about(self) -> dict[str, Any]:
        """What a record says of the dataset: whether its test split was stratified, the labels behind class indices."""
        about: dict[str, Any] = {"test_split_stratified": self.stratified}
        if self.classes is not None:
            about["classes"] = list(self.classes)
        return about

    def artifacts(self) -> dict[str, Callable[[str], Any]]:
        """What a saved model needs beside it to be used on new rows: ``classes.json`` (the label of each class index)
        and, for a table, ``preprocessor.joblib`` (the fitted ``ColumnTransformer`` making its inputs)."""
        out: dict[str, Callable[[str], Any]] = {}
        if self.classes is not None:
            out["classes.json"] = partial(_write_json, list(self.classes))
        if self.preprocessor is not None:
            import joblib

            out["preprocessor.joblib"] = partial(joblib.dump, self.preprocessor)
        return out


def _write_json(value: Any, path: str) -> None:
    Path(path).write_text(json.dumps(value) + "\n")


# ------------------------------------------------------------------------- loaders


def digits() -> Arrays:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes); no download."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return Arrays(bunch.images.astype("float32"), bunch.target.astype("int64"), source="sklearn digits")


#: Where Keras' own loaders download their files from (keras/src/datasets/mnist.py, fashion_mnist.py).
KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
#: Keras-format ``.npz`` files Keras downloads itself: filename -> (its origin, the sha256 Keras checks it against).
KERAS_FILES = {"mnist.npz": (KERAS_ORIGIN + "mnist.npz", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1")}
#: Fashion-MNIST as Keras caches it (no hash checked): gzipped idx files, labels then images, training then test.
FASHION_MNIST_FILES = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")
FASHION_MNIST_DIR = os.path.join("datasets", "fashion-mnist")


def keras_home() -> Path:
    """Keras' own dir: ``$KERAS_HOME`` (default ``~/.keras``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser()


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded datasets: ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``)."""
    return keras_home() / "datasets"


def keras_npz(filename: str, path: str | None = None, origin: str | None = None, file_hash: str | None = None) -> Arrays:
    """A dataset in Keras' ``.npz`` format (``x_train``, ``y_train``, ``x_test``, ``y_test``), e.g. ``mnist.npz``.

    Read from ``path`` (never downloaded), else from Keras' cache dir, where ``keras.utils.get_file``
    downloads it from ``origin`` when missing (null: Keras' own URL and hash, for the files Keras ships).
    """
    what = f"{filename} (Keras format: x_train, y_train, x_test, y_test)"
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise SweepConfigError(f"dataset.path: no file at {file}; put {what} there or pass dataset.path=<file>")
    else:
        keras_origin, keras_hash = KERAS_FILES.get(filename, (None, None))
        file = _keras_file(filename, "datasets", origin or keras_origin, file_hash, None if origin else keras_hash, what)
    with _open_npz(file) as arrays:
        _require_keys(arrays, file, ("x_train", "y_train", "x_test", "y_test"))
        return Arrays(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], source=str(file))


def fashion_mnist(
    filename: str = "fashion_mnist.npz", path: str | None = None, origin: str | None = None, file_hash: str | None = None
) -> Arrays:
    """Fashion-MNIST as ``keras.datasets.fashion_mnist.load_data`` reads it: four gzipped idx files in Keras' cache
    dir (``datasets/fashion-mnist``), each downloaded from the URL folder ``origin`` (null: Keras') when missing.

    ``path`` (an ``.npz`` in Keras' MNIST format), or ``filename`` in Keras' cache dir if there, is read instead.
    ``file_hash``: the four files' hashes joined by ``:`` (no quoting on a command line), in :data:`FASHION_MNIST_FILES` order.
    """
    if path or (keras_cache_dir() / filename).is_file():
        return keras_npz(filename, path)
    hashes = [digest.strip() or None for digest in file_hash.split(":")] if file_hash else [None] * len(FASHION_MNIST_FILES)
    if len(hashes) != len(FASHION_MNIST_FILES):
        raise SweepConfigError(
            f"dataset.file_hash: {file_hash!r}: Fashion-MNIST is {len(FASHION_MNIST_FILES)} files; give their hashes "
            f"joined by ':', in the order {', '.join(FASHION_MNIST_FILES)}"
        )
    base = (origin or KERAS_ORIGIN).rstrip("/") + "/"
    files = [
        _keras_file(name, FASHION_MNIST_DIR, base + name, digest, None, f"{name} (one of Keras' Fashion-MNIST files)")
        for name, digest in zip(FASHION_MNIST_FILES, hashes)
    ]
    x, y = _idx(files[1], files[0])
    x_test, y_test = _idx(files[3], files[2])
    return Arrays(x, y, x_test, y_test, source=str(files[0].parent))


def _idx(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images and their labels from gzipped idx files, read as Keras' Fashion-MNIST loader reads them."""
    try:
        with gzip.open(labels, "rb") as file:
            y = np.frombuffer(file.read(), np.uint8, offset=8)
        with gzip.open(images, "rb") as file:
            x = np.frombuffer(file.read(), np.uint8, offset=16).reshape(len(y), 28, 28)
    except (OSError, EOFError, ValueError) as error:
        raise SweepConfigError(
            f"dataset.path: cannot read {images} and {labels} as idx files ({_first_line(error)}); delete them to download them again"
        ) from None
    return x, y


def _keras_file(fname: str, subdir: str, origin: str | None, file_hash: str | None, keras_hash: str | None, what: str) -> Path:
    """``fname`` in Keras' cache dir (``subdir`` of ``$KERAS_HOME``), downloaded by ``keras.utils.get_file`` from ``origin`` when missing.

    A cached file is read as it is unless ``file_hash`` is given: Keras then checks it and downloads a differing one
    again. A download must have ``file_hash``, else ``keras_hash`` (Keras' own, for its own origin; ``None``: no check);
    a download that has not is removed. ``what`` says what to put where when the file cannot be had.
    """
    home = keras_home()
    target = home / subdir / fname
    if target.is_file() and file_hash is None:
        return target
    if origin is None:
        raise SweepConfigError(f"dataset.path: no file at {target}; put {what} there or pass dataset.path=<file>")
    from filelock import FileLock
    from keras.utils import get_file

    expected = file_hash or keras_hash
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(home / ".sweep-download.lock"):  # jobs starting together download it once; the others find it cached
            return Path(get_file(fname, origin=origin, file_hash=expected, cache_dir=str(home), cache_subdir=subdir))
    except Exception as error:
        if target.is_file():  # downloaded, but not the file the hash names: Keras keeps it, sweep does not
            target.unlink()
            raise SweepConfigError(
                f"dataset.file_hash: {fname} downloaded from {origin} does not have hash {expected}; it was removed from {target.parent}"
            ) from None
        raise SweepConfigError(
            f"dataset.origin: cannot download {fname} ({_first_line(error)}); put {what} at {target}, "
            f"pass dataset.path=<file> or set dataset.origin=<url>"
        ) from None


def _first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def npz(path: str) -> Arrays:
    """A user's ``.npz`` file with arrays ``x`` (inputs, any shape after the row axis) and ``y`` (class labels)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise SweepConfigError(f"dataset.path: no file at {file}")
    with _open_npz(file) as arrays:
        _require_keys(arrays, file, ("x", "y"))
        return Arrays(arrays["x"], arrays["y"], source=str(file))


def csv(path: str, read_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """A CSV file read by ``pandas.read_csv`` (``read_options`` passed on); ``dataset.target`` names its label column."""
    import pandas as pd

    return _read_table(path, "CSV", lambda file: pd.read_csv(file, **(read_options or {})))


def parquet(path: str, read_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """A Parquet file read by ``pandas.read_parquet`` (pyarrow); ``dataset.target`` names its label column."""
    import pandas as pd

    return _read_table(path, "Parquet", lambda file: pd.read_parquet(file, **(read_options or {})))


def _read_table(path: str, kind: str, read: Callable[[Path], pd.DataFrame]) -> pd.DataFrame:
    file = Path(path).expanduser()
    if not file.is_file():
        raise SweepConfigError(f"dataset.path: no file at {file}")
    try:
        frame = read(file)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise SweepConfigError(f"dataset.path: cannot read {file} as {kind} ({type(error).__name__}: {first})") from None
    if frame.empty:
        raise SweepConfigError(f"dataset.path: {file} has no rows")
    return frame


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


def diabetes() -> Arrays:
    """scikit-learn's bundled diabetes regression data (442 patients, 10 features, disease progression); no download."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    return Arrays(bunch.data.astype("float32"), bunch.target.astype("float32"), source="sklearn diabetes")


def california_housing(download: bool = True) -> Arrays:
    """California housing (20,640 districts, 8 features, median house value in $100,000s), by scikit-learn's
    ``fetch_california_housing``: downloaded into scikit-learn's data home once, read from there after."""
    from sklearn.datasets import fetch_california_housing, get_data_home

    try:
        bunch = fetch_california_housing(download_if_missing=download)
    except OSError as error:
        raise SweepConfigError(
            f"dataset=california_housing: not in scikit-learn's data home ({get_data_home()}) and not downloaded "
            f"({type(error).__name__}: {error}); run once online, or set SCIKIT_LEARN_DATA to a dir holding it"
        ) from None
    return Arrays(bunch.data.astype("float32"), bunch.target.astype("float32"), source="sklearn california_housing")


def synthetic_regression(
    n_samples: int = 1000, n_features: int = 20, n_informative: int | None = None, noise: float = 10.0, seed: int = 0
) -> Arrays:
    """A regression problem from ``sklearn.datasets.make_regression``, sized by config (``n_informative``: half the features)."""
    from sklearn.datasets import make_regression

    x, y = make_regression(
        n_samples=n_samples, n_features=n_features, n_informative=n_informative or max(1, n_features // 2), noise=noise, random_state=seed
    )
    return Arrays(x.astype("float32"), y.astype("float32"), source="sklearn make_regression")


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


def _checked(x: Any, y: Any, source: str, part: str, impute: str | None, regression: bool) -> tuple[Any, np.ndarray]:
    """``x`` (an array, or a table checked column by column) and ``y`` as labels (``regression``: as numbers), refused in one line naming the source."""
    y = np.asarray(y).reshape(-1)
    x = x if _is_frame(x) else np.asarray(x)
    if len(x) != len(y):
        raise SweepConfigError(f"dataset: {source}: {part} x has {len(x)} rows but y has {len(y)}")
    if _is_frame(x):
        _check_table(x, source, part, impute)
    elif not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise SweepConfigError(f"dataset: {source}: {part} x contains NaN, inf or non-numbers")
    where = f"dataset: {source}: {part} y"
    return x, _targets(y, where) if regression else _labels(y, where)


def _targets(y: np.ndarray, where: str) -> np.ndarray:
    """``y`` as float64 regression targets; anything but finite numbers is refused."""
    if y.dtype.kind not in "iufb":
        raise SweepConfigError(f"{where} must hold numbers for task=regress (its first value: {y[:1].tolist()[0]!r})")
    y = y.astype("float64")
    if not np.isfinite(y).all():
        raise SweepConfigError(f"{where} has {int((~np.isfinite(y)).sum())} NaN or infinite target(s)")
    return y


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


def load_dataset(cfg: DictConfig, regression: bool = False) -> Dataset:
    """Load, check and scale the dataset named by ``cfg`` (the ``dataset`` node) and cut its test split.

    ``regression``: ``y`` holds numbers to predict (float32, as given), not class labels; the test
    split is then never stratified. Cached per process on the node's content, so the jobs of a
    sweep share one load.
    """
    return _load(json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True), regression)


@lru_cache(maxsize=4)
def _load(key: str, regression: bool) -> Dataset:
    cfg = OmegaConf.create(json.loads(key))
    arrays = _built(cfg)
    source, impute = arrays.source or cfg.get("path") or cfg.name, cfg.get("impute")
    x, y = _checked(arrays.x, arrays.y, source, "training", impute, regression)
    if len(np.unique(y)) < 2:
        raise SweepConfigError(f"dataset: {source}: y has a single {'value' if regression else 'class'}; at least two are needed")
    if arrays.x_test is not None and arrays.y_test is not None:
        x_test, y_test = _checked(arrays.x_test, arrays.y_test, source, "test", impute, regression)
        stratified = None
    else:
        from sklearn.model_selection import train_test_split

        stratified = bool(cfg.stratify) and not regression and _stratifiable(y, cfg.test_size, source)
        rows = np.arange(len(y))
        dev, test = train_test_split(rows, test_size=cfg.test_size, stratify=y if stratified else None, random_state=cfg.split_seed)
        x, y, x_test, y_test = _rows(x, dev), y[dev], _rows(x, test), y[test]
    classes = None
    if not regression:
        y, y_test, classes = _encoded(y, y_test, source)
    scaled, preprocessor = _scaler(x, impute)  # fitted on the sweep's rows alone: test rows move nothing the sweep sees
    kind = "float32" if regression else "int64"
    return Dataset(cfg.name, scaled(x), _frozen(y, kind), scaled(x_test), _frozen(y_test, kind), stratified, classes, preprocessor)


def _built(cfg: DictConfig) -> Arrays:
    """What ``cfg._target_`` returns as :class:`Arrays` (a DataFrame split by ``dataset.target``, a tuple as ``x, y``), features selected.

    Anything else is refused in one line naming the loader.
    """
    built = build(cfg, reserved=SPLIT_KEYS + TABLE_KEYS)
    loader = f"dataset._target_={cfg._target_}"
    if _is_frame(built):
        built = _split_target(built, cfg.get("target"), loader, str(cfg.get("path") or ""))
    elif isinstance(built, tuple) and len(built) == 2:
        built = Arrays(*built)
    if not isinstance(built, Arrays):
        raise SweepConfigError(
            f"{loader} returned {type(built).__name__}; expected sweep.data.Arrays(x, y), an (x, y) tuple "
            f"or a pandas DataFrame (with dataset.target naming its label column)"
        )
    features = cfg.get("features")
    if features is None:
        return built
    if not _is_frame(built.x):
        raise SweepConfigError(f"dataset.features: {loader} returned arrays, not a table with named columns")
    return replace(built, x=_columns(built.x, list(features), "dataset.features", built.source),
                   x_test=None if built.x_test is None else _columns(built.x_test, list(features), "dataset.features", built.source))  # fmt: skip


# --------------------------------------------------------------------------- tables


def _is_frame(obj: Any) -> bool:
    """Whether ``obj`` is a pandas DataFrame (pandas imported only by whoever made one)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(obj, pandas.DataFrame)


def _rows(x: Any, rows: np.ndarray) -> Any:
    return x.iloc[rows] if _is_frame(x) else x[rows]


def _columns(frame: pd.DataFrame, names: list[str], key: str, source: str) -> pd.DataFrame:
    """The columns ``names`` of ``frame``; a name it lacks is refused naming ``key``, the columns it has and the closest."""
    have = [str(column) for column in frame.columns]
    for name in names:
        if name not in have:
            close = difflib.get_close_matches(str(name), have, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            sep = next((sep for sep in ";\t|" if len(have) == 1 and sep in have[0]), None)
            hint = f"; one column: does the file separate them by {sep!r}? +dataset.read_options.sep={sep!r}" if sep else hint
            raise SweepConfigError(f"{key}: no column {name!r} in {source or 'the table'} (its columns: {', '.join(have[:20])}){hint}")
    return frame[names]


def _split_target(frame: pd.DataFrame, target: str | None, loader: str, source: str) -> Arrays:
    """A table as :class:`Arrays`: column ``target`` the labels (none missing), every other column a feature."""
    if target is None:
        raise SweepConfigError(f"{loader} returned a DataFrame; name its label column with dataset.target=<column> "
                               f"(its columns: {', '.join(map(str, frame.columns[:20]))})")  # fmt: skip
    labels = _columns(frame, [target], "dataset.target", source)[target]
    missing = int(labels.isna().sum())
    if missing:
        raise SweepConfigError(f"dataset.target: column {target!r} of {source or 'the table'} has {missing} missing label(s)")
    return Arrays(frame.drop(columns=[target]), labels.to_numpy(), source=source)


def _column_kind(column: pd.Series) -> str | None:
    """``"numeric"`` (numbers, booleans), ``"categorical"`` (strings, categories) or ``None`` (anything else: dates, objects)."""
    from pandas.api import types

    if types.is_bool_dtype(column.dtype) or types.is_numeric_dtype(column.dtype):
        return "numeric"
    if isinstance(column.dtype, types.CategoricalDtype) or types.is_string_dtype(column.dtype):
        return "categorical" if all(isinstance(value, str) for value in column.dropna()) else None
    return None


def _check_table(frame: pd.DataFrame, source: str, part: str, impute: str | None) -> None:
    """Refuse a column sweep cannot encode, a missing value unless ``impute`` fills it, and an infinite number; each naming the column."""
    if frame.shape[1] == 0:
        raise SweepConfigError(f"dataset: {source}: the table has no feature columns")
    for name in frame.columns:
        column = frame[name]
        kind = _column_kind(column)
        if kind is None:
            raise SweepConfigError(f"dataset: {source}: column {name!r} ({column.dtype}) is neither numbers nor strings; "
                                   f"convert it or leave it out with dataset.features")  # fmt: skip
        missing = int(column.isna().sum())
        if missing and impute is None:
            raise SweepConfigError(f"dataset: {source}: column {name!r} has {missing} missing value(s){' in its test rows' if part == 'test' else ''}; "
                                   f"fill them or set dataset.impute=mean|median (fitted on the non-test rows)")  # fmt: skip
        if kind == "numeric" and np.isinf(column.to_numpy("float64", na_value=np.nan)).any():
            raise SweepConfigError(f"dataset: {source}: column {name!r} has infinite values")


def _table_preprocessor(frame: pd.DataFrame, impute: str | None):
    """A ``ColumnTransformer``: numeric columns imputed (``impute``) and scaled onto [0, 1], categorical ones imputed
    (most frequent) and one-hot encoded (a category unseen when fitted encodes as all zeros)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

    kinds = {name: _column_kind(frame[name]) for name in frame.columns}
    numeric = make_pipeline(*([SimpleImputer(strategy=impute)] if impute else []), MinMaxScaler())
    categorical = make_pipeline(
        *([SimpleImputer(strategy="most_frequent")] if impute else []),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, [name for name, kind in kinds.items() if kind == "numeric"]),
            ("categorical", categorical, [name for name, kind in kinds.items() if kind == "categorical"]),
        ],
        sparse_threshold=0.0,
        verbose_feature_names_out=False,
    )


def _scaler(x: Any, impute: str | None) -> tuple[Callable[[Any], np.ndarray], Any]:
    """The scaling fitted on ``x`` (to apply to it and the test rows) and, for a table, the fitted preprocessor."""
    if _is_frame(x):
        preprocessor = _table_preprocessor(x, impute).fit(x)
        return (lambda rows: _frozen(preprocessor.transform(rows), "float32")), preprocessor
    offset, scale = _unit_scaler(x)
    return (lambda rows: _frozen((rows.astype("float64") - offset) / scale, "float32")), None
