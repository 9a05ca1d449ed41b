"""All the registries, one per axis (models, datasets, strategies, cut policies, cache backends, loggers),
filled beside the code.

Each entry is registered once, where it is defined (timm's `register_model` style):

    @MODELS.register("vgg11", family="vgg")
    def vgg11(num_classes, in_channels, image_size, width=1.0): ...

A registry is a read-only mapping name -> object in registration order, plus the keyword attributes
given at registration (`MODELS.attr("vgg11", "family")`). The CLI's config choices, `validate()`, the
report's ordering and table grouping, the bench and the tests all read these mappings, so adding an
entry is one module (imported by its package) and, where Hydra should show extra defaults, one YAML.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Iterator


def either(names) -> str:
    """'a', 'a or b', 'a, b or c'."""
    n = list(names)
    return n[0] if len(n) == 1 else f"{', '.join(n[:-1])} or {n[-1]}"


class Registry(Mapping):
    def __init__(self, kind: str):
        self.kind = kind
        self._objs: dict[str, Any] = {}
        self._attrs: dict[str, dict] = {}

    def register(self, name: str | None = None, **attrs) -> Callable:
        """Decorator: register the object under `name` (default: its `name` attribute, else `__name__`)."""

        def add(obj):
            key = name or getattr(obj, "name", None) or obj.__name__
            if key in self._objs:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._objs[key], self._attrs[key] = obj, dict(attrs)
            return obj

        return add

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register a toy entry clean up with this)."""
        self._objs.pop(name)
        self._attrs.pop(name)

    def attr(self, name: str, key: str, default: Any = None) -> Any:
        return self._attrs.get(name, {}).get(key, default)

    def names(self) -> list[str]:
        return list(self._objs)

    def choices(self) -> str:
        """'a, b or c': for error messages."""
        return either(self.names())

    def get_or_fail(self, name: str, error: type[Exception] = ValueError):
        if name not in self._objs:
            raise error(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._objs)}")
        return self._objs[name]

    def order(self, name: str) -> int:
        """Position in registration order; unknown names sort last."""
        return self.names().index(name) if name in self._objs else len(self._objs)

    def __getitem__(self, name: str):
        return self._objs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._objs)

    def __len__(self) -> int:
        return len(self._objs)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


# The six axes. Each is filled by the modules that define its entries (importing the package that
# holds them: fastdrop.models, fastdrop.data, fastdrop.strategies, fastdrop.policies,
# fastdrop.strategies.cache, fastdrop.results.loggers).
MODELS = Registry("model")
DATASETS = Registry("dataset")
STRATEGIES = Registry("strategy")
POLICIES = Registry("cut policy")
CACHE_BACKENDS = Registry("cache backend")
LOGGERS = Registry("logger")
