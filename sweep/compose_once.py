"""A Hydra config loader that composes each job of a sweep from a template instead of from scratch.

Hydra composes every job of a multirun from nothing: it walks the defaults tree, loads and
merges every YAML file and deep-copies as it goes, about 70 ms a job for sweep's configs,
and a basic sweep does it twice per job (once to validate the batch, once to launch it).
Yet the jobs of a grid differ only in their overrides' values, mostly plain values like
``optimizer.lr=0.01``, which Hydra applies to the composed config as the very last step.

:class:`ComposeOnce` wraps Hydra's own loader. Jobs whose overrides have the same
structure (the same keys, in the same order, of the same kind) and the same config-group
choices share one template, composed by Hydra for the first of them; every other job is a
copy of the template with its own values set by Hydra's own override code and its own
``hydra.overrides`` and ``hydra.job.override_dirname``: the config Hydra would have
composed, at about 6 ms. ``tests/test_compose_once.py`` checks that equality on whole
configs, ``hydra`` node included.

Only plain values are set this way: an override Hydra applies as a value and that changes a
key (``key=value``, no ``+``, ``++`` or ``~``, no ``@package``) to a scalar. A job with any
other value override (a dict or list value, an addition, a deletion) is composed by Hydra
in full. Config-group choices (``model=cnn``) are part of the template's identity.

It lives in ``sweep``, not ``hydra_plugins``: Hydra's plugin scan executes the modules
there a second time, and a class defined twice cannot be pickled to a launcher's workers.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.config_loader import ConfigLoader
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.plugins.config_source import ConfigSource
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf

from sweep.config_copy import copied

#: Templates kept per override structure (least recently used dropped first): bounds memory on sweeps over many group choices.
MAX_TEMPLATES = 32

#: Parsed override lines kept (all are dropped when more are seen): bounds memory on random searches of thousands of values.
MAX_LINES = 65536

_SCALARS = (str, int, float, bool, type(None))


@dataclass
class _Structure:
    """How the jobs whose overrides share one structure are composed."""

    settable: tuple[int, ...] | None  # positions of the overrides set on a template's copy; None: compose in full
    independent: bool = True  # no settable key is inside another: each value can be checked on its own
    templates: OrderedDict[tuple[str, ...], DictConfig] = field(default_factory=OrderedDict)
    checked: set[tuple[tuple[str, ...], str]] = field(default_factory=set)  # (group choices, override) known to apply


#: The structures (and templates) of each sweep composed in this process, by its loader's token.
#: A launcher such as joblib sends each job a fresh copy of the loader; the token finds what the
#: copies before it composed in the same worker. The last :data:`MAX_SWEEPS` sweeps are kept.
_SWEEPS: OrderedDict[str, dict[tuple[Any, ...], _Structure]] = OrderedDict()
MAX_SWEEPS = 4


def composing_once(context: HydraContext) -> HydraContext:
    """``context`` with its config loader wrapped in :class:`ComposeOnce` (a wrapped one is kept): what a sweeper's launcher gets."""
    if isinstance(context.config_loader, ComposeOnce):
        return context
    return HydraContext(config_loader=ComposeOnce(context.config_loader), callbacks=context.callbacks)


