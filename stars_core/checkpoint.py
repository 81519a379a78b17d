"""The model file: this module alone writes and reads it.

One file holds everything segmentation needs, and, while training can go on, the state to resume
it. It loads with `torch.load(weights_only=True)`: plain types and tensors only, no code runs.

Layout (format 3):
    format            "stars-model"
    format_version    3 (format 2 files had one mixed set of BatchNorm statistics in the shared
                      encoder: they load with shared_norm "mixed"; format 1 files used GroupNorm in
                      the decoders; both still load)
    model_config      StarsConfig dict: rebuilds the network
    loss_config       LossConfig dict
    train_config      TrainConfig dict (files before DataConfig also hold chip_size, val_fraction,
                      min_valid here; they still load)
    data_config       DataConfig dict (absent in older files)
    state_dict        the weights
    classes           {values, names, colors}
    modalities        [modality-1 name, modality-2 name], e.g. ["SAR", "optical"]
    bands             {m1: BandStats dict, m2: BandStats dict}: band names and normalisation
    chip_size         training chip side in pixels (the default segmentation tile)
    pixel_size        [x, y] in CRS units; crs: the CRS of the training scenes (WKT or EPSG)
    summary           steps, device, seconds, last losses, last validation metrics, class pixels
    pretrained        {all|m1|m2: {file, bytes, sha256, ...}}: the weights the encoders started from
    init_from         a fine-tuning run's source: {file, sha256, weights, step, freeze, classes_kept,
                      classes_new, classes_dropped} (absent otherwise)
    history           one row of logged values per step (finished files)
    resume            {step, optimizer, rng, history, scenes} (only while training can go on; scenes:
                      [m1, m2, labels, aoi] of each, so a resume on other data can say so)
    best              {state_dict, step, val_m1_miou}: the weights of the best validation mIoU of
                      modality 1 alone (`--keep-best`; absent otherwise); segmentation uses them
                      unless asked for the last
Writes go to a temporary file in the same folder, then an atomic rename: a crash or a cancel never
leaves a half-written model file, and an earlier file survives.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from .bands import BandStats
from .classes import ClassTable
from .config import DataConfig, LossConfig, StarsConfig, TrainConfig, split_legacy_train_config
from .files import atomic_path, unwritten
from .models import build_model
from .errors import InputError

FORMAT = "stars-model"
FORMAT_VERSION = 3  # 3: per-modality shared BatchNorm statistics; 2: decoder_norm (format 1: GroupNorm)
REQUIRED_KEYS = ("model_config", "loss_config", "train_config", "state_dict", "classes", "bands", "chip_size",
                 "pixel_size")


@dataclass(frozen=True)
class ModelMeta:
    """Everything a model file says about its model besides the weights."""

    model: StarsConfig
    loss: LossConfig
    train: TrainConfig
    data: DataConfig
    classes: ClassTable
    stats: tuple[BandStats, BandStats]
    modalities: tuple[str, str] = ("SAR", "optical")
    chip_size: int = 512
    pixel_size: tuple[float, float] = (1.0, 1.0)
    crs: str | None = None
    pretrained: dict | None = None  # {"all"/"m1"/"m2": {file, bytes, sha256}} of the starting weights
    init_from: dict | None = None  # a fine-tuning run's source model: {file, sha256, weights, step, freeze, classes_*}
    distilled_from: dict | None = None  # a distilled student's teacher: {file, sha256, temperature, steps, agreement...}


@dataclass
class ResumeState:
    """Where an unfinished training run stopped."""

    step: int
    optimizer: dict
    rng: dict
    history: list[dict] = field(default_factory=list)
    scenes: list[list[str | None]] | None = None  # [m1, m2, labels, aoi] of each scene (None: not recorded)
    best: dict | None = None  # {state_dict, step, val_m1_miou} with --keep-best


def save_model_file(path: str | os.PathLike, meta: ModelMeta, state_dict: dict, summary: dict,
                    history: list[dict], resume: ResumeState | None = None, best: dict | None = None) -> None:
    """Write the model file atomically; with `resume` it can be continued with `stars train --resume`;
    `best` ({state_dict, step, val_m1_miou}) is kept beside the last weights."""
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "model_config": meta.model.to_dict(), "loss_config": meta.loss.to_dict(),
        "train_config": meta.train.to_dict(), "data_config": meta.data.to_dict(),
        "state_dict": state_dict, "classes": meta.classes.to_dict(), "modalities": list(meta.modalities),
        "bands": {"m1": meta.stats[0].to_dict(), "m2": meta.stats[1].to_dict()},
        "chip_size": int(meta.chip_size), "pixel_size": [float(v) for v in meta.pixel_size], "crs": meta.crs,
        "summary": summary, "pretrained": meta.pretrained or {},
    }
    if meta.init_from:
        payload["init_from"] = meta.init_from
    if meta.distilled_from:
        payload["distilled_from"] = meta.distilled_from
    if resume is None:
        payload["history"] = history
    else:
        payload["resume"] = {"step": resume.step, "optimizer": resume.optimizer, "rng": resume.rng,
                             "history": history}
        if resume.scenes is not None:
            payload["resume"]["scenes"] = resume.scenes
    if best is not None:
        payload["best"] = best
    with atomic_path(path) as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as exc:  # a full disk: PyTorch's writer says "unexpected pos ..."
            raise unwritten(tmp, exc) from None


def read_model_file(path: str | os.PathLike) -> dict:
    """The payload of a model file, checked: a STARS model of a format this version reads, with
    every key segmentation needs. Never runs code held in the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path!r} not found")
    try:
        with warnings.catch_warnings():  # torch's own advice (e.g. about pickle protocols) is not for users
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises several types for foreign, damaged or code-carrying files
        raise InputError(f"{path!r} is not a STARS model file: it is damaged, or holds Python objects that are "
                         f"not plain data, so it was not loaded") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path!r} is not a STARS model file (made by `stars train`)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise InputError(f"{path!r} was written by a newer STARS (format {payload['format_version']}); upgrade")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise InputError(f"{path!r} is an incomplete STARS model file: it lacks {', '.join(missing)}; "
                         f"train it again or use the file `stars train` wrote")
    missing = missing_modality_statistics(payload)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise InputError(f"{path!r} is a format-3 model file without the optical statistics of the shared encoder "
                         f"({shown}); it is damaged or was edited: use the file `stars train` wrote, or "
                         f"re-estimate the statistics with `stars recalibrate`")
    return payload


