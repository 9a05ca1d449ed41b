"""A user's own network as a chain of units (the fine-tuning use case), and the name its rows carry.

`chain_of` accepts, in this order: a `Chain`; a torchvision `ResNet` or `VGG` instance (any depth,
any weights: cut exactly like the built-in networks, one unit per convolution, also inside residual
blocks); any module implementing the *units interface* below; a plain `nn.Sequential` of conv blocks
(see `as_chain`); any other classifier torch.fx can trace (torchvision, timm), cut automatically between
blocks (models/traced.py). Anything else is refused with a message listing these.

The units interface, for a network that is none of the above: a method `fastdrop_units()` returning
the ordered units as (name, module) pairs, every conv unit first and the classifier last. A module
that is a `fastdrop.models.Unit` maps a state (tuple of tensors) to a state, so a unit boundary may fall
inside a residual block; any other module is taken as a plain tensor -> tensor step. Every unit but the
classifier must hold a convolution (it is what gets scored and cut).

Rows of a custom network carry the name the user gives (`fit(..., name=...)`, or `model.name=` among
the overrides); without one the name is the module's class plus a hash of its architecture, so two
different networks never share a name and the tables never pair them.
"""
from __future__ import annotations

import hashlib

from torch import nn

from ..registry import MODELS
from .chain import Chain, SeqUnit, Unit, as_chain
from .traced import TraceRefused, traced_chain

ACCEPTED = ("a fastdrop Chain, a torchvision ResNet or VGG instance, a module with a fastdrop_units() method "
            "returning (name, unit) pairs (conv units first, classifier last), an nn.Sequential of conv blocks, "
            "or any classifier torch.fx can trace (torchvision, timm: cut automatically between blocks)")


def chain_of(module) -> Chain:
    """The chain of units for `module` (one of ACCEPTED); it shares the module's layers."""
    if isinstance(module, Chain):
        return module
    for name in MODELS:  # an instance of a registered network's class (any depth, any weights)
        t = MODELS.attr(name, "module_type")
        if t is not None and isinstance(module, t):
            return MODELS.attr(name, "to_chain")(module)
    if callable(getattr(module, "fastdrop_units", None)):
        return _interface_chain(module)
    if isinstance(module, nn.Sequential):
        return as_chain(module)
    if not isinstance(module, nn.Module):
        raise TypeError(f"cannot cut a {type(module).__name__} into units; fastdrop accepts {ACCEPTED}")
    try:
        return traced_chain(module)
    except TraceRefused as e:
        raise TraceRefused(f"{e}; fastdrop accepts {ACCEPTED}") from None


def _interface_chain(module) -> Chain:
    pairs = list(module.fastdrop_units())
    if not all(isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[1], nn.Module) for p in pairs):
        raise TypeError(f"{type(module).__name__}.fastdrop_units() must return (name, nn.Module) pairs")
    units = [u if isinstance(u, Unit) else SeqUnit(u) for _, u in pairs]
    return Chain(units, [str(n) for n, _ in pairs])


def default_name(module, chain: Chain) -> str:
    """`<class>-<architecture hash>`: equal architectures share it, different ones never do."""
    arch = repr(module) + "\n" + "\n".join(
        f"{k}:{tuple(v.shape)}" for k, v in chain.state_dict().items())
    return f"{type(module).__name__.lower()}-{hashlib.sha256(arch.encode()).hexdigest()[:8]}"
