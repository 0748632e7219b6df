"""Configs drawn from Hydra's sweep syntax (random search): ``interval``, ``tag(log, interval)``, ``choice``, lists and ``range``.

Random search (``hparams_search=random``) and halving's random candidates
(``hparams_search=halving hydra.sweeper.n_candidates=N``) draw their configs here. Folds are
never drawn: a config's score is its mean over every fold listed.
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)

#: The key that lists a config's folds: every drawn config gets each of them.
FOLD = "validation.fold"


def sample(overrides: list, n_candidates: int, seed: int) -> list[list[str]]:
    """``n_candidates`` configs drawn from Hydra sweep overrides (random search): each job's overrides, its folds' jobs together.

    ``interval(a, b)`` is drawn uniformly, ``tag(log, interval(a, b))`` log-uniformly, a list,
    ``choice(...)`` or ``range(...)`` uniformly among its values; plain overrides are kept.
    ``validation.fold`` is never drawn: every candidate gets every fold listed. A config
    drawn twice is one candidate. The same ``seed`` draws the same candidates.
    """
    import numpy as np
    from hydra.core.override_parser.types import IntervalSweep

    rng = np.random.default_rng(seed)
    fold = next((o for o in overrides if o.get_key_element() == FOLD and o.is_sweep_override()), None)
    folds = [f"{FOLD}={v}" for v in fold.sweep_string_iterator()] if fold is not None else [None]
    drawn = []
    for _ in range(n_candidates):
        config = []
        for o in (o for o in overrides if o is not fold):
            key, value = o.get_key_element(), o.value()
            if isinstance(value, IntervalSweep):
                low, high = (math.log(value.start), math.log(value.end)) if "log" in value.tags else (value.start, value.end)
                x = float(rng.uniform(low, high))
                config.append(f"{key}={math.exp(x) if 'log' in value.tags else x!r}")
            elif o.is_sweep_override():
                values = list(o.sweep_string_iterator())
                config.append(f"{key}={values[int(rng.integers(len(values)))]}")
            else:
                config.append(f"{key}={o.get_value_element_as_str()}")
        drawn.append(tuple(config))
    distinct = list(dict.fromkeys(drawn))
    if len(distinct) < n_candidates:
        log.info(f"{n_candidates} draws gave {len(distinct)} distinct configs: the space has few values")
    return [[*config, *([f] if f else [])] for config in distinct for f in folds]
