"""STARS wiring (paper Figure 2; METHOD.md) and the two baselines, all built from one `StarsConfig`.

Calling convention shared by every model here:
    model(x1)     -> (B, K, H, W) logits from modality 1 alone (the missing-modality case);
    model(x2=x2)  -> (B, K, H, W) logits from modality 2 alone (the DSM + optical setting);
    model(x1, x2) -> a `PairOutput`: the logits of every branch the model has and, for STARS, the
                     aligned-stage shared features and their translations that the losses need.
"""
from __future__ import annotations

import os
from functools import partial
from typing import NamedTuple, Optional, Union, overload

import torch
from torch import nn

from ..config import STRIDE, StarsConfig
from .fpn import FPNDecoder
from .fusion import FusionModule
from .norm import ModalityBatchNorm2d, use_modality
from .resnet import ResNet, ResNetStem, load_pretrained, read_state_dict
from .translation import TranslationModule


class PairOutput(NamedTuple):
    """What a model returns for a pair (x1, x2). Logits are (B, K, H, W); a branch the model does
    not have is None (Baseline-SAR has m1 only, early fusion has fused only). The feature lists
    follow `StarsConfig.align_stages`, each (B, C_s, H/s, W/s); empty for the baselines."""

    m1: Optional[torch.Tensor] = None
    m2: Optional[torch.Tensor] = None
    fused: Optional[torch.Tensor] = None
    shared_m1: list = []  # shared features of modality 1 (f_m1), stage by stage
    shared_m2: list = []
    trans_12: list = []  # h_12(f_m1): modality 1 translated towards modality 2
    trans_21: list = []

    def logits(self) -> dict[str, torch.Tensor]:
        """The branches present, by name ("m1", "m2", "fused")."""
        return {k: v for k, v in (("m1", self.m1), ("m2", self.m2), ("fused", self.fused)) if v is not None}


def check_input(x: torch.Tensor, name: str, channels: int) -> None:
    """Raise a ValueError naming expected and received values for a badly shaped input."""
    if x.ndim != 4:
        raise ValueError(f"{name} must be a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} band(s), got {x.shape[1]} (shape {tuple(x.shape)})")
    h, w = x.shape[-2:]
    if h % STRIDE or w % STRIDE or h == 0 or w == 0:
        raise ValueError(
            f"{name} height and width must be positive multiples of {STRIDE}, got {h}x{w}; "
            f"pad or crop to {(-(-h // STRIDE)) * STRIDE}x{(-(-w // STRIDE)) * STRIDE}"
        )


def _check_inputs(cfg: StarsConfig, x1: torch.Tensor | None, x2: torch.Tensor | None) -> None:
    """At least one modality, each with its band count and a valid size, and a pair that matches."""
    if x1 is None and x2 is None:
        raise ValueError("give at least one modality: model(x1), model(x2=x2) or model(x1, x2)")
    if x1 is not None:
        check_input(x1, "x1 (modality 1)", cfg.in_channels[0])
    if x2 is not None:
        check_input(x2, "x2 (modality 2)", cfg.in_channels[1])
    if x1 is not None and x2 is not None and (x1.shape[0] != x2.shape[0] or x1.shape[-2:] != x2.shape[-2:]):
        raise ValueError(
            f"x1 and x2 must share batch size and height x width, got {tuple(x1.shape)} and {tuple(x2.shape)}"
        )


