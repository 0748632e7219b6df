"""``hydra/launcher=vectorized``: sweep jobs that differ only in vectorizable keys trained as one population.

See :mod:`hydra_plugins.sweep_vectorized.vectorized_launcher`.
"""
