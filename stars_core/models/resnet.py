"""ResNet-18/34/50 written with torchvision's state_dict key names (torchvision is not importable here).

A full `ResNet` has `conv1`, `bn1`, `layer1`..`layer4` exactly as in torchvision, so
`load_pretrained(module, "resnet50.pth")` loads a local ImageNet file saved from
`torchvision.models.resnet50(...).state_dict()`. The STARS model splits a ResNet in two: a per-modality
`ResNetStem` (conv1, bn1, maxpool) and a `ResNet(..., in_channels=None)` body (layer1..layer4) shared by
both modalities; both keep the key names, so both load from the same file.
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Callable, Mapping, Union

import torch
from torch import nn

from ..errors import InputError

StateDict = Mapping[str, torch.Tensor]
NormLayer = Callable[[int], nn.Module]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 norm: NormLayer = nn.BatchNorm2d):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = norm(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 norm: NormLayer = nn.BatchNorm2d):
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = norm(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = norm(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = norm(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


ARCHS: dict[str, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNetStem(nn.Module):
    """conv1 (7x7, stride 2) + bn1 + ReLU + max-pool: stride 4, `width` channels, any band count."""

    def __init__(self, in_channels: int, width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, width, H/4, W/4)


class ResNet(nn.Module):
    """ResNet encoder returning the four stage outputs, high to low resolution (strides 4, 8, 16, 32).

    With `in_channels=None` the module is the body alone (layer1..layer4) and expects the stride-4
    output of a `ResNetStem`. `width` is the base channel count (64 in the standard ResNets and in
    ImageNet weights; smaller values make light models for CPUs and tests). `norm` builds every
    normalisation layer (the STARS shared body uses per-modality statistics, `models.norm`).
    """

    def __init__(self, name: str = "resnet50", in_channels: int | None = 3, width: int = 64,
                 norm: NormLayer = nn.BatchNorm2d):
        super().__init__()
        if name not in ARCHS:
            raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(ARCHS)}")
        block, layers = ARCHS[name]
        self.name = name
        self.has_stem = in_channels is not None
        self._norm = norm
        if self.has_stem:
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
            self.bn1 = norm(width)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._inplanes = width
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.out_channels = tuple(width * 2**i * block.expansion for i in range(4))
        self._init_weights()

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self._inplanes, planes * block.expansion, stride),
                self._norm(planes * block.expansion),
            )
        layers = [block(self._inplanes, planes, stride, downsample, norm=self._norm)]
        self._inplanes = planes * block.expansion
        layers += [block(self._inplanes, planes, norm=self._norm) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Zero-init the last BN of each residual branch, as torchvision's zero_init_residual option.
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.has_stem:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        c1 = self.layer1(x)  # (B, C1, H/4, W/4)
        c2 = self.layer2(c1)  # (B, C2, H/8, W/8)
        c3 = self.layer3(c2)  # (B, C3, H/16, W/16)
        c4 = self.layer4(c3)  # (B, C4, H/32, W/32)
        return [c1, c2, c3, c4]


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt an RGB first-convolution weight (O, 3, k, k) to `in_channels` bands.

    Three bands keep the weights as they are. Any other count gets the mean of the RGB filters
    repeated per band, scaled by 3 / in_channels so a band-constant input gives the same response.
    """
    if weight.ndim != 4:
        raise ValueError(f"expected a 4-D convolution weight, got shape {tuple(weight.shape)}")
    if weight.shape[1] == in_channels:
        return weight.clone()
    mean = weight.mean(dim=1, keepdim=True)  # (O, 1, k, k)
    return mean.repeat(1, in_channels, 1, 1) * (weight.shape[1] / in_channels)


def canonical_band(name: str) -> str:
    """A band name reduced for matching: 'B08' ~ 'B8', 'b8a' ~ 'B8A', 'Sigma0_VV_db' ~ 'VV', 'Red' ~
    'B4' (a Sentinel-2 band, so RGB weights and Sentinel-2 rasters find each other)."""
    n = re.sub(r"[^A-Z0-9]", "", name.upper())
    n = re.sub(r"^(SIGMA0|GAMMA0|BETA0)", "", n)
    n = re.sub(r"DB$", "", n)
    n = re.sub(r"^B0+(\d)", r"B\1", n)
    return {"RED": "B4", "R": "B4", "GREEN": "B3", "G": "B3", "BLUE": "B2", "B": "B2", "NIR": "B8"}.get(n, n)


# Band numbers of other sensors as the Sentinel-2 band of the same light, so B-numbered names match a
# file's bands by what they see (a Landsat 5/7 or 4-band Planet B1 is blue, Sentinel-2's B1 coastal).
NUMBERINGS = {
    "sentinel-2": {},
    "landsat-5-7": {"B1": "B2", "B2": "B3", "B3": "B4", "B4": "B8", "B5": "B11", "B7": "B12", "B6": "B6TIR"},
    "landsat-8-9": {"B5": "B8", "B6": "B11", "B7": "B12", "B8": "B8PAN", "B9": "B10CIRRUS"},
    "planet-4": {"B1": "B2", "B2": "B3", "B3": "B4", "B4": "B8"},
}


def numbered(names) -> bool:
    """Whether any band name is a bare band number (B1, B08, b8a), read by a sensor's numbering."""
    return any(re.fullmatch(r"B\d+A?", re.sub(r"[^A-Z0-9]", "", str(n).upper())) for n in names)


def as_sentinel2(names, numbering: str = "sentinel-2") -> tuple[str, ...]:
    """Band names with their numbers read in `numbering` and given as the Sentinel-2 band of the same
    light (other names unchanged)."""
    table = NUMBERINGS[numbering]
    return tuple(table.get(canonical_band(n), n) if numbered((n,)) else n for n in names)


