"""Any classifier cut automatically: unit boundaries found by tracing the module with torch.fx.

A point of the traced graph through which exactly one tensor flows (nothing computed before it is used
after it, except that tensor) is a place where the network can be cut: such points fall between
blocks, never inside a residual block, whose skip tensor flows alongside. The pieces between points are
grouped into units as the built-in chains are: a piece holding a convolution, or a multi-path piece
holding weights (a residual block, an attention or MLP block), starts a unit; a plain piece without a
convolution (BN, activation, pooling) joins the unit before it. The classifier starts at the first
pooling, flatten, token selection or Linear after the last such piece (as `as_chain` does); without one
the last unit is the classifier. Every unit is a `torch.fx.GraphModule` sharing the model's own layers
and parameters, so the model and its chain train the same weights, and a state is always one tensor.

A unit is scored (Eq. 2) by its convolution weights, or, where it holds none (a transformer block), by
the weight matrices of its Linear and attention layers. Tracing runs in train and in eval mode: a
forward whose graph depends on the mode outside leaf layers (BN, dropout, stochastic depth are leaves)
is refused, as is anything torch.fx cannot trace, with one line. Hand-written chains (torchvision's
ResNet and VGG, `fastdrop_units()`) are tried before this one (see custom.chain_of).
"""
from __future__ import annotations

import operator
from collections import Counter

import torch
from torch import fx, nn

from .chain import Chain, Unit

_CONV_FUNCS = (torch.conv1d, torch.conv2d, torch.conv3d, nn.functional.conv1d, nn.functional.conv2d,
               nn.functional.conv3d)
_HEAD_MODULES = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear)
_HEAD_FUNCS = (torch.flatten, nn.functional.adaptive_avg_pool2d, nn.functional.adaptive_max_pool2d,
               nn.functional.linear, torch.mean, operator.getitem)
_HEAD_METHODS = ("flatten", "mean", "amax", "view", "reshape")
_SIZE_QUERIES = ("size", "dim")


class TraceRefused(TypeError):
    """The model cannot be cut automatically; the message is one line saying why."""


def _leaf_types() -> tuple:
    # Layers whose forward depends on train/eval mode must stay leaves, or tracing bakes one mode in.
    leaves = [nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd]
    try:
        from torchvision.ops import StochasticDepth
        leaves.append(StochasticDepth)
    except ImportError:  # pragma: no cover - torchvision is a dependency
        pass
    leaves += list(_timm_notrace()[0])
    return tuple(leaves)


def _timm_notrace() -> tuple:
    """timm's own registry of layers and functions torch.fx must not trace into (empty without timm)."""
    try:
        from timm.layers import _fx
    except ImportError:
        return (), ()
    return tuple(_fx.get_notrace_modules()), tuple(_fx.get_notrace_functions())


class _Tracer(fx.Tracer):
    def __init__(self):
        super().__init__(autowrap_functions=_timm_notrace()[1])
        self._leaves = _leaf_types()

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, self._leaves) or super().is_leaf_module(m, qualname)


class TracedUnit(Unit):
    """One unit: a piece of the traced graph, tensor -> tensor, over the model's own layers."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__()
        self.gm = gm

    def forward(self, state):
        (x,) = state
        out = self.gm(x)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"a traced unit gave a {type(out).__name__}, not a tensor: the graph point it ends at "
                            "carries no single tensor; give the model a fastdrop_units() method")
        return (out,)

    def conv_weights(self) -> list[nn.Parameter]:
        convs = super().conv_weights()
        if convs:
            return convs
        out = []
        for m in self.modules():
            if isinstance(m, nn.Linear):
                out.append(m.weight)
            elif isinstance(m, nn.MultiheadAttention) and m.in_proj_weight is not None:
                out.append(m.in_proj_weight)
        return out


def trace_graph(model: nn.Module) -> fx.Graph:
    """The model's graph, traced in train and in eval mode (they must agree); TraceRefused if it cannot be."""
    what = type(model).__name__
    was = model.training
    codes, graph = [], None
    try:
        for mode in (True, False):
            model.train(mode)
            graph = _Tracer().trace(model)
            codes.append(graph.python_code("self").src)
    except Exception as e:  # torch.fx raises TraceError, TypeError, NotImplementedError, ...
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise TraceRefused(f"cannot cut a {what} into units: torch.fx cannot trace it ({type(e).__name__}: {first}); "
                           "give it a fastdrop_units() method instead") from None
    finally:
        model.train(was)
    if codes[0] != codes[1]:
        raise TraceRefused(f"cannot cut a {what} into units: its traced graph differs between train and eval mode "
                           "(a mode test outside its leaf layers); give it a fastdrop_units() method instead")
    return graph


def _boundaries(nodes: list) -> list[int]:
    """Positions after which exactly one computed tensor is alive (the last position per tensor)."""
    pos = {n: i for i, n in enumerate(nodes)}
    last_use = {n: max((pos[u] for u in n.users), default=-1) for n in nodes if n.op != "get_attr"}
    live, out, value_at = set(), [], {}
    for i, n in enumerate(nodes[:-1]):  # the output node ends the graph, it is no cut
        if n.op != "get_attr" and last_use[n] > i:
            live.add(n)
        live -= {u for u in list(live) if last_use[u] <= i}
        if len(live) == 1 and n.op != "placeholder":
            (v,) = live
            if v.op == "placeholder":
                continue
            if out and value_at[out[-1]] is v:
                out.pop()  # the same tensor still the only one alive: cut after the later node
            out.append(i)
            value_at[i] = v
    return [(i, value_at[i]) for i in out]


def _computes(n: fx.Node) -> bool:
    return n.op in ("call_module", "call_function", "call_method")