class StarsModel(nn.Module):
    """Shared encoder body with per-modality stems, two specific encoders, fusion modules at every
    stage, three FPN decoders (m1, m2, fused) and the bidirectional translation modules."""

    def __init__(self, cfg: StarsConfig):
        super().__init__()
        self.cfg = cfg
        c1, c2 = cfg.in_channels
        w = cfg.encoder_width
        self.stem_m1 = ResNetStem(c1, w)
        self.stem_m2 = ResNetStem(c2, w)
        norm = partial(ModalityBatchNorm2d, per_modality=cfg.shared_norm == "per_modality")
        self.shared = ResNet(cfg.backbone, in_channels=None, width=w, norm=norm)
        self.specific_m1 = ResNet(cfg.backbone, in_channels=c1, width=w)
        self.specific_m2 = ResNet(cfg.backbone, in_channels=c2, width=w)
        chs = self.shared.out_channels

        def fusions() -> nn.ModuleList:
            return nn.ModuleList(FusionModule(c, cfg.scse_reduction) for c in chs)

        def decoder() -> FPNDecoder:
            return FPNDecoder(
                [2 * c for c in chs], cfg.num_classes, cfg.pyramid_channels,
                cfg.segmentation_channels, cfg.decoder_dropout, cfg.decoder_norm,
            )

        self.fusion_m1, self.fusion_m2, self.fusion_fused = fusions(), fusions(), fusions()
        self.decoder_m1, self.decoder_m2, self.decoder_fused = decoder(), decoder(), decoder()
        if cfg.use_translation:
            self.translate_12 = nn.ModuleList(TranslationModule(chs[s - 1]) for s in cfg.align_stages)
            self.translate_21 = nn.ModuleList(TranslationModule(chs[s - 1]) for s in cfg.align_stages)

    def _encode(self, x: torch.Tensor, modality: int) -> tuple[list, list]:
        """Shared and specific features of one modality; the shared body uses its statistics."""
        stem, specific = (self.stem_m1, self.specific_m1) if modality == 1 else (self.stem_m2, self.specific_m2)
        with use_modality(self.shared, modality):
            shared = self.shared(stem(x))
        return shared, specific(x)

    def _branch(self, fusion: nn.ModuleList, decoder: FPNDecoder, a: list, b: list, size) -> torch.Tensor:
        fused = [f(x, y) for f, x, y in zip(fusion, a, b)]  # each (B, 2C_i, H/s_i, W/s_i)
        return decoder(fused, size)

    def _translate(self, modules: nn.ModuleList | None, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        if modules is None:  # "no translation" ablation: L_ncs compares the features directly
            return feats
        return [h(f) for h, f in zip(modules, feats)]

    @overload
    def forward(self, x1: torch.Tensor, x2: None = None) -> torch.Tensor: ...
    @overload
    def forward(self, x1: None = None, *, x2: torch.Tensor) -> torch.Tensor: ...
    @overload
    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> PairOutput: ...

    def forward(self, x1=None, x2=None):
        """One modality: its branch's logits. Both: every branch and the features the losses need."""
        _check_inputs(self.cfg, x1, x2)
        if x2 is None:
            shared, spec = self._encode(x1, 1)
            return self._branch(self.fusion_m1, self.decoder_m1, spec, shared, x1.shape[-2:])
        if x1 is None:
            shared, spec = self._encode(x2, 2)
            return self._branch(self.fusion_m2, self.decoder_m2, spec, shared, x2.shape[-2:])

        size = x1.shape[-2:]
        shared1, spec1 = self._encode(x1, 1)
        shared2, spec2 = self._encode(x2, 2)
        f1 = [shared1[s - 1] for s in self.cfg.align_stages]
        f2 = [shared2[s - 1] for s in self.cfg.align_stages]
        return PairOutput(
            m1=self._branch(self.fusion_m1, self.decoder_m1, spec1, shared1, size),
            m2=self._branch(self.fusion_m2, self.decoder_m2, spec2, shared2, size),
            fused=self._branch(self.fusion_fused, self.decoder_fused, shared1, shared2, size),
            shared_m1=f1,
            shared_m2=f2,
            trans_12=self._translate(getattr(self, "translate_12", None), f1),
            trans_21=self._translate(getattr(self, "translate_21", None), f2),
        )

    def encoders(self) -> dict[str, nn.Module]:
        return {
            "stem_m1": self.stem_m1, "stem_m2": self.stem_m2, "shared": self.shared,
            "specific_m1": self.specific_m1, "specific_m2": self.specific_m2,
        }

    def parts(self) -> dict[str, nn.Module]:
        """Named groups of modules, for parameter reports."""
        parts = self.encoders()
        parts["fusion"] = nn.ModuleList([self.fusion_m1, self.fusion_m2, self.fusion_fused])
        parts["decoders"] = nn.ModuleList([self.decoder_m1, self.decoder_m2, self.decoder_fused])
        if self.cfg.use_translation:
            parts["translation"] = nn.ModuleList([self.translate_12, self.translate_21])
        return parts


class SingleModel(nn.Module):
    """Baseline-SAR: one ResNet + FPN on modality 1 alone. `model(x1, x2)` ignores x2 and returns
    PairOutput(m1=logits), so the training loop treats every mode alike."""

    def __init__(self, cfg: StarsConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ResNet(cfg.backbone, in_channels=cfg.in_channels[0], width=cfg.encoder_width)
        self.decoder = FPNDecoder(
            self.encoder.out_channels, cfg.num_classes, cfg.pyramid_channels,
            cfg.segmentation_channels, cfg.decoder_dropout, cfg.decoder_norm,
        )

    def forward(self, x1: torch.Tensor | None = None, x2: torch.Tensor | None = None):
        """model(x1) -> logits; model(x1, x2) -> PairOutput(m1=logits) (x2 is not used)."""
        if x1 is None:
            raise ValueError("mode='single' segments modality 1 only; train it with modality 2 as x1 "
                             "to make a modality-2 baseline")
        check_input(x1, "x1 (modality 1)", self.cfg.in_channels[0])
        logits = self.decoder(self.encoder(x1), x1.shape[-2:])
        return logits if x2 is None else PairOutput(m1=logits)

    def encoders(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder}

    def parts(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoders": self.decoder}


class ConcatModel(nn.Module):
    """Early-fusion baseline: both modalities stacked along the band axis into one ResNet + FPN.
    A missing modality is filled with zeros (the per-band mean after normalisation)."""

    def __init__(self, cfg: StarsConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ResNet(cfg.backbone, in_channels=sum(cfg.in_channels), width=cfg.encoder_width)
        self.decoder = FPNDecoder(
            self.encoder.out_channels, cfg.num_classes, cfg.pyramid_channels,
            cfg.segmentation_channels, cfg.decoder_dropout, cfg.decoder_norm,
        )

    def forward(self, x1: torch.Tensor | None = None, x2: torch.Tensor | None = None):
        """One modality -> logits (the other filled with zeros); both -> PairOutput(fused=logits)."""
        _check_inputs(self.cfg, x1, x2)
        c1, c2 = self.cfg.in_channels
        both = x1 is not None and x2 is not None
        ref = x1 if x1 is not None else x2
        if x1 is None:
            x1 = ref.new_zeros((ref.shape[0], c1, *ref.shape[-2:]))
        if x2 is None:
            x2 = ref.new_zeros((ref.shape[0], c2, *ref.shape[-2:]))
        logits = self.decoder(self.encoder(torch.cat([x1, x2], dim=1)), ref.shape[-2:])
        return PairOutput(fused=logits) if both else logits

    def encoders(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder}

    def parts(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoders": self.decoder}


Model = Union[StarsModel, SingleModel, ConcatModel]


def build_model(cfg: StarsConfig, pretrained: Union[str, os.PathLike, None] = None, *,
                pretrained_m1: Union[str, os.PathLike, None] = None,
                pretrained_m2: Union[str, os.PathLike, None] = None,
                bands: tuple | None = None, weight_bands: dict | None = None) -> Model:
    """Build the model `cfg.mode` names, optionally starting its ResNets from local weights (the
    torchvision layout, which timm's resnet18/34/50 and the Sentinel-1/2 self-supervised weights
    distributed with torchgeo share; first convolutions adapted to the band counts).

    `pretrained` serves every encoder part. Per modality, `pretrained_m1` serves the modality-1
    stem and specific encoder (e.g. SAR self-supervised weights), `pretrained_m2` the modality-2
    ones (e.g. ImageNet); the shared body takes `pretrained` if given, else `pretrained_m2`, else
    `pretrained_m1`. A baseline's single encoder takes `pretrained`, else `pretrained_m1`, else
    `pretrained_m2`, so a baseline given the same files as STARS never starts from less
    (`pretrained_plan` says which part takes which).

    First convolutions are picked by band name (`resnet.pick_first_conv`) where `bands` gives the
    model's band names per modality and `weight_bands` the file's ({"all"/"m1"/"m2": names}, for
    registry weights); otherwise adapted to the band count."""
    model = {"stars": StarsModel, "single": SingleModel, "concat": ConcatModel}[cfg.mode](cfg)
    sources = {k: read_state_dict(v) for k, v in
               (("all", pretrained), ("m1", pretrained_m1), ("m2", pretrained_m2)) if v is not None}
    for part_name, part in model.encoders().items():
        key = _source_for(part_name, sources)
        if key is not None:
            names = stem_bands(part_name, cfg.mode, bands)
            file_bands = (weight_bands or {}).get(key)
            load_pretrained(part, sources[key], (file_bands, names) if names and file_bands else None)
    return model


def stem_bands(part: str, mode: str, bands: tuple | None) -> tuple | None:
    """The band names an encoder part's first convolution sees (None: it has none, or unknown)."""
    if bands is None or part == "shared":  # the shared body has no first convolution of its own
        return None
    if part.endswith("_m1") or mode == "single":
        return tuple(bands[0])
    if part.endswith("_m2"):
        return tuple(bands[1])
    return tuple(bands[0]) + tuple(bands[1])  # concat: both modalities' bands in one stem


ENCODER_PARTS = {"stars": ("stem_m1", "stem_m2", "shared", "specific_m1", "specific_m2"),
                 "single": ("encoder",), "concat": ("encoder",)}


def pretrained_plan(mode: str, given) -> dict[str, str | None]:
    """For a model of `mode`, which of the given weights ("all", "m1", "m2") each encoder part
    starts from (None: from scratch), as `build_model` loads them."""
    return {part: _source_for(part, set(given)) for part in ENCODER_PARTS[mode]}


def _source_for(part: str, given) -> str | None:
    """Which of the given weights ("all", "m1", "m2") a named encoder part starts from."""
    if part.endswith("_m1"):
        order = ("m1", "all")
    elif part.endswith("_m2"):
        order = ("m2", "all")
    elif part == "shared":
        order = ("all", "m2", "m1")
    else:  # a baseline's encoder sees modality 1 first
        order = ("all", "m1", "m2")
    return next((k for k in order if k in given), None)
