"""sweep: config-driven hyperparameter sweeps with Hydra, Keras and scikit-learn, ending in pandas tables."""

from sweep.config import SweepConfigError

__all__ = ["SweepConfigError", "__version__"]
__version__ = "0.1.0"
