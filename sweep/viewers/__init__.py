"""Views of a sweep's records in the tools practitioners already use, written as files (no server needed).

:mod:`sweep.viewers.tensorboard` writes TensorBoard's HParams dashboard;
:mod:`sweep.viewers.html` a self-contained HTML report; :mod:`sweep.viewers.optuna_journal` an Optuna study for optuna-dashboard.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def plain(value: Any) -> bool | int | float | str | None:
    """A table cell as a plain Python value the viewers' formats hold: ``None`` for missing, numbers and bools as themselves, tuples and others as text."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value if isinstance(value, str) else str(list(value) if isinstance(value, tuple) else value)
