"""One composed job run as Hydra's own ``run_job`` runs it (``hydra/core/utils.py``, Hydra 1.3), without its copies.

Hydra's ``run_job`` deep-copies a job's ``hydra`` node four times (``HydraConfig.set_config``
twice, ``JobReturn.hydra_cfg``, and within the whole config for the task's) and dumps its three
``.hydra`` files through PyYAML's pure-Python emitter: tens of milliseconds a job, more than
sweep takes to record a member its launcher trained. Here every job's config is its own
object (each composed for it, nothing changes it once run), so:

- ``HydraConfig`` points at a view of the job's own ``hydra`` node (:func:`hydra_view`), as
  ``set_config`` does but without its copy; ``JobReturn.hydra_cfg`` is that view, so its node
  still has the job's config as parent (Hydra's copy has none: interpolations from ``hydra``
  into the task's keys resolve here, and a pickled ``JobReturn`` holds the task's config too).
- The task config is copied once, without the ``hydra`` node (:func:`task_config`).
- Each YAML file is ``OmegaConf.to_yaml``'s text, each value in it dumped only when it was not
  dumped before in its place (:class:`YamlTexts`): the jobs of a sweep share most of them.

Everything else (the output dir, the ``chdir`` rule, the job's logging, ``env_set``, the
callbacks, the ``JobReturn`` and the order of all of it) is Hydra's. It lives in ``sweep``, not
``hydra_plugins``, for the reason :mod:`sweep.compose_once` gives.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent
from typing import Any

import yaml
from hydra.core import utils as hydra_utils
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log, env_override
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, flag_override, open_dict, read_write
from omegaconf._utils import get_omega_conf_dumper  # the dumper OmegaConf.to_yaml uses

from sweep.config_copy import copied

#: Entries' texts a :class:`YamlTexts` keeps before it starts again (bounds its memory on long sweeps).
MAX_TEXTS = 4096


@dataclass(frozen=True)
class ComposedJob:
    """A job of a launch: its number, overrides, config (with its ``hydra`` node), task config (without) and output dir.

    ``output_dir`` is as the config names it (``hydra.runtime.output_dir`` is its absolute path).
    """

    idx: int
    overrides: Sequence[str]
    config: DictConfig
    task: DictConfig
    output_dir: str


def compose_job(idx: int, overrides: Sequence[str], config: DictConfig, job_dir_key: str, job_subdir_key: str | None) -> ComposedJob:
    """Job ``idx`` of ``config`` (just composed for it): ``hydra.runtime.output_dir`` set as ``run_job`` sets it, and its task config."""
    with open_dict(config):
        config.hydra.job.id = idx
        config.hydra.job.num = idx
    with pointing_at(config):
        output_dir = str(OmegaConf.select(config, job_dir_key))
        if job_subdir_key is not None:
            output_dir = os.path.join(output_dir, str(OmegaConf.select(config, job_subdir_key)))
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    return ComposedJob(idx, overrides, config, task_config(config), output_dir)


def hydra_view(config: DictConfig) -> DictConfig:
    """What ``HydraConfig.set_config(config)`` sets: ``{"hydra": config.hydra}``, read-only, its node's parent ``config`` (for
    interpolations into the task's keys), but the node itself rather than a copy."""
    OmegaConf.set_readonly(config.hydra, True)
    view = DictConfig({})
    with flag_override(view, "no_deepcopy_set_nodes", True):
        view["hydra"] = config.hydra
    config.hydra._set_parent(config)  # noqa: SLF001  as set_config does
    return view


@contextmanager
def pointing_at(config: DictConfig) -> Iterator[DictConfig]:
    """``HydraConfig`` set to ``config``'s view (for ``${hydra:...}``) meanwhile; yields the view."""
    saved = HydraConfig.instance().cfg
    view = HydraConfig.instance().cfg = hydra_view(config)  # type: ignore[assignment]
    try:
        yield view
    finally:
        HydraConfig.instance().cfg = saved  # type: ignore[assignment]


