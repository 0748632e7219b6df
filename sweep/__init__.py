"""sweep: config-driven hyperparameter sweeps with Hydra, Keras and scikit-learn, ending in pandas tables."""

from sweep.config import SweepConfigError, compose

__all__ = ["SweepConfigError", "compose", "__version__"]
__version__ = "0.1.0"
