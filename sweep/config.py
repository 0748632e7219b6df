"""Config schemas, their registration with Hydra, and the checks no type can express.

Every YAML preset in ``conf/<group>/`` extends one of the dataclasses below (through
``defaults: [<name>_schema, _self_]``), so Hydra rejects unknown keys and wrong types
while composing. :func:`validate` then checks what Hydra lets through (keys added with
``+``), ``task.metric``, ranges and cross-key rules before any work is done, raising
:class:`SweepConfigError` with a message naming the key.

Groups whose nodes carry a ``_target_`` (``dataset``, ``model``, ``optimizer``) are
built with :func:`build`: every key except the bookkeeping ones is passed to the
target, so a user can point ``_target_`` at their own function.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import sys
import math
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable, Collection, NoReturn, Optional

from hydra.core.config_store import ConfigStore
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import MISSING, DictConfig, OmegaConf


class SweepConfigError(ValueError):
    """A config value, override or input file that cannot be used; the message names it."""


def refuse(message: str) -> NoReturn:
    """End the command with ``sweep: <message>`` on stderr and exit status 1, before Hydra can print a traceback."""
    print(f"sweep: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


# --------------------------------------------------------------------------- schemas


@dataclass
class TaskConfig:
    name: str = "classify"  # classify | regress | cluster: which task function runs
    metric: str = "val_accuracy"  # the value the entrypoint returns to Hydra sweepers
    loss: Optional[str] = None  # task=regress: mse | mae | huber (classify: sparse cross-entropy, always)


@dataclass
class DatasetConfig:
    _target_: str = MISSING  # a function returning sweep.data.Arrays
    name: str = MISSING
    test_size: float = 0.2  # fraction cut off first and never seen by the sweep
    stratify: bool = True
    split_seed: int = 0  # fixes the test split, whatever the training seed


@dataclass
class DigitsConfig(DatasetConfig):
    _target_: str = "sweep.data.digits"
    name: str = "digits"


@dataclass
class KerasNpzConfig(DatasetConfig):
    _target_: str = "sweep.data.keras_npz"
    filename: str = MISSING  # looked up in Keras' cache dir when path is null
    path: Optional[str] = None
    origin: Optional[str] = None  # where a file missing from Keras' cache is downloaded from (null: Keras' own URL)
    file_hash: Optional[str] = None  # the sha256 (or md5) a download must have (null: Keras' own, for its own URL)


@dataclass
class SyntheticConfig(DatasetConfig):
    _target_: str = "sweep.data.synthetic"
    name: str = "synthetic"
    n_samples: int = 1000
    n_features: int = 20
    n_informative: Optional[int] = None  # null: half the features
    n_classes: int = 3
    seed: int = 0


@dataclass
class DiabetesConfig(DatasetConfig):
    _target_: str = "sweep.data.diabetes"
    name: str = "diabetes"


@dataclass
class CaliforniaHousingConfig(DatasetConfig):
    _target_: str = "sweep.data.california_housing"
    name: str = "california_housing"
    download: bool = True  # fetch into scikit-learn's data home when missing


@dataclass
class SyntheticRegressionConfig(DatasetConfig):
    _target_: str = "sweep.data.synthetic_regression"
    name: str = "synthetic_regression"
    n_samples: int = 1000
    n_features: int = 20
    n_informative: Optional[int] = None  # null: half the features
    noise: float = 10.0  # the standard deviation of the noise added to the target
    seed: int = 0


@dataclass
class NpzConfig(DatasetConfig):
    _target_: str = "sweep.data.npz"
    name: str = "npz"
    path: str = MISSING


@dataclass
class TableConfig(DatasetConfig):
    _target_: str = "sweep.data.csv"  # or sweep.data.parquet, or a function returning a DataFrame
    name: str = "csv"
    path: str = MISSING
    target: str = MISSING  # the label column
    features: Optional[list[str]] = None  # null: every column but the target
    impute: Optional[str] = None  # null: a missing value is refused; mean | median (categorical: most frequent)
    read_options: dict[str, Any] = field(default_factory=dict)  # passed to pandas' reader: +dataset.read_options.sep=';'


@dataclass
class MLPConfig:
    _target_: str = "sweep.models.mlp"
    name: str = "mlp"
    hidden_units: list[int] = field(default_factory=lambda: [128])
    activation: str = "relu"


@dataclass
class CNNConfig:
    _target_: str = "sweep.models.cnn"
    name: str = "cnn"
    filters: list[int] = field(default_factory=lambda: [16, 32])
    kernel_size: int = 3
    hidden_units: list[int] = field(default_factory=lambda: [64])
    activation: str = "relu"


@dataclass
class KMeansConfig:
    _target_: str = "sklearn.cluster.KMeans"
    name: str = "kmeans"
    n_clusters: int = 10
    init: str = "k-means++"
    n_init: Any = "auto"
    max_iter: int = 300


@dataclass
class MiniBatchKMeansConfig(KMeansConfig):
    _target_: str = "sklearn.cluster.MiniBatchKMeans"
    name: str = "minibatch_kmeans"
    max_iter: int = 100
    batch_size: int = 1024


@dataclass
class GaussianMixtureConfig:
    _target_: str = "sklearn.mixture.GaussianMixture"
    name: str = "gaussian_mixture"
    n_components: int = 10
    covariance_type: str = "diag"  # full | tied | diag | spherical
    max_iter: int = 100
    n_init: int = 1
    init_params: str = "kmeans"


@dataclass
class AgglomerativeConfig:
    _target_: str = "sklearn.cluster.AgglomerativeClustering"
    name: str = "agglomerative"
    n_clusters: int = 10
    linkage: str = "ward"  # ward | complete | average | single
    metric: str = "euclidean"  # ward takes euclidean only


@dataclass
class RegularizerConfig:
    name: str = "none"
    l1: float = 0.0  # L1 penalty on every hidden kernel
    l2: float = 0.0  # L2 penalty on every hidden kernel
    dropout: float = 0.0  # dropout rate after every hidden layer


@dataclass
class OptimizerConfig:
    _target_: str = MISSING  # called with learning_rate=lr and the other keys
    name: str = MISSING
    lr: Any = 1e-3  # a rate > 0, or a schedule: a node with a keras.optimizers.schedules.* _target_


@dataclass
class AdamConfig(OptimizerConfig):
    _target_: str = "keras.optimizers.Adam"
    name: str = "adam"


@dataclass
class SGDConfig(OptimizerConfig):
    _target_: str = "keras.optimizers.SGD"
    name: str = "sgd"
    lr: Any = 0.01
    momentum: float = 0.9
    nesterov: bool = False


@dataclass
class RMSpropConfig(OptimizerConfig):
    _target_: str = "keras.optimizers.RMSprop"
    name: str = "rmsprop"
    rho: float = 0.9
    momentum: float = 0.0


@dataclass
class HoldoutConfig:
    name: str = "holdout"
    size: float = 0.2  # a fraction of the training rows, or a row count (>= 1)
    shuffle: bool = True  # false: the last rows are held out, as in the tutorial
    seed: int = 0


@dataclass
class KFoldConfig:
    name: str = "kfold"
    n_splits: int = 5
    shuffle: bool = True
    seed: int = 0
    fold: Optional[int] = None  # an index runs one fold (a sweep axis); null runs all


@dataclass
class StratifiedKFoldConfig(KFoldConfig):
    name: str = "stratified_kfold"


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 32
    early_stopping_patience: Optional[int] = None  # null: no early stopping
    early_stopping_monitor: str = "val_loss"
    save_model: bool = True
    verbose: int = 0
    deterministic: bool = True  # TensorFlow op determinism: same config + seed, same numbers bit for bit
    warm_start: Optional[str] = None  # a job dir of a shorter run of this config to go on from (sweep.warm_start)
    callbacks: Any = field(default_factory=dict)  # Keras callbacks by name: {name: {_target_: ..., its arguments}}
    class_weight: Any = None  # null, balanced, or {label: weight} (labels missing weigh 1)
    timeout_s: Optional[float] = None  # a job still training after this many seconds is stopped and recorded failed


@dataclass
class Config:
    task: Any = MISSING
    dataset: Any = MISSING
    model: Any = MISSING
    regularizer: Any = MISSING
    optimizer: Any = MISSING
    validation: Any = MISSING
    trainer: Any = MISSING
    seed: int = 0
    threads: Any = "auto"  # per job: auto (from the launcher: workers x threads <= cores), an int, or null (no limit)
    fail_on_error: bool = True  # a multirun exits non-zero when any run failed (diverged runs do not count)


_CLUSTER_SCORES = ("inertia", "ari", "nmi", "silhouette")
_FIT = ("best_epoch", "epochs_run", "restored_epoch", "fit_time_s")

#: The metrics each task reports (``sweep.engines.fitted.summarize``, ``sweep.engines.sklearn_fit``), by ``task.name``.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classify": (
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "best_val_accuracy",
        *_FIT,
    ),
    "regress": ("train_loss", "train_mae", "train_mse", "val_loss", "val_mae", "val_mse", "val_r2", "best_val_mse", *_FIT),
    "cluster": (*_CLUSTER_SCORES, *(f"train_{score}" for score in _CLUSTER_SCORES), "fit_time_s"),
}


SCHEMAS: dict[tuple[str | None, str], type] = {
    (None, "base_config"): Config,
    ("task", "task_schema"): TaskConfig,
    ("dataset", "digits_schema"): DigitsConfig,
    ("dataset", "keras_npz_schema"): KerasNpzConfig,
    ("dataset", "synthetic_schema"): SyntheticConfig,
    ("dataset", "npz_schema"): NpzConfig,
    ("dataset", "synthetic_regression_schema"): SyntheticRegressionConfig,
    ("dataset", "diabetes_schema"): DiabetesConfig,
    ("dataset", "california_housing_schema"): CaliforniaHousingConfig,
    ("dataset", "table_schema"): TableConfig,
    ("model", "mlp_schema"): MLPConfig,
    ("model", "cnn_schema"): CNNConfig,
    ("model", "kmeans_schema"): KMeansConfig,
    ("model", "minibatch_kmeans_schema"): MiniBatchKMeansConfig,
    ("model", "gaussian_mixture_schema"): GaussianMixtureConfig,
    ("model", "agglomerative_schema"): AgglomerativeConfig,
    ("regularizer", "regularizer_schema"): RegularizerConfig,
    ("optimizer", "adam_schema"): AdamConfig,
    ("optimizer", "sgd_schema"): SGDConfig,
    ("optimizer", "rmsprop_schema"): RMSpropConfig,
    ("validation", "holdout_schema"): HoldoutConfig,
    ("validation", "kfold_schema"): KFoldConfig,
    ("validation", "stratified_kfold_schema"): StratifiedKFoldConfig,
    ("trainer", "trainer_schema"): TrainerConfig,
}


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    for (group, name), node in SCHEMAS.items():
        store.store(group=group, name=name, node=node)


register_configs()


def config_dir() -> str:
    """The ``conf/`` folder: inside the package when installed from a wheel, else the repo's."""
    here = Path(__file__).resolve().parent
    packaged = here / "conf"
    return str(packaged if packaged.is_dir() else here.parent / "conf")


