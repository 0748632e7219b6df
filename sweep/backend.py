"""Keras on TensorFlow, imported once per process without TensorFlow's start-up chatter.

TensorFlow's C++ runtime writes to file descriptor 2 before its logging is set up, so
``TF_CPP_MIN_LOG_LEVEL`` alone does not silence it; the import and the first device
probe therefore run with descriptor 2 pointed at ``/dev/null``. Set
``SWEEP_TF_LOGS=1`` to see everything.
"""

from __future__ import annotations

import contextlib
import os
from functools import cache
from types import ModuleType

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


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
    """The ``keras`` module, TensorFlow backend, imported quietly."""
    with _quiet_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()
        import keras as keras_module
    return keras_module


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's ops deterministic."""
    import tensorflow as tf

    keras().utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def reset() -> None:
    """Drop the previous job's graphs and layers so memory stays flat across jobs in one process."""
    keras().backend.clear_session(free_memory=True)
