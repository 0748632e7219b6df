"""``hparams_search=random``: random search over Hydra's sweep syntax.

See :mod:`hydra_plugins.sweep_random.random_sweeper` and :mod:`sweep.search_space`.
"""