# ------------------------------------------------------------------------ validation

#: The groups of a run's config; a node a schema describes takes no key the schema lacks.
GROUPS = ("task", "dataset", "model", "regularizer", "optimizer", "validation", "trainer")
#: What Keras' EarlyStopping finds in the logs of a model compiled by :mod:`sweep.engines.keras_fit`, by ``task.name``.
MONITORS = {
    "classify": ("val_loss", "val_accuracy", "loss", "accuracy"),
    "regress": ("val_loss", "val_mae", "val_mse", "loss", "mae", "mse"),
}
#: ``task.loss`` of task=regress: Keras' names.
REGRESSION_LOSSES = ("mse", "mae", "huber")
#: NumPy's (and so scikit-learn's and Keras') largest seed.
SEED_MAX = 2**32 - 1
#: Keras' names for keys the schemas spell otherwise (sweep passes ``optimizer.lr`` as ``learning_rate``).
KERAS_SPELLINGS = {"learning_rate": "lr"}
_ABSENT = object()


def _refused(key: str, value: Any, allowed: str) -> SweepConfigError:
    return SweepConfigError(f"{key}={value!r}: {allowed}")


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise _refused(key, value, allowed)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    """Whether ``value`` is a finite real number (not a bool, a string or NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_node(value: Any) -> bool:
    """Whether ``value`` is a config node naming what to instantiate (a string ``_target_``)."""
    return isinstance(value, (dict, DictConfig)) and isinstance(value.get("_target_"), str)


def _seed(value: Any) -> bool:
    return _integer(value) and 0 <= value <= SEED_MAX


_SEEDS = f"must be in [0, {SEED_MAX}] (NumPy's seed range)"

#: The ranges that depend on one value only: (group, or None for the top level; key; test; what is allowed).
RANGES: tuple[tuple[str | None, str, Callable[[Any], bool], str], ...] = (
    (None, "seed", _seed, _SEEDS),
    ("validation", "seed", _seed, _SEEDS),
    ("dataset", "split_seed", _seed, _SEEDS),
    ("dataset", "impute", lambda v: v in (None, "mean", "median"), "must be null (missing values refused), mean or median"),
    ("dataset", "test_size", lambda v: _number(v) and 0 < v < 1, "must be a fraction in (0, 1)"),
    ("optimizer", "lr", lambda v: (_number(v) and v > 0) or _is_node(v), "must be a finite number > 0 or a schedule's _target_ node"),
    ("optimizer", "rho", lambda v: _number(v) and 0 <= v < 1, "must be in [0, 1)"),
    ("optimizer", "momentum", lambda v: _number(v) and 0 <= v <= 1, "must be in [0, 1]"),
    ("regularizer", "l1", lambda v: _number(v) and v >= 0, "must be a finite number >= 0"),
    ("regularizer", "l2", lambda v: _number(v) and v >= 0, "must be a finite number >= 0"),
    ("regularizer", "dropout", lambda v: _number(v) and 0 <= v < 1, "must be in [0, 1)"),
    ("trainer", "epochs", lambda v: _number(v) and v >= 1, "must be >= 1"),
    ("trainer", "batch_size", lambda v: _number(v) and v >= 1, "must be >= 1"),
    ("trainer", "timeout_s", lambda v: v is None or (_number(v) and v > 0), "must be null (no limit) or a number of seconds > 0"),
    ("trainer", "early_stopping_patience", lambda v: v is None or (_number(v) and v >= 0), "must be null (no early stopping) or >= 0"),
    ("model", "n_clusters", lambda v: _number(v) and v >= 2, "must be >= 2"),
    ("model", "n_components", lambda v: _number(v) and v >= 2, "must be >= 2"),
)


def _did_you_mean(word: str, choices: Collection[str], prefix: str = "") -> str:
    """``"; did you mean <prefix><closest>?"`` when one of ``choices`` is close to ``word``, else ``""``."""
    close = [KERAS_SPELLINGS[word]] if KERAS_SPELLINGS.get(word) in choices else difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {prefix}{close[0]}?" if close else ""


def check_threads(setting: Any) -> None:
    """Refuse a ``threads`` value other than ``auto``, ``null`` or a positive integer."""
    ok = setting is None or setting == "auto" or (_integer(setting) and setting >= 1)
    _check(ok, "threads", setting, "must be auto, null or a positive integer")


@cache
def _fields(schema: type) -> dict[str, Any]:
    """A schema dataclass's field names and defaults."""
    return {f.name: f.default for f in fields(schema)}


