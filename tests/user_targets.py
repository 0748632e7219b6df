"""A user's own ``_target_`` functions that misbehave the way user code can: plugged in as ``model._target_=user_targets.<name>``."""

import sys


def calls_sys_exit(**kwargs):
    """Ends the process from inside a builder, as a script's ``main`` might."""
    sys.exit(3)


def raises_a_long_error(**kwargs):
    """Raises an error whose message runs over several lines, as TensorFlow's graph errors do."""
    raise RuntimeError("the first line\n\n  a second line\n  a third line")