def band_plan(file_bands, model_bands) -> list[str | None]:
    """For each band of the model, the band of the weights file whose first-layer filter it starts
    from by name, or None (no band of that name in the file)."""
    index = {canonical_band(b): b for b in file_bands}
    return [index.get(canonical_band(b)) for b in model_bands]


def first_conv_plan(file_bands, model_bands) -> tuple[list[str | None], str]:
    """What `pick_first_conv` does: (the file's band each model band starts from, or None for the
    mean of the file's filters; how). how is "name" (at least one band matched by name), "position"
    (no name matched but the counts agree: the file's filters in its order, a guess), or "mean"."""
    plan = band_plan(file_bands, model_bands)
    if any(p is not None for p in plan):
        return plan, "name"
    if len(file_bands) == len(model_bands):
        return list(file_bands), "position"
    return plan, "mean"


def pick_first_conv(weight: torch.Tensor, file_bands, model_bands) -> torch.Tensor:
    """A first-convolution weight (O, C_file, k, k) for the model's bands, by `first_conv_plan`:
    picked by band name where any matches (a band the file has keeps its filter, any other gets the
    mean of the file's filters); with no name matched, kept in the file's order when the counts
    agree, else the mean. Scaled by C_file / C_model, so that with no band matched and other counts
    this is exactly `adapt_first_conv`, and with the same bands in another order an exact reordering."""
    if weight.ndim != 4 or weight.shape[1] != len(file_bands):
        return adapt_first_conv(weight, len(model_bands))
    plan, how = first_conv_plan(file_bands, model_bands)
    if how != "name":
        return adapt_first_conv(weight, len(model_bands))  # "position": the same count, kept as it is
    mean = weight.mean(dim=1)
    position = {b: i for i, b in enumerate(file_bands)}
    picked = [weight[:, position[p]] if p is not None else mean for p in plan]
    return torch.stack(picked, dim=1) * (weight.shape[1] / len(model_bands))


def read_state_dict(source: Union[str, os.PathLike, StateDict]) -> dict[str, torch.Tensor]:
    """A torchvision-style state_dict from a local file (loaded with weights_only) or a mapping."""
    if isinstance(source, Mapping):
        return _plain_keys(dict(source))
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"pretrained weights {path!r} not found; save them once with "
            f"torch.save(torchvision.models.resnet50(weights='IMAGENET1K_V2').state_dict(), {path!r}) "
            f"on a machine with torchvision and copy the file here"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # damaged, or Python objects that are not plain data: never loaded
        raise InputError(f"pretrained weights {path!r} could not be read: the file is damaged, or holds Python "
                         f"objects that are not plain data, so it was not loaded") from None
    if not isinstance(state, dict):
        raise InputError(f"{path!r} does not hold a state_dict (got {type(state).__name__})")
    return _plain_keys(state)


PREFIXES = ("module.", "encoder_q.", "backbone.", "encoder.", "model.")  # DDP, MoCo, timm/torchgeo wrappers


def _plain_keys(state: dict) -> dict[str, torch.Tensor]:
    """A ResNet state dict with the torchvision key names: nested "state_dict"/"model" unwrapped,
    wrapper prefixes stripped (torchgeo's SSL4EO-S12 MoCo weights, DDP's module.), non-tensors dropped."""
    for key in ("state_dict", "model"):
        if isinstance(state.get(key), dict):
            state = state[key]
    plain = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            continue
        changed = True
        while changed:
            changed = False
            for prefix in PREFIXES:
                if k.startswith(prefix):
                    k, changed = k[len(prefix):], True
        plain[k] = v
    return plain


def load_pretrained(module: nn.Module, source: Union[str, os.PathLike, StateDict], bands=None) -> list[str]:
    """Load torchvision ResNet weights into a `ResNet`, a body-only `ResNet` or a `ResNetStem`.

    The first convolution is adapted to the module's bands: by name (`pick_first_conv`) when `bands`
    gives (the file's band names, the module's band names), else to their count
    (`adapt_first_conv`); the classifier
    (`fc.*`) and keys the module does not have (conv1/bn1 for a body, layers for a stem) are skipped.
    Returns the loaded key names. Raises ValueError when a key the module needs is missing or has
    another shape (for instance resnet18 weights loaded into a resnet50).
    """
    state = read_state_dict(source)
    own = module.state_dict()
    for key in own:  # per-modality statistics (models.norm) start from the file's single set
        base = key.removesuffix("_m2")
        if base != key and key not in state and base in state:
            state[key] = state[base]
    if "conv1.weight" in own and "conv1.weight" in state:
        channels = own["conv1.weight"].shape[1]
        if bands is not None and bands[0] and len(bands[1]) == channels:
            state["conv1.weight"] = pick_first_conv(state["conv1.weight"], bands[0], bands[1])
        else:
            state["conv1.weight"] = adapt_first_conv(state["conv1.weight"], channels)
    # older torchvision files lack the counters, and with them their per-modality copies (_m2)
    missing = [k for k in own if k not in state and not re.search(r"num_batches_tracked(_m2)?$", k)]
    if missing:
        raise ValueError(
            f"pretrained weights lack {len(missing)} keys this {type(module).__name__} needs, "
            f"e.g. {missing[:3]}; are they weights of the same ResNet depth?"
        )
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if wrong:
        raise ValueError(f"pretrained weights do not fit the backbone: {wrong[:3]}")
    loaded = {k: state[k] for k in own if k in state}
    module.load_state_dict(loaded, strict=False)
    return sorted(loaded)