def _check_known_keys(node: DictConfig, group: str | None) -> None:
    """Refuse a key that ``node``'s schema has no field for (one added with ``+``); ``group`` None is the top level.

    Nodes without a schema, and nodes whose ``_target_`` is not the schema's (a user's own
    function, which receives every key), take any keys.
    """
    schema = OmegaConf.get_type(node)
    if schema is None or not is_dataclass(schema):
        return
    known = _fields(schema)
    if "_target_" in known and node.get("_target_") != known["_target_"]:
        return
    unknown = [key for key in node.keys() if key not in known]
    if unknown:
        key = str(unknown[0])
        prefix = f"{group}." if group else ""
        label = "the config" if not group else f"{group}={node.name}" if "name" in node else group
        keys = ", ".join(name for name in known if name not in ("_target_", "name"))
        hint = _did_you_mean(key, list(known), prefix)
        raise _refused(f"{prefix}{key}", node.get(key), f"not a key of {label} (its keys: {keys}){hint}")


def _check_task(task: Any) -> None:
    """``task.name`` is a task, ``task.metric`` one of the metrics it reports, ``task.loss`` one regressions take."""
    name = task.get("name")
    _check(name in TASK_METRICS, "task.name", name, f"must be {', '.join(TASK_METRICS)}")
    reported = TASK_METRICS[name]
    _check_choice(task, "metric", "task", reported, f"not a metric of task={name} (one of: {', '.join(reported)})")
    if name == "regress":
        _check_choice(task, "loss", "task", REGRESSION_LOSSES, f"must be one of {', '.join(REGRESSION_LOSSES)}")
    else:
        _check(task.get("loss") is None, "task.loss", task.get("loss"), f"task=regress's alone; task={name} has its own")


