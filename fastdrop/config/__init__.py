"""The run's configuration: the typed schema behind conf/ (`schema`), keys the schema lacks (`keys`),
the YAML tree and Hydra's ConfigStore (`store`), and the checks a composed config must pass before
anything runs (`validate`: imported on its own, as it reads the strategies' and policies' registries)."""
from .keys import added_unknown_keys, unknown_key_message, unknown_keys
from .schema import (PRECISIONS, RETENTIONS, BenchConfig, CacheConfig, Config, DataConfig, DistConfig,
                     LoggerConfig, ModelConfig, OptimConfig, StrategyConfig)
from .store import CONF_DIR, compose_config, conf_dir, register_configs

__all__ = ["CONF_DIR", "PRECISIONS", "RETENTIONS", "BenchConfig", "CacheConfig", "Config", "DataConfig",
           "DistConfig", "LoggerConfig", "ModelConfig", "OptimConfig", "StrategyConfig", "added_unknown_keys",
           "compose_config", "conf_dir", "register_configs", "unknown_key_message", "unknown_keys"]
