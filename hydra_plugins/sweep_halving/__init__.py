"""``hparams_search=halving``: successive halving over epochs, each rung decided on fold means.

See :mod:`hydra_plugins.sweep_halving.halving_sweeper` and :mod:`sweep.halving`.
"""
