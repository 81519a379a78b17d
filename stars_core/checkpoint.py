"""The model file: everything segmentation needs, in one file that loads with weights_only=True.

Layout (plain types and tensors only):
    format, format_version, model_config, loss_config, train_config, state_dict,
    classes {values, names, colors}, modalities [m1 name, m2 name],
    bands {m1: BandStats dict, m2: BandStats dict}, chip_size, pixel_size [x, y], crs,
    summary {...}, resume {step, optimizer, rng...} (only while training can go on).
Writes go to a temporary file in the same folder, then an atomic rename.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from .classes import ClassTable
from .config import StarsConfig
from .data import BandStats
from .files import atomic_path
from .models import build_model

FORMAT = "stars-model"
FORMAT_VERSION = 2  # 2: decoder_norm in model_config (format 1 files used GroupNorm)


def save_atomic(payload: dict, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_model_file(path: str | os.PathLike) -> dict:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path!r} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or damaged files
        raise ValueError(f"{path!r} is not a readable STARS model file: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a STARS model file (made by `stars train`)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path!r} was written by a newer STARS (format {payload['format_version']}); upgrade")
    return payload


@dataclass
class LoadedModel:
    model: torch.nn.Module
    config: StarsConfig
    classes: ClassTable
    stats: tuple[BandStats, BandStats]
    payload: dict[str, Any]

    @property
    def chip_size(self) -> int:
        return int(self.payload["chip_size"])

    @property
    def pixel_size(self) -> tuple[float, float]:
        return tuple(self.payload["pixel_size"])

    @property
    def modalities(self) -> tuple[str, str]:
        """Names of modality 1 and 2 (e.g. SAR, optical)."""
        return tuple(self.payload.get("modalities", ("modality 1", "modality 2")))


def model_config(payload: dict) -> StarsConfig:
    d = dict(payload["model_config"])
    if payload.get("format_version", 1) < 2:
        d.setdefault("decoder_norm", "group")
    return StarsConfig.from_dict(d)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model from its file alone, in eval mode on `device`."""
    payload = read_model_file(path)
    cfg = model_config(payload)
    model = build_model(cfg)
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    stats = (BandStats.from_dict(payload["bands"]["m1"]), BandStats.from_dict(payload["bands"]["m2"]))
    return LoadedModel(model, cfg, ClassTable.from_dict(payload["classes"]), stats, payload)


_CACHE: dict[tuple, LoadedModel] = {}


def load_model_cached(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """`load_model`, remembered by (path, modification time, size, device): batch runs over many
    rasters (QGIS batch mode, map sheets) read a model file once. Only the latest model is kept."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_mtime_ns, st.st_size, str(device))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_model(path, device)
    return _CACHE[key]