def _check_monitor(task: Any, trainer: Any) -> None:
    """``trainer.early_stopping_monitor`` is a value Keras logs for the task."""
    monitors = MONITORS.get(task.get("name"), MONITORS["classify"])
    _check_choice(trainer, "early_stopping_monitor", "trainer", monitors, f"must be one of {', '.join(monitors)}")


def _check_choice(node: Any, key: str, group: str, choices: Collection[str], allowed: str) -> None:
    """``node[key]``, when present, is one of ``choices``; refused with ``allowed`` and a "did you mean" otherwise."""
    value = node.get(key, _ABSENT)
    if value is not _ABSENT and value not in choices:
        raise _refused(f"{group}.{key}", value, f"{allowed}{_did_you_mean(str(value), choices)}")


def _check_hooks(task: Any, trainer: Any) -> None:
    """``trainer.callbacks`` holds named ``_target_`` nodes; ``trainer.class_weight`` is null, balanced or positive weights, for classifiers only."""
    for name, node in (trainer.get("callbacks") or {}).items():
        _check(_is_node(node), f"trainer.callbacks.{name}", node, "must be a node with a _target_ (e.g. keras.callbacks.CSVLogger)")
    weights = trainer.get("class_weight")
    if weights is None:
        return
    _check(task.get("name") == "classify", "trainer.class_weight", weights, f"weighs classes; task={task.get('name')} has none")
    ok = weights == "balanced" or (isinstance(weights, DictConfig) and all(_number(w) and w > 0 for w in weights.values()))
    _check(ok, "trainer.class_weight", weights, "must be null, balanced or {label: weight > 0}")


