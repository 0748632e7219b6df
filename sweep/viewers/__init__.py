"""Views of a sweep's records in the tools practitioners already use, written as files (no server needed).

:mod:`sweep.viewers.tensorboard` writes TensorBoard's HParams dashboard;
:mod:`sweep.viewers.html` a self-contained HTML report; :mod:`sweep.viewers.optuna_journal` an Optuna study for optuna-dashboard.
"""
