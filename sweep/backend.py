"""Keras on TensorFlow, imported once per process without TensorFlow's start-up chatter.

TensorFlow's C++ runtime writes to file descriptor 2 before its logging is set up, so
``TF_CPP_MIN_LOG_LEVEL`` alone does not silence it; the import and the first device
probe therefore run with descriptor 2 pointed at ``/dev/null``. Set
``SWEEP_TF_LOGS=1`` to see everything.

:func:`limit_tf_threads` caps TensorFlow's thread pools; it takes effect when TensorFlow
starts, so a job calls it before its first op (``sweep.scaling`` does, from the ``threads`` key).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
from functools import cache
from types import ModuleType

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

log = logging.getLogger(__name__)

#: Threads for TensorFlow's intra- and inter-op pools; None leaves TensorFlow's default (every core).
_tf_threads: int | None = None


@contextlib.contextmanager
def _quiet_stderr():
    if os.environ.get("SWEEP_TF_LOGS") == "1":
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@cache
def keras() -> ModuleType:
    """The ``keras`` module, TensorFlow backend, imported quietly.

    The garbage collector is paused during the import: TensorFlow and Keras create ~600k
    objects, and the collections they would trigger cost 0.7 s of the ~2.9 s import; one
    collection afterwards (:func:`_freeze_imports`) frees the same garbage.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        with _quiet_stderr():
            import tensorflow as tf

            tf.config.list_physical_devices()
            _apply_tf_threads()
            import keras as keras_module
    finally:
        if collecting:
            gc.enable()
    _freeze_imports()
    return keras_module


def _freeze_imports() -> None:
    """Move the ~400k objects TensorFlow and Keras leave at import into the GC's permanent generation.

    They live as long as the process anyway; frozen, the collector no longer walks them, so the
    full collection :func:`reset` runs between jobs costs milliseconds instead of 0.2-0.4 s.
    """
    gc.collect()
    gc.freeze()


def limit_tf_threads(threads: int | None) -> None:
    """Run TensorFlow's ops on at most ``threads`` threads (None: its default), from its start in this process.

    Once TensorFlow has run an op its pools are fixed: asking for another count then logs a
    warning and keeps the old one (a launcher's worker process keeps one count for a sweep).
    """
    global _tf_threads
    _tf_threads = threads
    if "tensorflow" in sys.modules:
        _apply_tf_threads()


def _apply_tf_threads() -> None:
    if _tf_threads is None:
        return
    import tensorflow as tf

    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(_tf_threads)
        threading.set_inter_op_parallelism_threads(_tf_threads)
    except RuntimeError:
        log.warning(
            "TensorFlow already runs with %s intra-op threads in this process; threads=%s applies to new processes",
            threading.get_intra_op_parallelism_threads() or "default",
            _tf_threads,
        )


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; turn TensorFlow's op determinism on (or, ``deterministic=False``, off).

    With it on, the same config and seed give the same numbers bit for bit on CPU.
    """
    keras().utils.set_random_seed(seed)  # first: keras() imports TensorFlow quietly
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()


#: ``tf.custom_gradient`` registrations that predate the first job (a user's own); never dropped.
_kept_gradients: frozenset[str] | None = None


def reset(collect: bool = True) -> None:
    """Drop the previous job's graphs and layers so memory stays flat across jobs in one process.

    ``clear_session`` is not enough: every trace of a ``tf.custom_gradient`` function (Keras
    uses one in its training step) registers a gradient under a fresh name in TensorFlow's
    global gradient registry, and that entry keeps the whole traced step alive, about 5 MB
    per job for the tutorial MLP. The entries registered since the first job belong to
    finished jobs' graphs and are dropped here. ``collect`` then frees the garbage in
    reference cycles at once (a full collection, ~8 ms a job) rather than whenever Python's
    collector gets to it: worth it after ``model.fit``'s layers and graphs (a peak ~50 MB
    lower), not before a fit of the reused graph, whose jobs leave next to none.
    """
    global _kept_gradients
    keras().backend.clear_session(free_memory=False)  # first: keras() imports TensorFlow quietly
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry  # noqa: SLF001  (no public way to unregister)
    if _kept_gradients is None:
        _kept_gradients = frozenset(registry)
    for name in [n for n in registry if n.startswith("CustomGradient-") and n not in _kept_gradients]:
        del registry[name]
    if collect:
        gc.collect()


#: Object kinds Keras' saving code looks up attribute skip-sets for (``keras.src.saving.saving_lib``).
_SAVING_KINDS = ("Operation", "Layer", "Functional", "Sequential", "Metric", "Optimizer", "Loss")


def save_model(model, path: str) -> None:  # noqa: ANN001  (a keras.Model; Keras is imported lazily)
    """``model.save(path)``, without Keras rebuilding reference objects on every save (:func:`_skipsets_kept`)."""
    _skipsets_kept()
    model.save(path)


def load_weights(model, path: str) -> None:  # noqa: ANN001  (a built keras.Model)
    """``model.load_weights(path)`` (a ``.keras`` archive: weights and optimizer variables), without Keras rebuilding reference objects (:func:`_skipsets_kept`)."""
    _skipsets_kept()
    model.load_weights(path)


def _skipsets_kept() -> None:
    """Put the attribute skip-sets Keras' saving code needs where it looks for them.

    Keras 3 stores the attribute skip-set it computes per object kind under the global key
    ``saving_attr_skipset_<kind>`` but looks it up under ``saving_attr_skiplist_<kind>``, so
    every save or load builds a reference Layer and Optimizer (variables included) to recompute
    them: about 5 of the 13 ms a tutorial MLP takes to save, 30 of the 55 ms to load its weights.
    The sets are put where the lookup finds them (again after every ``clear_session``, which
    drops Keras' global state); what is written or read is the same. Should Keras mend the key,
    this does nothing.
    """
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # another Keras layout: nothing to mend
        return
    for kind in _SAVING_KINDS:
        key = f"saving_attr_skiplist_{kind}"
        if global_state.get_global_attribute(key) is None:
            global_state.set_global_attribute(key, _skipset(kind))


@cache
def _skipset(kind: str) -> frozenset[str]:
    from keras.src.saving import saving_lib

    return frozenset(saving_lib.get_attr_skipset(kind))
