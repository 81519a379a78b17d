"""Frozen configuration dataclasses: model, losses, training recipe, training data, segmentation.

Every value a model file needs to rebuild the model lives in `StarsConfig`; the loss weights and
ablation switches in `LossConfig`; the optimisation recipe in `TrainConfig`; what training reads
from the rasters in `DataConfig`; how a raster is segmented in `SegmentConfig`. All round-trip
through plain dicts (`to_dict`/`from_dict`), so a model file holds nothing but tensors and plain
types. The command line and the QGIS dialogs take their defaults from here.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from .devices import check_device

from .errors import InputError

BACKBONES = ("resnet50", "resnet34", "resnet18")  # the paper's first; the CLI and QGIS list them in this order
MODES = ("stars", "single", "concat")
SHARED_NORMS = ("per_modality", "mixed")
STRIDE = 32  # the encoders' output stride: chip and tile sizes are multiples of it
PAPER_STEPS, PAPER_WARMUP = 80_000, 1000  # the paper's recipe (section 4.1.1)


@dataclass(frozen=True)
class StarsConfig:
    """Architecture of a STARS model (or of one of the paper's baselines).

    in_channels: band counts of modality 1 (SAR or DSM) and modality 2 (optical).
    mode: "stars" (the method), "single" (Baseline-SAR: modality 1 only, same backbone) or
        "concat" (early fusion of both modalities stacked along the band axis).
    use_translation: the bidirectional translation modules h_12, h_21 (paper section 3.2.1); when
        off, L_ncs compares the shared features directly (the paper's "exp-1" ablation row).
    encoder_width: base channel count of the ResNets (64 as in the paper and in ImageNet weights;
        16 or 32 make light models for CPU work and tests).
    decoder_norm: "batch" (default: predictions stay local, so tiled maps do not depend on the tiling)
        or "group" (GroupNorm as in segmentation_models_pytorch; statistics over the whole tile).
    align_stages: encoder stages (1..4) whose shared features the translation modules, L_ncs and
        L_psc act on; the paper uses stages 3 and 4 (section 3.4.1).
    shared_norm: "per_modality" (default): the shared body's BatchNorms keep one set of running
        statistics per modality (models.norm); "mixed": one set for both, as plain BatchNorm (model
        files of format 2, and an ablation row).
    """

    in_channels: tuple[int, int] = (1, 3)
    num_classes: int = 8
    backbone: str = "resnet50"
    mode: str = "stars"
    encoder_width: int = 64
    pyramid_channels: int = 256
    segmentation_channels: int = 128
    scse_reduction: int = 16
    decoder_dropout: float = 0.2
    decoder_norm: str = "batch"
    use_translation: bool = True
    align_stages: tuple[int, ...] = (3, 4)
    shared_norm: str = "per_modality"

    def __post_init__(self) -> None:
        # Lists arrive from JSON and checkpoints; store tuples so the config stays hashable.
        object.__setattr__(self, "in_channels", tuple(int(c) for c in self.in_channels))
        object.__setattr__(self, "align_stages", tuple(int(s) for s in self.align_stages))
        if len(self.in_channels) != 2 or min(self.in_channels) < 1:
            raise InputError(
                f"in_channels must be two positive band counts (modality 1, modality 2), "
                f"got {self.in_channels}"
            )
        if self.num_classes < 2:
            raise InputError(f"num_classes must be at least 2, got {self.num_classes}")
        if self.backbone not in BACKBONES:
            raise InputError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not self.align_stages or not set(self.align_stages) <= {1, 2, 3, 4}:
            raise InputError(f"align_stages must be a non-empty subset of 1..4, got {self.align_stages}")
        if self.encoder_width < 8 or self.encoder_width % 8:
            raise InputError(f"encoder_width must be a positive multiple of 8, got {self.encoder_width}")
        if self.decoder_norm not in ("batch", "group"):
            raise InputError(f"decoder_norm must be 'batch' or 'group', got {self.decoder_norm!r}")
        if self.shared_norm not in SHARED_NORMS:
            raise InputError(f"shared_norm must be one of {SHARED_NORMS}, got {self.shared_norm!r}")
        if not 0.0 <= self.decoder_dropout < 1.0:
            raise InputError(f"decoder_dropout must be in [0, 1), got {self.decoder_dropout}")

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StarsConfig":
        return _from_dict(cls, data)


CLASS_WEIGHTS = ("none", "inverse", "sqrt-inverse")
FREEZE = ("none", "encoders", "shared")  # what a fine-tuning run (`finetune`) keeps fixed
LR_FACTOR = 0.1  # a fine-tuning run's default learning rate, relative to the paper's


def class_weight_values(mode: str, counts) -> tuple[float, ...]:
    """Per-class weights of L_seg from the classes' labelled pixel counts: 1/f ("inverse") or
    1/sqrt(f) ("sqrt-inverse") of the frequency f, scaled so that the pixel-weighted mean is 1; a
    class without pixels gets 0 (it never occurs). "none": ()."""
    if mode == "none":
        return ()
    total = float(sum(counts))
    power = 1.0 if mode == "inverse" else 0.5
    raw = [(c / total) ** -power if c > 0 else 0.0 for c in counts]
    mean = sum(w * c / total for w, c in zip(raw, counts))
    return tuple(w / mean for w in raw)


@dataclass(frozen=True)
class LossConfig:
    """Weights and switches of L_total = L_seg + alpha * L_psc + beta * L_ncs (paper eq. 7).

    n_samples: pixels sampled per valid class for L_psc (the paper's N, section 3.3.1).
    tau: temperature of L_psc; the paper does not give it, we use 0.1.
    detach: stop-gradient on the L_ncs targets; False is the "w/o detach" ablation (Table 5).
    ignore_index: label value excluded from every loss (no-data and unlabelled pixels).
    psa_exclude: class values left out of PSA's balanced sampling (the paper leaves out background);
        they still count in L_seg.
    class_weights: weighting of L_seg's cross-entropy by class: "none" (the paper's), "inverse" or
        "sqrt-inverse" of the training labels' pixel frequencies, scaled so that the mean weight over
        the labelled pixels is 1 (the loss keeps its scale); class_weight_values: the weights
        computed at the start of training (in class-table order), recorded with the model.
    """

    alpha: float = 0.5
    beta: float = 0.2
    n_samples: int = 32
    tau: float = 0.1
    use_ncs: bool = True
    use_psc: bool = True
    detach: bool = True
    ignore_index: int = 255
    psa_exclude: tuple[int, ...] = ()
    class_weights: str = "none"
    class_weight_values: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "psa_exclude", tuple(int(v) for v in self.psa_exclude))
        object.__setattr__(self, "class_weight_values", tuple(float(v) for v in self.class_weight_values))
        if self.class_weights not in CLASS_WEIGHTS:
            raise InputError(f"class_weights must be one of {', '.join(CLASS_WEIGHTS)}, got {self.class_weights!r}")
        if self.alpha < 0 or self.beta < 0:
            raise InputError(f"alpha and beta must be >= 0, got alpha={self.alpha}, beta={self.beta}")
        if self.n_samples < 1:
            raise InputError(f"n_samples must be at least 1, got {self.n_samples}")
        if self.tau <= 0:
            raise InputError(f"tau must be > 0, got {self.tau}")

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LossConfig":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe; the defaults are the paper's (80k steps, batch 8, Adam, lr 1e-4 with
    1000 warm-up steps, gradient clipping at 5). `for_steps` scales it to a shorter run."""

    steps: int = PAPER_STEPS
    batch_size: int = 8
    lr: float = 1e-4
    warmup_steps: int = PAPER_WARMUP
    warmup_start_lr: float = 1e-6
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    val_every: int = 1000
    checkpoint_every: int = 500
    max_val_chips: int = 64
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    cpu_bf16: bool = False  # bf16 autocast on a CPU with AMX or AVX-512 BF16 (faster, a little lower mIoU)
    num_workers: int = 1
    keep_best: bool = False  # also keep the weights of the best validation mIoU (modality 1 alone)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "val_every", "checkpoint_every", "max_val_chips"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise InputError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.lr <= 0 or self.warmup_start_lr < 0:
            raise InputError(f"lr must be > 0 and warmup_start_lr >= 0, got {self.lr} and {self.warmup_start_lr}")
        if self.num_workers < 0:
            raise InputError(f"num_workers must be >= 0, got {self.num_workers}")
        check_device(self.device)

    @classmethod
    def for_steps(cls, steps: int, **overrides: Any) -> "TrainConfig":
        """The paper's recipe scaled to `steps`: warm-up over the paper's share of the run (1000 of
        80,000 steps, at least 1), validation 5 times per run and a model file 10 times per run,
        never less often than the paper's every 1000 / every 500 steps. `overrides` win."""
        if steps < 1:
            raise InputError(f"steps must be at least 1, got {steps}")
        scaled = dict(
            steps=steps,
            warmup_steps=min(PAPER_WARMUP, max(1, round(steps * PAPER_WARMUP / PAPER_STEPS))),
            val_every=max(1, min(1000, steps // 5)),
            checkpoint_every=max(1, min(500, steps // 10)),
        )
        scaled.update(overrides)
        return cls(**scaled)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class DataConfig:
    """What training reads from the rasters.

    chip_size: training chip side in pixels (multiple of 32; reduced for scenes smaller than it).
    val_fraction: share of chip-sized blocks held out for validation (never seen by training).
    min_valid: least share of a chip that must be labelled and valid in both modalities.
    class_table: CSV (value,name,color) or JSON class table; None builds one from the labels.
    ignore_values: label values left out of training (e.g. 0 "no data", clouds).
    aoi: polygon file limiting where chips come from.
    skip_bad_scenes: leave out (and list) scenes that fail to open or align, instead of stopping.
    scan_cache: file keeping the scenes' scans (band statistics, usable chip positions) for a
        repeated or resumed run; training sets it beside the model file. Not part of the recipe.
    band_numbering: which sensor's numbers band names like B1..B12 are (sentinel-2, landsat-5-7,
        landsat-8-9, planet-4), when first-layer filters of pretrained weights are picked by band name.
    """

    chip_size: int = 512
    val_fraction: float = 0.1
    min_valid: float = 0.5
    class_table: str | None = None
    ignore_values: tuple[int, ...] = ()
    aoi: str | None = None
    skip_bad_scenes: bool = False
    scan_cache: str | None = field(default=None, compare=False)
    band_numbering: str = "sentinel-2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ignore_values", tuple(int(v) for v in self.ignore_values))
        if self.band_numbering not in BAND_NUMBERINGS:
            raise InputError(f"band numbering must be one of {', '.join(BAND_NUMBERINGS)}, got "
                             f"{self.band_numbering!r}")
        if self.chip_size < STRIDE or self.chip_size % STRIDE:
            raise InputError(f"chip size must be a positive multiple of {STRIDE}, got {self.chip_size}")
        if not 0 <= self.val_fraction < 1:
            raise InputError(f"validation fraction must be in [0, 1), got {self.val_fraction}")
        if not 0 < self.min_valid <= 1:
            raise InputError(f"min_valid must be in (0, 1], got {self.min_valid}")

    def to_dict(self) -> dict[str, Any]:
        d = _plain(asdict(self))
        d.pop("scan_cache")  # where this machine keeps a cache, not part of the recipe
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DataConfig":
        return _from_dict(cls, data)


def split_legacy_train_config(d: Mapping[str, Any]) -> tuple[TrainConfig, DataConfig]:
    """A model file written before DataConfig existed kept chip size, validation fraction and
    min_valid in its train_config: split them out."""
    d = dict(d)
    data = {k: d.pop(k) for k in ("chip_size", "val_fraction", "min_valid") if k in d}
    return TrainConfig.from_dict(d), DataConfig(**data)


# whose numbers band names like B1..B12 are (models.resnet.NUMBERINGS maps each to Sentinel-2's)
BAND_NUMBERINGS = ("sentinel-2", "landsat-5-7", "landsat-8-9", "planet-4")
RUNTIMES = ("auto", "torch", "onnx", "int8")  # what runs a .stars model: see SegmentConfig.runtime
WEIGHTS = ("best", "last")  # which weights of a model trained with keep_best


def default_overlap(tile: int) -> int:
    """The overlap of neighbouring tiles when none is given: an eighth of the tile, at least 32 pixels,
    at most half the tile (64 at 512). A quarter (the default before) changed no mIoU on the demo's
    held-out sheet and 0.4 % of pixels next to the seams, for 1.4x as many tiles (bench/RESULTS.md)."""
    return min(max(32, tile // 8), tile // 2)


@dataclass(frozen=True)
class SegmentConfig:
    """How `stars segment` runs a model over a raster.

    tile_size: model input size in pixels (multiple of 32); None: the model's training chip size
        (`for_model` fills it in).
    overlap: pixels shared by neighbouring tiles, blended with raised-cosine weights (default: an
        eighth of the tile, at least 32 pixels and at most half the tile: 64 at 512; `default_overlap`).
    modality: which modality the input raster is: 1 (SAR/DSM, the missing-modality case) or 2
        (optical only). With a second raster (`with_m2`) the fused branch is used.
    resample: segment at the model's pixel size when the input's differs (the result is brought
        back to the input grid); otherwise a large difference is only warned about.
    batch_size: tiles per forward pass; None picks one for the device (`batch_for`).
    blend_on_device: blend in torch buffers on the model's device, copying finished rows back (None:
        on CUDA only, where blending on the CPU would limit the GPU); False blends in numpy.
    read_threads: threads reading and normalising tiles while the model runs, each with its own GDAL
        handles; None picks one for the device (`readers_for`).
    mmu: minimum mapping unit of the class map ("0.5ha", "500m2", "12px"; None: none): patches
        smaller than it are merged into their neighbours (`product.mmu`); probabilities, confidence
        and uncertainty stay those of the model. mmu_connectivity: 8 (default) or 4.
    runtime: what runs a .stars model (`engines.auto`): torch (eager PyTorch), onnx or int8 (its
        export, cached beside it, in ONNX Runtime), or auto (int8 on a CPU where ONNX Runtime is
        installed, else PyTorch: the default of `stars segment` and QGIS). None (this API's
        default): PyTorch for a .stars file, ONNX Runtime for a .onnx file.
    weights: which weights of a model file trained with --keep-best: "best" (of validation, the
        default) or "last"; a file without best weights has its last either way.
    probability_dtype: how the probabilities output is stored: "float32" (default, no data NaN) or
        "uint8" (value = round(255 p), tagged STARS_PROBABILITY_SCALE=1/255, no data in the dataset's
        mask): written so straight from the tile loop, a quarter of the size.
    """

    tile_size: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    amp: bool = True
    modality: int = 1
    resample: bool = False
    blend_on_device: bool | None = None
    read_threads: int | None = None
    mmu: str | None = None
    mmu_connectivity: int = 8
    runtime: str | None = None
    weights: str = "best"
    probability_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.probability_dtype not in ("float32", "uint8"):
            raise InputError(f"probability_dtype must be float32 or uint8, got {self.probability_dtype!r}")
        if self.runtime is not None and self.runtime not in RUNTIMES:
            raise InputError(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if self.weights not in WEIGHTS:
            raise InputError(f"weights must be {' or '.join(WEIGHTS)}, got {self.weights!r}")
        if self.mmu is not None:
            mmu_pixels(self.mmu, 1.0)  # a malformed unit is refused before any work
        if self.mmu_connectivity not in (4, 8):
            raise InputError(f"connectivity must be 4 or 8, got {self.mmu_connectivity}")
        if self.tile_size is not None:
            if self.tile_size < STRIDE or self.tile_size % STRIDE:
                raise InputError(f"tile size must be a positive multiple of {STRIDE}, got {self.tile_size}")
            if self.overlap is None:
                object.__setattr__(self, "overlap", default_overlap(self.tile_size))
            if not 0 <= self.overlap < self.tile_size:
                raise InputError(f"overlap must be in 0..{self.tile_size - 1} for tile size {self.tile_size}, "
                                 f"got {self.overlap}")
        elif self.overlap is not None and self.overlap < 0:
            raise InputError(f"overlap must be >= 0, got {self.overlap}")
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {self.batch_size}")
        if self.read_threads is not None and self.read_threads < 1:
            raise InputError(f"read threads must be at least 1, got {self.read_threads}")
        if self.modality not in (1, 2):
            raise InputError(f"modality must be 1 (SAR/DSM) or 2 (optical), got {self.modality}")
        check_device(self.device)

    def for_model(self, chip_size: int) -> "SegmentConfig":
        """This configuration with the tile size filled in: the model's training chip size (rounded
        up to a multiple of 32) unless one was given; the overlap follows (`default_overlap`)."""
        if self.tile_size is not None:
            return self
        tile = max(STRIDE, -(-int(chip_size) // STRIDE) * STRIDE)
        return replace(self, tile_size=tile)

    def batch_for(self, device_type: str, parallel: int | None = None) -> int:
        """The batch size on a device: the configured one, else 4 on CUDA and 1 on CPU, where a
        ResNet-50 tile of 512 pixels runs 1.8x faster alone than in a batch of 4 (bench/RESULTS.md);
        `parallel`, where the runner runs that many tiles side by side (OpenVINO's streams), on the CPU."""
        if self.batch_size is not None:
            return self.batch_size
        return 4 if device_type == "cuda" else max(1, parallel or 1)

    def readers_for(self, device_type: str, cores: int, parallel: int | None = None) -> int:
        """The reader threads on a device: the configured number, else one on the CPU, where the
        model needs every core and one reader already keeps up, and on CUDA one per tile of a batch
        up to the cores there are (a GPU runs tiles faster than one thread reads them). One batch is
        read ahead, so never more than the batch size: more threads would only wait."""
        batch = self.batch_for(device_type, parallel)
        if self.read_threads is not None:
            return min(self.read_threads, batch)
        return max(1, min(batch, cores)) if device_type == "cuda" else 1

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively, so the dict is JSON- and weights_only-safe."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"unknown {cls.__name__} fields {unknown}; known fields are {sorted(known)}")
    return cls(**dict(data))


UNITS = {"m2": 1.0, "ha": 10_000.0, "km2": 1_000_000.0, "px": None}


def mmu_pixels(mmu: str | float | int, pixel_area_m2: float) -> int:
    """The unit in pixels: '0.5ha', '500m2', '2km2', '12px' (or a bare number of pixels). A patch of
    fewer pixels than this is merged away; a unit of 1 pixel or less keeps everything."""
    if isinstance(mmu, (int, float)):
        return max(1, int(mmu))
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(m2|ha|km2|px)?\s*", str(mmu).lower())
    if m is None:
        raise InputError(f"minimum mapping unit {mmu!r}: give an area with its unit, e.g. 0.5ha, 500m2, 0.01km2, or "
                         f"a number of pixels, e.g. 12px")
    value, unit = float(m.group(1)), m.group(2) or "px"
    if UNITS[unit] is None:
        return max(1, int(math.ceil(value)))
    if pixel_area_m2 <= 0:
        raise InputError("the map's pixel area is unknown (no CRS or a zero pixel size); give the unit in pixels (px)")
    return max(1, int(math.ceil(value * UNITS[unit] / pixel_area_m2 - 1e-9)))