def missing_modality_statistics(payload: dict) -> list[str]:
    """The modality-2 BatchNorm buffers (`*_m2`) a per-modality model of a format-3 file lacks."""
    if payload.get("format_version", 1) < 3 or model_config(payload).shared_norm != "per_modality" \
            or payload["model_config"].get("mode", "stars") != "stars":
        return []
    state = payload["state_dict"]
    return [f"{k}_m2" for k in state if k.startswith("shared.") and
            k.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked") and f"{k}_m2" not in state]


def mixed_statistics_warning(meta: ModelMeta, path: str | os.PathLike | None) -> str | None:
    """One line for a STARS model whose shared encoder keeps one mixed set of BatchNorm statistics
    (a format-2 file): single-modality maps are normalised with statistics no modality had."""
    if meta.model.mode != "stars" or meta.model.shared_norm != "mixed":
        return None
    m1, m2 = meta.modalities
    name = os.fspath(path) if path is not None else "MODEL"
    return (f"this model keeps one mixed set of {m1}/{m2} BatchNorm statistics in its shared encoder (a format-2 "
            f"file), which costs single-modality maps accuracy; separate them once with `stars recalibrate {name} "
            f"--m1 {m1}.tif --m2 {m2}.tif` (rasters of the training area)")


def model_config(payload: dict) -> StarsConfig:
    d = dict(payload["model_config"])
    version = payload.get("format_version", 1)
    if version < 2:
        d.setdefault("decoder_norm", "group")
    if version < 3:
        d.setdefault("shared_norm", "mixed")
    return StarsConfig.from_dict(d)


def fit_state_dict(model: torch.nn.Module, state: dict) -> dict:
    """`state` completed for `model`: files before format 3 lack the modality-2 statistics of the
    shared body (`*_m2`); they start as copies of the single set the file holds (a format-3 file
    without them is refused by `read_model_file`, never completed)."""
    own = model.state_dict()
    state = dict(state)
    for key in own:
        base = key.removesuffix("_m2")
        if base != key and key not in state and base in state:
            state[key] = state[base].clone()
    return state


def read_meta(payload: dict) -> ModelMeta:
    """The ModelMeta of a payload from `read_model_file` (older layouts included)."""
    if "data_config" in payload:
        train_cfg, data_cfg = TrainConfig.from_dict(payload["train_config"]), DataConfig.from_dict(payload["data_config"])
    else:
        train_cfg, data_cfg = split_legacy_train_config(payload["train_config"])
    bands = payload["bands"]
    return ModelMeta(
        model=model_config(payload), loss=LossConfig.from_dict(payload["loss_config"]), train=train_cfg,
        data=data_cfg, classes=ClassTable.from_dict(payload["classes"]),
        stats=(BandStats.from_dict(bands["m1"]), BandStats.from_dict(bands["m2"])),
        modalities=tuple(payload.get("modalities", ("modality 1", "modality 2"))),
        chip_size=int(payload["chip_size"]), pixel_size=tuple(payload["pixel_size"]), crs=payload.get("crs"),
        pretrained=payload.get("pretrained") or {}, init_from=payload.get("init_from"),
        distilled_from=payload.get("distilled_from"),
    )


def read_resume(path: str | os.PathLike) -> tuple[ModelMeta, dict, ResumeState]:
    """Meta, weights and resume state of an unfinished run, or an InputError saying why not."""
    payload = read_model_file(path)
    if "resume" not in payload:
        raise InputError(f"{os.fspath(path)!r} holds no training state to resume from (the run finished); "
                         f"start a new run without --resume")
    return read_meta(payload), payload["state_dict"], resume_state(payload)


def resume_state(payload: dict) -> ResumeState | None:
    """Where the run of a payload stopped, or None when it finished."""
    r = payload.get("resume")
    return None if r is None else ResumeState(int(r["step"]), r["optimizer"], r["rng"], list(r["history"]),
                                              r.get("scenes"), payload.get("best"))


@dataclass
class LoadedModel:
    """A model rebuilt from its file, in eval mode, with what segmentation needs to feed it."""

    model: torch.nn.Module
    meta: ModelMeta
    payload: dict[str, Any]
    weights: str = "last"  # which weights of the file: "best" (of validation) or "last"
    step: int | None = None  # the training step they are from

    @property
    def config(self) -> StarsConfig:
        return self.meta.model

    @property
    def classes(self) -> ClassTable:
        return self.meta.classes

    @property
    def stats(self) -> tuple[BandStats, BandStats]:
        return self.meta.stats

    @property
    def chip_size(self) -> int:
        return self.meta.chip_size

    @property
    def pixel_size(self) -> tuple[float, float]:
        return self.meta.pixel_size

    @property
    def modalities(self) -> tuple[str, str]:
        """Names of modality 1 and 2 (e.g. SAR, optical)."""
        return self.meta.modalities

    @property
    def crs(self) -> str | None:
        return self.meta.crs


WEIGHTS = ("best", "last")


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", weights: str = "best") -> LoadedModel:
    """Rebuild the model from its file alone, in eval mode on `device`: with the weights of its best
    validation (a `--keep-best` file) unless `weights` is "last", else its last."""
    if weights not in WEIGHTS:
        raise InputError(f"weights must be best or last, got {weights!r}")
    payload = read_model_file(path)
    meta = read_meta(payload)
    model = build_model(meta.model)
    best = payload.get("best") if weights == "best" else None
    state = best["state_dict"] if best else payload["state_dict"]
    try:
        model.load_state_dict(fit_state_dict(model, state))
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"{os.fspath(path)!r}: the weights do not fit the model its configuration describes "
                         f"({first}); the file is damaged or was edited") from None
    model.to(device).eval()
    step = best["step"] if best else (payload.get("summary") or {}).get("steps")
    # the weights now live in `model`: the payload keeps the rest, not a second (and third) copy of them
    # and the optimizer's state (a ResNet-50 STARS model: 0.54 GB a copy)
    kept = {k: v for k, v in payload.items() if k not in ("state_dict", "best", "resume")}
    if payload.get("best"):
        kept["best"] = {k: v for k, v in payload["best"].items() if k != "state_dict"}
    return LoadedModel(model, meta, kept, "best" if best else "last", step)
