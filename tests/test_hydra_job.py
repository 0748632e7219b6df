"""sweep's launcher runs each job as Hydra's ``run_job`` does: the same files, byte for byte, the same ``JobReturn``, the same view of Hydra.

Every job of a small multirun (composed by Hydra's own loader, with values chosen to make a
YAML dumper work: unicode, strings that read back as other types, long lines, lists, nulls)
runs once through Hydra's ``run_job`` and once through :func:`sweep.hydra_job.run_composed`,
in the same job dir; everything either leaves behind or returns is compared.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import initialize_config_dir
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, run_job, setup_globals
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf

from sweep.config import config_dir
from sweep.hydra_job import FiledReturn, YamlTexts, compose_job, filed, run_composed
from sweep.progress import job_dir

#: Task values a YAML dumper must get right, and an interpolation into the job's hydra node.
ODD_VALUES = [
    "+note.unicode='déjà vu ✓'",
    "+note.bool_text='true'",
    "+note.float_text='1.0'",
    "+note.null_text='null'",
    "+note.long='" + " ".join(f"word{i}" for i in range(40)) + "'",
    "+note.empty=''",
    "+note.nothing=null",
    "+note.mixed=[1,'2',3.0,true,null]",
    "+note.where=${hydra:runtime.output_dir}",
]
#: Three jobs: the third repeats the first's values, so the YAML of every entry is reused once.
JOBS = [["optimizer.lr=1e-3", "regularizer.l2=0"], ["optimizer.lr=1e-2", "regularizer.l2=0"], ["optimizer.lr=1e-3", "regularizer.l2=0"]]


@pytest.fixture
def loader() -> Iterator[Any]:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        setup_globals()
        yield GlobalHydra.instance().config_loader()


def task(cfg: DictConfig) -> dict[str, Any]:
    """What a task function sees: its config resolved, Hydra's node, the working dir; it logs a line to the job's log."""
    logging.getLogger("task").info("running in %s", os.path.basename(os.getcwd()))
    hydra = HydraConfig.get()
    seen = {"cfg": OmegaConf.to_container(cfg, resolve=True), "cwd": os.getcwd()}
    return seen | {"num": hydra.job.num, "output_dir": hydra.runtime.output_dir, "overrides": list(hydra.overrides.task)}


def failing(cfg: DictConfig) -> None:
    raise ValueError(f"lr={cfg.optimizer.lr}")


def outcome(ret: JobReturn, job_dir: Path) -> dict[str, Any]:
    """Everything a job returned and left in ``job_dir`` (the log without its timestamps); the dir is then removed."""
    files = {path.name: path.read_bytes() for path in sorted((job_dir / ".hydra").iterdir())}
    log = re.sub(r"^\[[^]]*\]", "", (job_dir / "app.log").read_text(), flags=re.M)
    shutil.rmtree(job_dir)
    value = ret.return_value if ret.status.name == "COMPLETED" else repr(ret._return_value)  # noqa: SLF001
    returned = {
        "cfg": OmegaConf.to_yaml(ret.cfg),
        "hydra_cfg": OmegaConf.to_yaml(ret.hydra_cfg),
        "overrides": ret.overrides,
        "working_dir": ret.working_dir,
        "task_name": ret.task_name,
        "status": ret.status,
        "value": value,
    }
    return {"files": files, "log": log, "returned": returned}


@pytest.mark.parametrize("chdir", ["false", "true"])
@pytest.mark.parametrize("task_function", [task, failing])
def test_every_job_leaves_and_returns_what_hydras_run_job_does(
    loader: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chdir: str, task_function: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    hydra_overrides = ["hydra.sweep.dir=multirun", f"hydra.job.chdir={chdir}"]  # relative, as users write it
    master = loader.load_configuration("config", hydra_overrides, RunMode.MULTIRUN)
    context = HydraContext(config_loader=loader, callbacks=Callbacks())
    texts, before = YamlTexts(), HydraConfig.instance().cfg
    for num, overrides in enumerate(JOBS):
        config = loader.load_sweep_config(master, [*overrides, *ODD_VALUES])
        config.hydra.job.id = config.hydra.job.num = num
        hydras = run_job(task_function, config, "hydra.sweep.dir", "hydra.sweep.subdir", context)
        expected = outcome(hydras, tmp_path / "multirun" / str(num))

        job = compose_job(num, overrides, loader.load_sweep_config(master, [*overrides, *ODD_VALUES]), "hydra.sweep.dir", "hydra.sweep.subdir")
        ret = run_composed(job, task_function, context, texts)
        _assert_filed_as(filed(ret, job), ret)
        assert outcome(ret, tmp_path / "multirun" / str(num)) == expected
        assert HydraConfig.instance().cfg is before


def _assert_filed_as(kept: JobReturn, ret: JobReturn) -> None:
    """``kept`` holds no config, and returns ``ret``'s: its configs read back from the job's files, the rest as they were."""
    assert isinstance(kept, FiledReturn) and not any(isinstance(value, DictConfig) for value in vars(kept).values())
    assert (kept.overrides, kept.working_dir, kept.task_name, kept.status) == (ret.overrides, ret.working_dir, ret.task_name, ret.status)
    assert kept._return_value is ret._return_value  # noqa: SLF001
    assert OmegaConf.to_yaml(kept.cfg) == OmegaConf.to_yaml(ret.cfg) and OmegaConf.to_yaml(kept.hydra_cfg) == OmegaConf.to_yaml(ret.hydra_cfg)
    assert job_dir(kept) == job_dir(ret) == str(ret.hydra_cfg.hydra.runtime.output_dir)


def test_yaml_texts_tell_values_that_compare_equal_apart() -> None:
    texts = YamlTexts()
    for value in (1, True, 1.0, "1", [1], None, {}, {"d": 1}, {"d": True}, "a line\nand another " + "word " * 30):
        cfg = OmegaConf.create({"a": {"b": value, "c": "same"}, "e": [{"f": value}]})
        assert texts(cfg) == OmegaConf.to_yaml(cfg)
    assert texts(OmegaConf.create({})) == OmegaConf.to_yaml(OmegaConf.create({}))
    assert texts(OmegaConf.create(["x", 2])) == OmegaConf.to_yaml(OmegaConf.create(["x", 2]))
    for size in (1, 2):  # objects (allow_objects) whose repr does not tell them apart: dumped whole
        cfg = OmegaConf.create({"a": {"b": Opaque(size)}}, flags={"allow_objects": True})
        assert texts(cfg) == OmegaConf.to_yaml(cfg)


class Opaque:
    """A user's object in a config: the same repr whatever it holds."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __repr__(self) -> str:
        return "Opaque()"
