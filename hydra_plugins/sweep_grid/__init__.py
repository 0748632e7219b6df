"""``hydra/sweeper=grid`` (sweep's default): Hydra's basic grid sweeper composing each set of config-group choices once.

See :mod:`hydra_plugins.sweep_grid.grid_sweeper` and :mod:`sweep.compose_once`.
"""
