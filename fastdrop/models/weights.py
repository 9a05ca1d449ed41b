"""Starting weights (`model.weights`) and the stem they need (`model.stem`), for fine-tuning.

`model.weights` is either a torchvision weights name for the built-in network (`IMAGENET1K_V1`,
`DEFAULT`, or the full `ResNet18_Weights.IMAGENET1K_V1`; the VGGs take the `vgg*_bn` weights), read
through torchvision's weights API from its cache (<torch.hub.get_dir()>/checkpoints/<file>, i.e.
$TORCH_HOME/hub/checkpoints) and downloaded only when that file is missing; or a path to a state_dict
file, to a fastdrop checkpoint.pt, or to an earlier fastdrop run directory (its checkpoint.pt, or the weights.pt a completed run leaves):
yesterday's model retrained on today's data. A state_dict may be keyed like the torchvision module
(`layer1.0.conv1.weight`) or like fastdrop's chain (`units.3.conv.weight`, what checkpoints hold).

Everything must load exactly: a missing or unexpected key or a different shape names the first one.
The one exception is the classifier's last Linear layer when the class count differs (or when
`model.new_classifier=true`: other classes, same count): it keeps its fresh initialisation, and the log
and the row say so. `num_batches_tracked` counters may be absent
(older torchvision files lack them; they only matter for BN momentum=None).

`model.stem`: `small` is the 3x3 stride-1 first conv without max-pool (ResNet) / ceil-mode pools and a
1x1 average pool (VGG); `imagenet` is torchvision's own layout; `auto` picks imagenet for torchvision
weights (they were trained with it, whatever the image size), for a weights file or run the stem whose
shapes the file holds (models.choose_stem), and otherwise small for images <= 64 px.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import user_error
from ..files import CKPT, WEIGHTS

log = logging.getLogger(__name__)

STEMS = ("auto", "imagenet", "small")


@user_error
class WeightsError(ValueError):
    """Weights missing, unreadable or not fitting the network: one line saying which and where."""


def is_torchvision_name(spec: str | None) -> bool:
    return bool(spec) and bool(re.fullmatch(r"([A-Za-z0-9]+_Weights\.)?[A-Z0-9_]+", spec)) and not Path(spec).exists()


def resolve_stem(stem: str, weights: str | None, image_size: int) -> bool:
    """True for the small-image stem."""
    if stem not in STEMS:
        raise WeightsError(f"model.stem must be one of {', '.join(STEMS)} (got {stem!r})")
    if stem == "auto":
        return not (weights and is_torchvision_name(weights)) and image_size <= 64
    if stem == "small" and weights and is_torchvision_name(weights):
        raise WeightsError(f"torchvision weights {weights} need model.stem=imagenet (or auto), not small")
    return stem == "small"


def torchvision_weights(model: str, spec: str):
    from torchvision.models import get_model_weights

    from ..registry import MODELS

    tv = MODELS.attr(model, "torchvision", model)
    enum = get_model_weights(tv)
    try:
        return enum[spec.split(".")[-1]]
    except KeyError:
        names = ", ".join(w.name for w in enum)
        raise WeightsError(f"{tv} has no torchvision weights {spec!r}; choose one of {names} "
                           "or give a path to a state_dict") from None


def cached_file(weights) -> Path:
    """Where torchvision's load_state_dict_from_url keeps (and looks for) this weights file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def fetch(model: str, spec: str, width: float, in_channels: int) -> tuple[dict, Path]:
    """(state_dict, file) for a torchvision weights name: the cached file if present, else downloaded."""
    w = torchvision_weights(model, spec)
    path = cached_file(w)
    if not path.exists():
        log.info("%s not in torchvision's cache, downloading %s", path.name, w.url)
        try:
            w.get_state_dict(progress=False)  # load_state_dict_from_url: downloads into `path`
        except Exception as e:  # offline: URLError, socket errors, HTTP errors
            raise WeightsError(f"torchvision weights {model} {w.name} are not cached: {path} is missing "
                               f"(torchvision looks in $TORCH_HOME/hub/checkpoints) and downloading "
                               f"{w.url} failed ({type(e).__name__}); copy the file there") from None
    if width != 1.0 or in_channels != 3:
        raise WeightsError(f"torchvision weights {spec} are for {model} at width 1.0 on 3-channel images "
                           f"(got model.width={width} and {in_channels} channel(s); add model.width=1.0, "
                           "the presets default to 0.25)")
    return _torch_load(path), path