def _check_validation(val: Any) -> None:
    """A holdout size that is a fraction or a row count; a fold that the folds have."""
    if "size" in val:
        size = val.size
        _check(size > 0, "validation.size", size, "must be a fraction in (0, 1) or a row count >= 1")
        _check(size < 1 or float(size).is_integer(), "validation.size", size, "a row count must be a whole number")
    if "n_splits" in val:
        _check(val.n_splits >= 2, "validation.n_splits", val.n_splits, "must be >= 2")
        fold = val.get("fold")
        _check(
            fold is None or 0 <= fold < val.n_splits,
            "validation.fold",
            fold,
            f"must be null (all folds) or in [0, {val.n_splits})",
        )


#: The keys that count a clusterer's clusters: ``n_components`` is the mixtures' name for it.
CLUSTER_COUNTS = ("n_clusters", "n_components")
#: The clustering presets of ``conf/model/``.
CLUSTER_PRESETS = "kmeans, minibatch_kmeans, gaussian_mixture or agglomerative"


def _check_model(task: Any, model: Any) -> None:
    """Hidden layers with units, and a model that fits the task."""
    if "hidden_units" in model:
        units = list(model.hidden_units)
        _check(bool(units) and all(u > 0 for u in units), "model.hidden_units", units, "must be a non-empty list of positive ints")
    counted = any(key in model for key in CLUSTER_COUNTS)
    if task.get("name") == "cluster":
        _check(counted, "model", model.get("name"), f"task=cluster needs a clustering model (model={CLUSTER_PRESETS})")
        _check_clusterer_target(task, model.get("_target_"))
    elif task.get("name") in ("classify", "regress"):
        _check(not counted, "model", model.get("name"), f"task={task.name} needs a network (model=mlp or cnn)")


def _check_clusterer_target(task: Any, target: Any) -> None:
    """``model._target_`` imports and, when it is a class, is a clusterer that reports ``task.metric`` (inertia: k-means only).

    A function (a user's factory) is checked on what it returns, when the run builds it.
    """
    import pydoc

    try:
        found = pydoc.locate(str(target))
    except Exception as error:  # noqa: BLE001  the module raised while importing: one line naming the target
        raise _refused("model._target_", target, f"cannot be imported ({str(error).splitlines()[0]})") from None
    _check(found is not None, "model._target_", target, "cannot be imported (no such module or attribute)")
    if isinstance(found, type):
        check_clusterer(target, found)
        metric = str(task.get("metric", ""))
        ok = not metric.endswith("inertia") or reports_inertia(found)
        _check(ok, "task.metric", metric, f"model._target_={target} reports no inertia (the k-means family alone does); rank by ari, nmi or silhouette")