class ComposeOnce(ConfigLoader):
    """Hydra's config loader ``loader``, with :meth:`load_sweep_config` composing each template once.

    Everything else is ``loader``'s. One loader serves one sweep (``token`` names it). It
    pickles without its templates (launchers send the loader to their workers); a worker
    composes its own, once, and keeps them for the sweep's later jobs it runs.
    """

    def __init__(self, loader: ConfigLoader, token: str | None = None) -> None:
        self.loader = loader
        self.token = token or uuid.uuid4().hex
        self._parser = OverridesParser.create()
        self._lines: dict[str, Override] = {}  # each override line parsed once (Hydra's parser takes ~0.3 ms a line)

    def __getstate__(self) -> dict[str, Any]:
        return {"loader": self.loader, "token": self.token}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["loader"], state["token"])  # type: ignore[misc]

    @property
    def _structures(self) -> dict[tuple[Any, ...], _Structure]:
        """This sweep's structures in this process."""
        found = _SWEEPS.get(self.token)
        if found is None:
            found = _SWEEPS[self.token] = {}
            if len(_SWEEPS) > MAX_SWEEPS:
                _SWEEPS.popitem(last=False)
        _SWEEPS.move_to_end(self.token)
        return found

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        """The job config Hydra's loader would compose for ``sweep_overrides`` on ``master_config``."""
        parsed, structure = self._parse(master_config, sweep_overrides)
        if structure.settable is None:
            return self.loader.load_sweep_config(master_config, sweep_overrides)
        _, template, fresh = self._template(master_config, sweep_overrides, parsed, structure)
        if fresh:
            return copied(template)
        return self._from_template(master_config, template, parsed, structure.settable)

    def check(self, master_config: DictConfig, sweep_overrides: list[str]) -> None:
        """Raise what :meth:`load_sweep_config` would raise for ``sweep_overrides``, at less cost: a sweeper's batch validation.

        Each plain value is applied once per set of group choices, on a copy of their
        template, rather than once per job: whether ``optimizer.lr=x`` applies depends only
        on the node at ``optimizer.lr``, unless another settable key lies inside it (then
        every job is composed).
        """
        parsed, structure = self._parse(master_config, sweep_overrides)
        if structure.settable is None or not structure.independent:
            self.load_sweep_config(master_config, sweep_overrides)
            return
        choices, template, _ = self._template(master_config, sweep_overrides, parsed, structure)
        for i in structure.settable:
            seen = (choices, parsed[i].input_line or "")
            if seen not in structure.checked:
                ConfigLoaderImpl._apply_overrides_to_config([parsed[i]], copied(template))  # noqa: SLF001
                structure.checked.add(seen)

    def _parse(self, master_config: DictConfig, sweep_overrides: list[str]) -> tuple[list[Override], _Structure]:
        """The job's overrides as Hydra composes them (the master's ``hydra`` overrides first), and their structure."""
        hydra_overrides = OmegaConf.to_container(master_config.hydra.overrides.hydra)  # not resolved, as Hydra reads them
        assert isinstance(hydra_overrides, list)
        parsed = [self._parsed(line) for line in hydra_overrides + list(sweep_overrides)]
        # Hydra's composition reads the master for its config name and hydra overrides alone (the
        # latter are in ``parsed``): the shape holds the rest of what decides a template's use.
        shape = (master_config.hydra.job.config_name,) + tuple(
            (o.key_or_group, o.type, o.package, isinstance(o.value(), _SCALARS)) for o in parsed
        )
        structures = self._structures
        structure = structures.get(shape)
        if structure is None:
            structure = structures[shape] = self._structure(master_config, parsed)
        return parsed, structure

    def _parsed(self, line: str) -> Override:
        """``line`` as Hydra's parser reads it, parsed the first time it is seen (a sweep repeats each value's line)."""
        found = self._lines.get(line)
        if found is None:
            if len(self._lines) >= MAX_LINES:
                self._lines.clear()
            found = self._lines[line] = self._parser.parse_overrides([line])[0]
        return found

    def _template(
        self, master_config: DictConfig, sweep_overrides: list[str], parsed: list[Override], structure: _Structure
    ) -> tuple[tuple[str, ...], DictConfig, bool]:
        """The job's group choices, their template (composed by Hydra now if not kept) and whether it was just composed."""
        assert structure.settable is not None
        choices = tuple(o.input_line or "" for i, o in enumerate(parsed) if i not in structure.settable)
        template = structure.templates.get(choices)
        if template is not None:
            structure.templates.move_to_end(choices)
            return choices, template, False
        template = structure.templates[choices] = self.loader.load_sweep_config(master_config, sweep_overrides)
        if len(structure.templates) > MAX_TEMPLATES:
            structure.templates.popitem(last=False)
        return choices, template, True

    def _structure(self, master_config: DictConfig, parsed: list[Override]) -> _Structure:
        """Which of ``parsed`` Hydra applies as values, and whether all of those can be set on a copy."""
        lines = [o.input_line or "" for o in parsed]
        try:
            defaults = self.loader.compute_defaults_list(master_config.hydra.job.config_name, lines, RunMode.RUN)
        except Exception:  # noqa: BLE001  composing in full raises Hydra's own error for these overrides
            return _Structure(settable=None)
        values = {o.input_line for o in defaults.config_overrides}
        settable = tuple(i for i, o in enumerate(parsed) if o.input_line in values)
        plain = all(
            parsed[i].type == OverrideType.CHANGE and parsed[i].package is None and isinstance(parsed[i].value(), _SCALARS)
            for i in settable
        )
        keys = [parsed[i].key_or_group for i in settable]
        independent = not any(inner.startswith(outer + ".") for outer in keys for inner in keys)
        return _Structure(settable=settable if plain else None, independent=independent)

    @staticmethod
    def _from_template(
        master_config: DictConfig, template: DictConfig, parsed: list[Override], settable: tuple[int, ...]
    ) -> DictConfig:
        """``template`` with ``parsed``'s values set and its ``hydra.overrides`` and ``override_dirname`` made ``parsed``'s."""
        cfg = copied(template)
        ConfigLoaderImpl._apply_overrides_to_config([parsed[i] for i in settable], cfg)  # noqa: SLF001  Hydra's own
        app = [o for o in parsed if not o.is_hydra_override()]
        cfg.hydra.overrides.hydra = [o.input_line for o in parsed if o.is_hydra_override()]
        cfg.hydra.overrides.task = [o.input_line for o in app]
        dirname = cfg.hydra.job.config.override_dirname
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=app, kv_sep=dirname.kv_sep, item_sep=dirname.item_sep, exclude_keys=dirname.exclude_keys
        )
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        return cfg

    # ConfigLoader's other methods: the wrapped loader's.

    def load_configuration(
        self,
        config_name: str | None,
        overrides: list[str],
        run_mode: RunMode,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> DictConfig:
        return self.loader.load_configuration(config_name, overrides, run_mode, from_shell, validate_sweep_overrides)

    def get_search_path(self) -> ConfigSearchPath:
        return self.loader.get_search_path()

    def get_sources(self) -> list[ConfigSource]:
        return self.loader.get_sources()

    def list_groups(self, parent_name: str) -> list[str]:
        return self.loader.list_groups(parent_name)

    def get_group_options(
        self,
        group_name: str,
        results_filter: ObjectType | None = ObjectType.CONFIG,
        config_name: str | None = None,
        overrides: list[str] | None = None,
    ) -> list[str]:
        return self.loader.get_group_options(group_name, results_filter, config_name, overrides)

    def compute_defaults_list(self, config_name: str | None, overrides: list[str], run_mode: RunMode) -> Any:
        return self.loader.compute_defaults_list(config_name, overrides, run_mode)