def read_path(spec: str) -> tuple[dict, Path]:
    """(state_dict, file) from a state_dict file, a fastdrop checkpoint, or a fastdrop run directory."""
    path = Path(spec).expanduser()
    if path.is_dir():
        found = [path / f for f in (CKPT, WEIGHTS) if (path / f).is_file()]  # a checkpoint is the newer
        if not found:
            raise WeightsError(f"model.weights={spec}: the directory holds no {CKPT} or {WEIGHTS} (not a fastdrop "
                              "run directory, or a run with checkpoint=none)")
        path = found[0]
    if not path.is_file():
        raise WeightsError(f"model.weights={spec}: no such file or directory (expected a torchvision weights "
                           "name such as IMAGENET1K_V1, a state_dict file or a fastdrop run directory)")
    d = _torch_load(path)
    if isinstance(d, dict) and isinstance(d.get("model"), dict) and "fingerprint" in d:
        d = d["model"]  # a fastdrop checkpoint: the chain's weights
    elif isinstance(d, dict) and isinstance(d.get("state_dict"), dict):
        d = d["state_dict"]
    if not isinstance(d, dict) or not all(isinstance(v, torch.Tensor) for v in d.values()):
        raise WeightsError(f"{path} does not hold a state_dict (a mapping of names to tensors)")
    return d, path


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"weights file {path} is unreadable ({type(e).__name__}: {str(e)[:120]})") from None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _last_linear(module: nn.Module) -> str | None:
    names = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


def shapes_fit(module: nn.Module, chain: nn.Module, sd: dict) -> bool:
    """Whether every tensor `sd` shares with the module (or chain, for chain-keyed files) has its shape,
    the last Linear layer aside (a new classifier is allowed)."""
    target = chain if any(k.startswith("units.") for k in sd) else module
    fc = _last_linear(target)
    skip = {f"{fc}.weight", f"{fc}.bias"} if fc else set()
    want = target.state_dict()
    return all(tuple(sd[k].shape) == tuple(v.shape) for k, v in want.items() if k in sd and k not in skip)


def load_exactly(module: nn.Module, chain: nn.Module, sd: dict, source: str, new_classifier: bool = False) -> str:
    """Load `sd` into the module (or the chain, for chain-keyed files); returns the classifier's fate.
    `new_classifier`: keep the fresh last Linear layer even when the class counts agree (other classes)."""
    target = chain if any(k.startswith("units.") for k in sd) else module
    want = target.state_dict()
    sd = dict(sd)
    fc, classifier = _last_linear(target), "loaded"
    if fc and f"{fc}.weight" in sd and f"{fc}.weight" in want:
        got_w, want_w = sd[f"{fc}.weight"].shape, want[f"{fc}.weight"].shape
        if (got_w[0] != want_w[0] or new_classifier) and got_w[1:] == want_w[1:]:
            sd.pop(f"{fc}.weight")
            sd.pop(f"{fc}.bias", None)
            why = "model.new_classifier" if got_w[0] == want_w[0] else f"{want_w[0]} in the data"
            classifier = f"replaced: {got_w[0]} classes in the weights, {why} (newly initialised)"
            log.info("weights %s: classifier %s %s", source, fc, classifier)
    skippable = {f"{fc}.weight", f"{fc}.bias"} if classifier != "loaded" else set()
    for k, v in want.items():
        if k in sd and sd[k].shape != v.shape:
            raise WeightsError(f"weights {source} do not fit the network: {k} has shape {list(sd[k].shape)} "
                               f"in the file but {list(v.shape)} in the model (check model.width and model.stem)")
        if k not in sd and k not in skippable and not k.endswith("num_batches_tracked"):
            raise WeightsError(f"weights {source} do not fit the network: the file has no {k} "
                               f"(shape {list(v.shape)})")
    extra = next((k for k in sd if k not in want), None)
    if extra is not None:
        raise WeightsError(f"weights {source} do not fit the network: the file has {extra} "
                           f"(shape {list(sd[extra].shape)}), which the model lacks")
    target.load_state_dict(sd, strict=False)
    return classifier


def apply_weights(module: nn.Module, chain: nn.Module, spec: str | None, model_name: str | None = None,
                  width: float = 1.0, in_channels: int = 3, new_classifier: bool = False) -> dict:
    """Load `spec` (see the module docstring) into module/chain; the row's record of where they came from."""
    if not spec:
        return {"weights": None, "weights_file": None, "weights_sha256": None, "classifier": None}
    if is_torchvision_name(spec):
        if model_name is None:
            raise WeightsError(f"model.weights={spec}: torchvision weights names need a built-in model "
                               "(model=resnet18 ...); for your own module pass a state_dict path")
        sd, path = fetch(model_name, spec, width, in_channels)
    else:
        sd, path = read_path(spec)
    classifier = load_exactly(module, chain, sd, str(path), new_classifier)
    log.info("loaded weights %s from %s", spec, path)
    return {"weights": spec, "weights_file": str(path), "weights_sha256": sha256(path), "classifier": classifier}
