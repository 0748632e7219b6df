"""A user's own model builders, plugged in with ``model._target_=custom_builders.<name>``.

``recorded_mlp`` builds the package's MLP and remembers every model it built and its
initial weights, so tests can see how many models a run created. The others break the
builder's contract (an uncompiled ``keras.Model`` ending in a softmax over ``n_classes``)
the way a user's code might, or keep it in a form the package's builders do not use.
"""

from sweep.backend import keras
from sweep.models import mlp

BUILT: list = []


def recorded_mlp(**kwargs):
    model = mlp(**kwargs)
    BUILT.append((model, [w.copy() for w in model.get_weights()]))
    return model


def returns_none(**kwargs):
    """Builds the model and forgets to return it."""
    mlp(**kwargs)


def three_classes(**kwargs):
    """Ignores ``n_classes``: a softmax over 3 classes whatever the data has."""
    return mlp(**{**kwargs, "n_classes": 3})


def logits(input_shape, n_classes, **_):
    """Ends in a linear layer (logits) instead of a softmax."""
    inputs = keras().Input(shape=tuple(input_shape))
    return keras().Model(inputs, keras().layers.Dense(n_classes)(keras().layers.Flatten()(inputs)))


def sequential(input_shape, n_classes, **_):
    """A valid model that is not built yet: a ``Sequential`` without an ``Input``, as Keras' guides write them."""
    layers = keras().layers
    return keras().Sequential([layers.Flatten(), layers.Dense(n_classes, activation="softmax")])
