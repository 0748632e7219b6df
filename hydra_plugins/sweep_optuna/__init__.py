"""``hparams_search=optuna``: sweep's own Optuna sweeper, on Optuna's ask-and-tell API.

See :mod:`hydra_plugins.sweep_optuna.optuna_sweeper` and :mod:`sweep.search`. Optuna (the
``optuna`` extra) is imported only when a study starts, not at Hydra's plugin scan.
"""