def task_config(config: DictConfig) -> DictConfig:
    """A copy of ``config`` without its ``hydra`` node, which is not copied at all (it is most of the config)."""
    return copied(config, leave_out="hydra")


class YamlTexts:
    """``OmegaConf.to_yaml`` of configs that share most of their values, each distinct value dumped once.

    A block mapping's YAML is its entries' texts one after the other, and an entry holding a
    mapping is its key's line and that mapping's entries, indented: so only the entries whose
    value is not a mapping are dumped, each once for its depth and contents (compared by
    ``repr``, which tells ``1`` from ``True`` and ``1.0``). A config holding other objects than
    YAML's (``allow_objects``) is dumped whole: their ``repr`` need not tell them apart, and
    YAML anchors shared ones across entries.
    """

    def __init__(self) -> None:
        self._texts: dict[tuple[int, str, str], str] = {}

    def __call__(self, cfg: Any) -> str:
        container = OmegaConf.to_container(cfg, enum_to_str=True)
        if not isinstance(container, dict) or not container or not _plain(container):
            return _dump(container)
        return "".join(self._entry((), key, value) for key, value in container.items())

    def _entry(self, path: tuple[Any, ...], key: Any, value: Any) -> str:
        """The text of ``key: value`` in the mapping at ``path``, its indentation included."""
        if isinstance(value, dict) and value:
            head = self._leaf(path, key, None)
            if head.endswith(": null\n") and not head.lstrip().startswith("?"):  # a simple key: ``key:``, then the entries
                inner = (*path, key)
                return head.removesuffix(" null\n") + "\n" + "".join(self._entry(inner, k, v) for k, v in value.items())
        return self._leaf(path, key, value)

    def _leaf(self, path: tuple[Any, ...], key: Any, value: Any) -> str:
        """The text of ``key: value`` at ``path``, dumped there (the indentation and line folding depend on its depth) the first time."""
        entry = (len(path), repr(key), repr(value))
        text = self._texts.get(entry)
        if text is None:
            nested = {key: value}
            for outer in reversed(path):
                nested = {outer: nested}
            text = _dump(nested).split("\n", len(path))[-1]
            if len(self._texts) >= MAX_TEXTS:
                self._texts.clear()
            self._texts[entry] = text
        return text