def _module(model: nn.Module, n: fx.Node):
    return model.get_submodule(n.target) if n.op == "call_module" else None


def _has_conv(model, seg) -> bool:
    return any(isinstance(_module(model, n), nn.modules.conv._ConvNd) or
               (n.op == "call_function" and n.target in _CONV_FUNCS) for n in seg)


def _has_weights(model, seg) -> bool:
    return any(n.op == "get_attr" or (n.op == "call_module" and any(True for _ in _module(model, n).parameters()))
               for n in seg)


def _multi_path(inp, seg) -> bool:
    """Some tensor of the piece (or its input) feeds two computations in it: a residual or attention."""
    inside = set(seg)
    for v in [inp, *seg]:
        users = [u for u in v.users if u in inside and _computes(u) and not _is_size_query(u)]
        if len(users) > 1:
            return True
    return False


def _is_size_query(n: fx.Node) -> bool:
    return (n.op == "call_function" and n.target is getattr) or (n.op == "call_method" and n.target in _SIZE_QUERIES)


def _starts_head(model, seg) -> bool:
    for n in seg:
        if isinstance(_module(model, n), _HEAD_MODULES) or (n.op == "call_method" and n.target in _HEAD_METHODS):
            return True
        if n.op == "call_function" and n.target in _HEAD_FUNCS:
            return True
    return False


def _pieces(graph: fx.Graph) -> list[tuple]:
    """(input node, nodes, output node) of each piece between two single-tensor points, in order."""
    nodes = list(graph.nodes)
    inputs = [n for n in nodes if n.op == "placeholder"]
    result = nodes[-1].args[0]
    if len(inputs) != 1 or not isinstance(result, fx.Node):
        raise TraceRefused(f"cannot cut the model into units: its forward takes {len(inputs)} inputs or returns "
                           "more than one tensor (fastdrop cuts image -> logits classifiers)")
    pieces, start, inp = [], 1, inputs[0]
    for i, v in [b for b in _boundaries(nodes) if b[1] is not result] + [(len(nodes) - 2, result)]:
        pieces.append((inp, nodes[start: i + 1], v))
        start, inp = i + 1, v
    return pieces


def _group(model: nn.Module, pieces: list) -> tuple[list[list[int]], list[int]]:
    """Piece indices per unit, the classifier's last (see the module docstring), and the body piece that
    starts each conv unit (it names the unit)."""
    body = [_has_conv(model, seg) or (_has_weights(model, seg) and _multi_path(inp, seg)) for inp, seg, _ in pieces]
    if not any(body):
        raise TraceRefused("cannot cut the model into units: its graph holds no convolution and no residual or "
                           "attention block")
    last = max(i for i, b in enumerate(body) if b)
    head = next((i for i in range(last + 1, len(pieces)) if _starts_head(model, pieces[i][1])), None)
    units: list[list[int]] = []
    lead: list[int] = []  # pieces before the first body piece join it
    for i in range(len(pieces) if head is None else head):
        if body[i]:
            units.append(lead + [i])
            lead = []
        elif units:
            units[-1].append(i)
        else:
            lead.append(i)
    if head is not None:
        units.append(list(range(head, len(pieces))))
    if len(units) < 2:
        raise TraceRefused("cannot cut the model into units: its graph has no single-tensor point between a "
                           "convolution and the classifier")
    return units, [next(i for i in grp if body[i]) for grp in units[:-1]]


def _subgraph(model: nn.Module, pieces: list) -> fx.GraphModule:
    g = fx.Graph()
    env = {pieces[0][0]: g.placeholder("x")}

    def arg(n: fx.Node) -> fx.Node:
        if n not in env:
            if n.op != "get_attr":  # cannot happen for a true single-tensor point; say so if it does
                raise TraceRefused(f"cannot cut the model into units: {n.name} crosses a unit boundary")
            env[n] = g.node_copy(n)  # parameters and buffers read here (shared with the model)
        return env[n]

    for _, seg, _ in pieces:
        for n in seg:
            if _computes(n):
                env[n] = g.node_copy(n, arg)
    g.output(arg(pieces[-1][2]))
    return fx.GraphModule(model, g, class_name="TracedPiece")


def _name(seg: list, i: int) -> str:
    """The dotted path the layers of a unit's first block share (`layer1.0`), else stem / unit<i>."""
    paths = [n.target.split(".") for n in seg if n.op == "call_module"] or \
        [n.target.split(".") for n in seg if n.op == "get_attr"]
    common = []
    for parts in zip(*paths) if paths else []:
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    return ".".join(common) or ("stem" if i == 0 else f"unit{i}")


def traced_chain(model: nn.Module) -> Chain:
    """The chain of `model` cut at single-tensor points of its torch.fx graph (TraceRefused if it cannot be)."""
    pieces = _pieces(trace_graph(model))
    groups, starts = _group(model, pieces)
    units = [TracedUnit(_subgraph(model, [pieces[k] for k in grp])) for grp in groups]
    names = [_name(pieces[k][1], i) for i, k in enumerate(starts)] + ["classifier"]
    counts, seen = Counter(names), Counter()
    for i, n in enumerate(names):
        if counts[n] > 1:
            names[i] = f"{n}#{seen[n]}"
            seen[n] += 1
    owner = {}
    for name, u in zip(names, units):
        for p in u.parameters():
            if owner.setdefault(id(p), name) != name:
                raise TraceRefused(f"cannot cut {type(model).__name__} into units: a parameter is shared by units "
                                   f"{owner[id(p)]} and {name}")
    try:
        return Chain(units, names)
    except ValueError as e:
        raise TraceRefused(f"cannot cut {type(model).__name__} into units: {e}") from None
