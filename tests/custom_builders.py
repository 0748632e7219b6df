"""A user's own model builder, plugged in with ``model._target_=custom_builders.recorded_mlp``.

It builds the package's MLP and remembers every model it built and its initial
weights, so tests can see how many models a run created.
"""

from sweep.models import mlp

BUILT: list = []


def recorded_mlp(**kwargs):
    model = mlp(**kwargs)
    BUILT.append((model, [w.copy() for w in model.get_weights()]))
    return model