def _plain(value: Any) -> bool:
    """Whether ``value`` holds nothing but YAML's own types (mappings, lists and scalars)."""
    if isinstance(value, dict):
        return all(_plain(key) and _plain(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    return value is None or isinstance(value, (str, int, float, bool))


def _dump(container: Any) -> str:
    """``OmegaConf.to_yaml``'s dump of a plain container."""
    return yaml.dump(container, default_flow_style=False, allow_unicode=True, sort_keys=False, Dumper=get_omega_conf_dumper())


def run_composed(job: ComposedJob, task_function: TaskFunction, hydra_context: HydraContext, texts: YamlTexts) -> JobReturn:
    """Hydra's ``run_job(..., configure_logging=True)`` for ``job``, in its order, with its files, callbacks and ``JobReturn``."""
    hydra_utils._check_hydra_context(hydra_context)  # noqa: SLF001  Hydra's own check
    config, old_cwd = job.config, os.getcwd()
    with pointing_at(config) as view:
        overrides = OmegaConf.to_container(config.hydra.overrides.task)
        ret = JobReturn(cfg=job.task, hydra_cfg=view, overrides=overrides)  # type: ignore[arg-type]
        Path(job.output_dir).mkdir(parents=True, exist_ok=True)
        chdir = _chdir(config.hydra.job.chdir)
        try:
            if chdir:
                os.chdir(job.output_dir)
            ret.working_dir = job.output_dir if chdir else os.getcwd()
            configure_log(config.hydra.job_logging, config.hydra.verbose)
            if config.hydra.output_subdir is not None:
                hydra_output = Path(config.hydra.runtime.output_dir, str(config.hydra.output_subdir))
                _write_files(job, view, hydra_output, texts)
            with env_override(config.hydra.job.env_set):
                hydra_context.callbacks.on_job_start(config=config, task_function=task_function)
                try:
                    ret.return_value = task_function(job.task)
                    ret.status = JobStatus.COMPLETED
                except Exception as error:  # noqa: BLE001  Hydra records a failing task in its JobReturn
                    ret.return_value = error
                    ret.status = JobStatus.FAILED
            ret.task_name = JobRuntime.instance().get("name")
            hydra_utils._flush_loggers()  # noqa: SLF001  Hydra's own
            hydra_context.callbacks.on_job_end(config=config, job_return=ret)
            return ret
        finally:
            if chdir:
                os.chdir(old_cwd)


class FiledReturn(JobReturn):
    """A finished job's ``JobReturn`` holding no config: its ``cfg`` and ``hydra_cfg`` are read back from the job's ``.hydra``
    files (``config.yaml``, ``hydra.yaml``) each time they are asked for, so a launch of thousands of jobs keeps a few strings a
    job, not two configs. They hold what the job ran with, as Hydra wrote it (plain configs, without their schemas);
    ``output_dir`` is the job's dir, at no cost.
    """

    def __init__(self, ret: JobReturn, output_dir: str, hydra_output: Path) -> None:
        super().__init__(ret.overrides, None, None, ret.working_dir, ret.task_name, ret.status, ret._return_value)  # noqa: SLF001
        self.output_dir = output_dir
        self.hydra_output = hydra_output

    @property  # type: ignore[override]
    def cfg(self) -> Any:
        return self._read("_cfg", "config.yaml")

    @cfg.setter
    def cfg(self, value: Any) -> None:
        self.__dict__["_cfg"] = value

    @property  # type: ignore[override]
    def hydra_cfg(self) -> Any:
        return self._read("_hydra_cfg", "hydra.yaml")

    @hydra_cfg.setter
    def hydra_cfg(self, value: Any) -> None:
        self.__dict__["_hydra_cfg"] = value

    def _read(self, kept: str, name: str) -> Any:
        value = self.__dict__.get(kept)
        return value if value is not None else OmegaConf.load(self.hydra_output / name)


def filed(ret: JobReturn, job: ComposedJob) -> JobReturn:
    """``ret`` as a :class:`FiledReturn` once ``job`` has run, if its ``.hydra`` files were written (else ``ret`` itself)."""
    subdir = job.config.hydra.output_subdir
    if subdir is None:
        return ret
    output_dir = str(job.config.hydra.runtime.output_dir)
    return FiledReturn(ret, output_dir, Path(output_dir, str(subdir)))


def _chdir(chdir: bool | None) -> bool:
    """``hydra.job.chdir`` as ``run_job`` reads it: unset means no from version base 1.2 on, and yes, with a warning, before it."""
    if chdir is not None:
        return chdir
    if hydra_utils.version.base_at_least("1.2"):
        return False
    url = "https://hydra.cc/docs/1.2/upgrades/1.1_to_1.2/changes_to_job_working_dir/"
    message = f"""\
        Future Hydra versions will no longer change working directory at job runtime by default.
        See {url} for more information."""
    hydra_utils.deprecation_warning(message=dedent(message), stacklevel=2)
    return True


def _write_files(job: ComposedJob, view: DictConfig, hydra_output: Path, texts: YamlTexts) -> None:
    """``config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` in ``hydra_output``, as ``run_job`` writes them."""
    hydra_output.mkdir(parents=True, exist_ok=True)
    files = {"config.yaml": job.task, "hydra.yaml": view, "overrides.yaml": job.config.hydra.overrides.task}
    for name, cfg in files.items():
        (hydra_output / name).write_text(texts(cfg), encoding="utf-8")
