"""Keys the schema does not know: Hydra's `+key=value` adds any key, even a misspelt one, and the run
would silently ignore it. These find them (in a composed config or on the command line) and name the
nearest known key."""
from __future__ import annotations

import difflib
import functools
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .schema import Config


@functools.lru_cache(maxsize=1)
def _schema() -> DictConfig:
    """The schema as a read-only config, built once: OmegaConf.structured costs ~15 ms, and a validation
    walks the schema once per key (it was about 1 s of every run and test)."""
    node = OmegaConf.structured(Config)
    OmegaConf.set_readonly(node, True)
    return node


def _schema_node(parts: list[str]):
    """The schema's node at a dotted path: a DictConfig, True for a leaf, None if the schema has no such
    key. Below a free-form (`Any`) field, such as strategy.schedule, every key is known."""
    node = _schema()
    for i, part in enumerate(parts):
        if part not in node.keys():  # `in node` is False for a MISSING value such as model.name
            return None
        child = node._get_node(part)
        if isinstance(child, DictConfig):
            node = child
        else:
            return True if i == len(parts) - 1 or child._metadata.ref_type is Any else None
    return node


def unknown_key_message(key: str) -> str:
    """`unknown key 'epoch' (did you mean 'epochs'?)` for a dotted key the schema lacks."""
    parts = key.split(".")
    parent = _schema()
    for part in parts[:-1]:
        parent = parent._get_node(part) if isinstance(parent, DictConfig) and part in parent.keys() else None
    near = difflib.get_close_matches(parts[-1], list(parent) if isinstance(parent, DictConfig) else [], n=1)
    hint = f" (did you mean '{'.'.join(parts[:-1] + near)}'?)" if near else ""
    return f"unknown key '{key}'{hint}; the keys are fixed by the schema (see fastdrop run --help)"


def unknown_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Keys of a composed config that the schema does not know: Hydra's `+key=value` adds any key, even
    a misspelt one, and the run would silently ignore it."""
    out = []
    for key in cfg:
        if not prefix and key == "hydra":
            continue
        path = f"{prefix}{key}"
        node = _schema_node(path.split("."))
        if node is None:
            out.append(path)
        elif isinstance(node, DictConfig) and isinstance(cfg[key], DictConfig):
            out += unknown_keys(cfg[key], path + ".")
    return out


def added_unknown_keys(overrides: list[str], groups: set[str]) -> list[str]:
    """Command-line overrides that add (`+key=`, `++key=`) a key the schema lacks; adding a config group
    (`+experiment=smoke`) or a Hydra key is fine. Checked before Hydra composes anything."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    bad = []
    for o in OverridesParser.create().parse_overrides(overrides):
        key = o.key_or_group
        if not (o.is_add() or o.is_force_add()) or o.is_hydra_override() or key.split("@")[0] in groups:
            continue
        if _schema_node(key.split(".")) is None:
            bad.append(key)
    return bad
