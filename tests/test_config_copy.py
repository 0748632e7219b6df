"""sweep.config_copy: a job's config copied as OmegaConf's deepcopy copies it, node for node, without its cost."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Union

import pytest
from conftest import config_dir
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from sweep.config_copy import copied


def _assert_same_nodes(ours: Any, theirs: Any, parents: tuple[Any, Any], path: str = "") -> None:
    """The same class and state at every node, the parents each copy's own (the top's kept), the containers new."""
    assert type(ours) is type(theirs), path
    mine, other = ours.__dict__, theirs.__dict__
    assert mine.keys() == other.keys(), path
    assert mine["_parent"] is parents[0] and other["_parent"] is parents[1], path
    assert mine["_metadata"] is not other["_metadata"] and mine["_metadata"].__dict__ == other["_metadata"].__dict__, path
    assert mine["_metadata"].flags is not other["_metadata"].flags, path
    for key in mine.keys() - {"_parent", "_metadata", "_content"}:
        assert mine[key] == other[key], (path, key)
    content, theirs_content = mine.get("_content"), other.get("_content")
    if isinstance(content, dict):
        assert content is not theirs_content and list(content) == list(theirs_content), path
        for key in content:
            _assert_same_nodes(content[key], theirs_content[key], (ours, theirs), f"{path}.{key}")
    elif isinstance(content, list):
        assert content is not theirs_content and len(content) == len(theirs_content), path
        for i, (a, b) in enumerate(zip(content, theirs_content)):
            _assert_same_nodes(a, b, (ours, theirs), f"{path}[{i}]")
    else:
        assert content == theirs_content, path


def _job_config(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


class Color(Enum):
    RED = 1
    BLUE = 2


@dataclass
class Schema:
    units: list[int] = field(default_factory=lambda: [128])
    rate: float = 0.5
    name: str = "${other}"
    color: Color = Color.RED
    missing: int = "???"  # type: ignore[assignment]
    maybe: Any = None
    sub: dict[str, float] = field(default_factory=lambda: {"a": 1.0})


def test_a_job_config_is_copied_node_for_node_as_deepcopy_copies_it() -> None:
    """Hydra's job config (its hydra node holds an enum), copied twice: each copy's nodes equal deepcopy's, and own."""
    cfg = _job_config("optimizer.lr=0.01", "regularizer.dropout=0.5")
    OmegaConf.resolve(cfg.hydra.job)  # a resolver cache, flag caches: what a config carries after use
    _ = cfg.hydra.run.dir, cfg.optimizer.lr
    assert OmegaConf.get_cache(cfg)  # ${now:...} is cached
    ours, theirs = copied(cfg), copy.deepcopy(cfg)
    _assert_same_nodes(ours, theirs, (None, None))
    assert OmegaConf.to_yaml(ours) == OmegaConf.to_yaml(cfg)
    ours.optimizer.lr = 0.5  # and the copy is its own
    assert cfg.optimizer.lr == 0.01 and OmegaConf.is_readonly(ours.hydra) == OmegaConf.is_readonly(cfg.hydra)


def test_structured_nodes_flags_lists_missing_values_and_interpolations_are_copied_as_deepcopy_copies_them() -> None:
    cfg = OmegaConf.create({"schema": OmegaConf.structured(Schema), "other": "x", "none": None, "nested": [[1, 2], {"k": "${other}"}]})
    OmegaConf.set_struct(cfg, True)
    OmegaConf.set_readonly(cfg.nested, True)
    ours, theirs = copied(cfg), copy.deepcopy(cfg)
    _assert_same_nodes(ours, theirs, (None, None))
    assert ours.schema.name == "x" and ours.nested[1].k == "x" and OmegaConf.is_missing(ours.schema, "missing")
    with pytest.raises(Exception, match="missing|units"):
        ours.schema.units = "not a list"
    inner, inner_theirs = copied(cfg.schema), copy.deepcopy(cfg.schema)  # a subtree keeps its parent, as deepcopy's
    _assert_same_nodes(inner, inner_theirs, (cfg, cfg))


@dataclass
class WithUnion:
    value: Union[int, str] = 1  # noqa: UP007  OmegaConf's union node


def test_a_node_it_does_not_know_is_left_to_deepcopy() -> None:
    cfg = OmegaConf.create({"u": OmegaConf.structured(WithUnion), "hydra": {"big": 1}, "task": 2})
    _assert_same_nodes(copied(cfg), copy.deepcopy(cfg), (None, None))
    without = copied(cfg, leave_out="hydra")
    assert list(without) == ["u", "task"] and "hydra" in cfg


def test_a_config_without_its_hydra_node_is_the_task_config_hydra_hands_a_job() -> None:
    """``leave_out``: what Hydra's run_job does (a deepcopy, then the hydra node deleted), without copying that node."""
    cfg = _job_config("optimizer.lr=0.01")
    theirs = copy.deepcopy(cfg)
    with read_write(theirs), open_dict(theirs):
        del theirs["hydra"]
    ours = copied(cfg, leave_out="hydra")
    assert OmegaConf.to_yaml(ours) == OmegaConf.to_yaml(theirs) and "hydra" in cfg
    assert OmegaConf.is_struct(ours) == OmegaConf.is_struct(theirs) and OmegaConf.is_readonly(ours) == OmegaConf.is_readonly(theirs)
    assert isinstance(ours.model.hidden_units, ListConfig)
