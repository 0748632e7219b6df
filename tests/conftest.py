"""Shared helpers: compose configs as Hydra does, and run the installed ``sweep`` command as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.plugins import Plugins
from hydra.version import VersionBase
from omegaconf import DictConfig
from packaging.version import Version

from sweep.config import config_dir

SWEEP = str(Path(sys.executable).with_name("sweep"))

#: Overrides that keep a classify run to about a second on digits.
QUICK = ["trainer.epochs=2", "trainer.save_model=false"]
#: Overrides that send the tutorial MLP to the model.fit engine: an activation the batched graph does not have.
MODEL_FIT = ("model.activation=selu",)


def compose_config(*overrides: str) -> DictConfig:
    """The config ``sweep <overrides>`` would run, composed without running it."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def run_sweep(*args: str, cwd: Path, check: bool = True, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``sweep <args>`` in a subprocess in ``cwd``; outputs land under ``cwd/outputs``."""
    proc = subprocess.run(
        [SWEEP, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"sweep {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def records_under(root: Path) -> list[dict]:
    """Every ``result.json`` below ``root``, parsed, in job order."""
    paths = sorted(root.rglob("result.json"), key=lambda p: (len(p.parts), str(p)))
    return [json.loads(p.read_text()) for p in paths]


@pytest.fixture
def compose_cfg() -> Callable[..., DictConfig]:
    return compose_config


@pytest.fixture
def hydra_default_version_base():
    """Hydra's version base as its own plugin tests see it (unset: 1.1, jobs chdir); sweep's app and compose set 1.3 process-wide."""
    version = VersionBase.instance()
    saved = version.getbase()
    version.setbase(Version("1.1"))
    yield
    version.version_base = saved


@pytest.fixture(autouse=True, scope="session")
def hydra_plugins_scanned() -> None:
    """Hydra scans its plugins (registering their configs) before any test runs.

    Hydra's own suites restore Hydra's singletons after each of their tests: a first scan
    inside one of them would be undone, and later tests would miss the plugins' configs.
    """
    Plugins.instance()