def check_clusterer(target: str, estimator: Any) -> None:
    """Refuse ``estimator`` (a class, or what ``model._target_=target`` built) unless it has a clusterer's ``fit`` and ``fit_predict``.

    Every scikit-learn clusterer has both (``ClusterMixin``, the mixtures); a regressor or a
    classifier has ``fit`` and ``predict`` but no ``fit_predict``, and needs labels to fit.
    """
    missing = [name for name in ("fit", "fit_predict") if not callable(getattr(estimator, name, None))]
    _check(not missing, "model._target_", target, f"not a clustering estimator (it has no {' or '.join(missing)}); e.g. sklearn.cluster.KMeans")


def reports_inertia(estimator: type) -> bool:
    """Whether ``estimator`` is of the k-means family, whose ``score`` is minus the inertia: the others report none."""
    from sklearn.cluster import BisectingKMeans, KMeans, MiniBatchKMeans

    return issubclass(estimator, (KMeans, MiniBatchKMeans, BisectingKMeans))


def validate(cfg: DictConfig) -> None:
    """Check what the schemas' types cannot express: keys added with ``+``, the metric, ranges, cross-key rules.

    Only keys present are checked, so user-supplied groups without them pass through.
    """
    nodes = {group: cfg.get(group) or {} for group in GROUPS}
    _check_task(nodes["task"])
    _check_known_keys(cfg, None)
    for group, node in nodes.items():
        if isinstance(node, DictConfig):
            _check_known_keys(node, group)
    check_threads(cfg.get("threads", "auto"))
    for group, key, ok, allowed in RANGES:
        value = (cfg if group is None else nodes[group]).get(key, _ABSENT)
        if value is not _ABSENT:
            _check(ok(value), f"{group}.{key}" if group else key, value, allowed)
    _check_monitor(nodes["task"], nodes["trainer"])
    _check_hooks(nodes["task"], nodes["trainer"])
    _check_validation(nodes["validation"])
    if nodes["task"].get("name") == "regress":
        name = nodes["validation"].get("name")
        _check(name != "stratified_kfold", "validation", name, "task=regress has no classes to stratify by; use validation=kfold")
    _check_model(nodes["task"], nodes["model"])


def compose(*overrides: str) -> DictConfig:
    """The config ``sweep <overrides>`` would run, composed and checked by :func:`validate`, without running it.

    Every problem raises :class:`SweepConfigError`, Hydra's own (unknown key or group, wrong
    type) included, with the message the command prints.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        cause = f"\n{error.__cause__}" if error.__cause__ is not None else ""
        raise SweepConfigError(f"{error}{cause}") from None
    validate(cfg)
    return cfg


# --------------------------------------------------------------------- small helpers


def build(node: DictConfig, reserved: Collection[str] = (), **injected: Any) -> Any:
    """Instantiate ``node._target_`` with the node's keys (minus ``name`` and ``reserved``) and ``injected``."""
    kwargs = OmegaConf.to_container(node, resolve=True)
    assert isinstance(kwargs, dict)
    for key in ("name", *reserved):
        kwargs.pop(key, None)
    try:
        return instantiate(kwargs, **injected, _convert_="all")
    except InstantiationException as error:
        if isinstance(error.__cause__, SweepConfigError):
            raise error.__cause__ from None
        raise


def flatten(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as ``{"optimizer.lr": 0.001, ...}``; lists stay lists."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            out[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def unflatten(record: dict[str, Any]) -> DictConfig:
    """The config a record (or :func:`flatten`'s output) holds: its dotted keys and the top-level keys of :class:`Config`.

    Raises :class:`SweepConfigError` when the record has a ``fingerprint`` that the rebuilt config does not match.
    """
    top = {f.name for f in fields(Config)} - set(GROUPS)
    flat = {key: value for key, value in record.items() if "." in key or key in top}
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *path, leaf = key.split(".")
        node = nested
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    cfg = OmegaConf.create(nested)
    if "fingerprint" in record and fingerprint(flatten(cfg)) != record["fingerprint"]:
        raise SweepConfigError(f"{record.get('output_dir', 'a record')}: its config cannot be rebuilt from its keys (the fingerprint differs)")
    return cfg


#: Keys that change neither the metrics nor the artifacts, left out of the fingerprint.
#: Keys that change how a run is done but not its numbers (a warm start gives the same bits).
UNFINGERPRINTED = frozenset({"trainer.verbose", "fail_on_error", "threads", "trainer.warm_start", "trainer.timeout_s"})


def fingerprint(flat: dict[str, Any]) -> str:
    """A short hash of the resolved config: equal configs, equal fingerprints."""
    kept = {k: v for k, v in flat.items() if k not in UNFINGERPRINTED}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]
