"""Where the YAML config tree is (`CONF_DIR`) and what Hydra's ConfigStore holds: the typed schema and
a group entry for every registered model, dataset and strategy without a YAML of its own."""
from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore

from .schema import Config


def conf_dir() -> Path:
    """The YAML config tree: `fastdrop/conf` inside an installed wheel, else the checkout's top-level conf/
    (a source tree or an editable install, where conf/ stays beside the package)."""
    pkg = Path(__file__).resolve().parents[1]
    inside = pkg / "conf"
    return inside if (inside / "config.yaml").is_file() else pkg.parent / "conf"


def register_configs() -> None:
    """The typed schema, plus a config-group entry `{name: <entry>}` for every registered model, dataset
    and strategy that has no YAML in conf/, so a newly registered entry is a choice on the command line."""
    cs = ConfigStore.instance()
    cs.store(name="fastdrop_schema", node=Config)
    from ..data import DATASETS
    from ..models import MODELS
    from ..strategies import STRATEGIES

    for group, registry in (("model", MODELS), ("data", DATASETS), ("strategy", STRATEGIES)):
        have = {p.stem for p in (conf_dir() / group).glob("*.yaml")}
        for name in registry:
            if name not in have:
                cs.store(group=group, name=name, node={"name": name, **registry.attr(name, "conf", {})})


CONF_DIR = conf_dir()  # inside the package when installed from a wheel, else the checkout's conf/


def compose_config(overrides: list[str]):
    """The config the CLI would compose from `overrides`, outside a Hydra app (the Python API, the suite)."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose("config", overrides=list(overrides))
