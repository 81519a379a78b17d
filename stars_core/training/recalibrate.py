"""Re-estimating the shared encoder's per-modality BatchNorm statistics from data.

No weight changes: only the running means and variances of the shared body's BatchNorms
(`models.norm.ModalityBatchNorm2d`) are recomputed, as a cumulative average over chips of each
modality passed through that modality's stem. Uses: model files of format 2 (one mixed set of
statistics), and users who want statistics from their own area or sensor.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from rasterio.windows import Window

from ..bands import BandStats, normalise
from ..checkpoint import resume_state, fit_state_dict, read_meta, read_model_file, save_model_file
from ..config import STRIDE
from ..files import check_outputs
from ..segmentation.infer import band_order
from ..models import build_model
from ..models.norm import modality_norms, use_modality
from ..raster import open_raster, valid_mask
from ..devices import resolve_device
from ..errors import InputError

MIN_VALID = 0.5  # least share of valid pixels in a recalibration chip


@torch.no_grad()
def recalibrate_model(model: torch.nn.Module, batches: Iterable[tuple[int, torch.Tensor]]) -> dict[int, int]:
    """Recompute the shared body's statistics of each modality that `batches` ((modality, normalised
    (B, C, H, W) input) pairs) holds; the other modality's statistics stay. A model with one mixed
    set becomes per-modality (both sets start from the mixed one). Returns chips seen per modality."""
    norms = modality_norms(getattr(model, "shared", model))
    if not norms:
        raise InputError("this model has no shared encoder to recalibrate (a baseline: mode single or concat)")
    was_training = model.training
    model.eval()
    for n in norms:
        if not n.per_modality:
            n.running_mean_m2.copy_(n.running_mean), n.running_var_m2.copy_(n.running_var)
            n.per_modality = True
    momenta = [n.momentum for n in norms]
    seen: dict[int, int] = {}
    try:
        for modality, x in batches:
            if modality not in seen:  # first batch of this modality: forget its old statistics
                for n in norms:
                    mean, var, tracked = n.statistics(modality)
                    mean.zero_(), var.fill_(1.0), tracked.zero_()
                    n.momentum = None  # cumulative average over every chip
                seen[modality] = 0
            for n in norms:
                n.train()
            stem = model.stem_m1 if modality == 1 else model.stem_m2
            with use_modality(model.shared, modality):
                model.shared(stem(x))
            seen[modality] += x.shape[0]
    finally:
        for n, m in zip(norms, momenta):
            n.momentum = m
        model.train(was_training)
    return seen


def raster_chips(paths: Sequence[str], stats: BandStats, role: str, chip: int, count: int, seed: int = 0,
                 log: Callable[[str], None] = print) -> Iterator[np.ndarray]:
    """Up to `count` normalised (C, chip, chip) chips drawn at random over the rasters (equal shares),
    each at least half valid."""
    rng = np.random.default_rng(seed)
    share = -(-count // len(paths))
    for path in paths:
        with open_raster(path, role) as ds:
            order = band_order(ds, stats, role, os.fspath(path), log)
            size = min(chip, ds.height // STRIDE * STRIDE, ds.width // STRIDE * STRIDE)
            if size < STRIDE:
                raise InputError(f"{role} raster {path!r} is smaller than {STRIDE} x {STRIDE} pixels")
            found = 0
            for _ in range(share * 20):
                r, c = int(rng.integers(ds.height - size + 1)), int(rng.integers(ds.width - size + 1))
                window = Window(c, r, size, size)
                x = ds.read(order, window=window)
                valid = valid_mask(ds, x, window)
                if valid.mean() >= MIN_VALID:
                    yield normalise(x, valid, stats)
                    found += 1
                    if found == share:
                        break
            if found == 0:
                raise InputError(f"{role} raster {path!r} has no {size} x {size} window that is at least "
                                 f"{MIN_VALID:.0%} valid data")


def _batched(modality: int, chips: Iterable[np.ndarray], batch: int, device) -> Iterator[tuple[int, torch.Tensor]]:
    buffer: list[np.ndarray] = []
    for chip in chips:
        buffer.append(chip)
        if len(buffer) == batch:
            yield modality, torch.from_numpy(np.stack(buffer)).to(device)
            buffer = []
    if buffer:
        yield modality, torch.from_numpy(np.stack(buffer)).to(device)


def recalibrate_file(model_path: str | os.PathLike, m1: Sequence[str] = (), m2: Sequence[str] = (),
                     out: str | os.PathLike | None = None, chips: int = 64, device: str = "auto", seed: int = 0,
                     log: Callable[[str], None] = print) -> Path:
    """Recalibrate a model file from rasters of modality 1 and/or 2 and write it to `out` (default:
    in place, atomically). Only the shared body's statistics change; the file becomes format 3."""
    if not m1 and not m2:
        raise InputError("give at least one raster to recalibrate from (--m1 for SAR/DSM, --m2 for optical)")
    if chips < 1:
        raise InputError(f"chips must be at least 1, got {chips}")
    check_outputs({**{f"modality-1 raster {p}": p for p in m1}, **{f"modality-2 raster {p}": p for p in m2}},
                  {"recalibrated model file": out if out is not None else model_path})
    payload = read_model_file(model_path)
    meta = read_meta(payload)
    if meta.model.mode != "stars":
        raise InputError(f"{os.fspath(model_path)!r} is a baseline (mode {meta.model.mode}): it has no shared "
                         f"encoder whose statistics could mix modalities")
    dev = resolve_device(device)
    model = build_model(meta.model)
    model.load_state_dict(fit_state_dict(model, payload["state_dict"]))
    model.to(dev)
    batches = []
    for modality, paths in ((1, m1), (2, m2)):
        if paths:
            role = meta.modalities[modality - 1]
            source = raster_chips(paths, meta.stats[modality - 1], role, meta.chip_size, chips, seed, log)
            batches.append(_batched(modality, source, meta.train.batch_size, dev))
    seen = recalibrate_model(model, (b for gen in batches for b in gen))
    for modality, n in sorted(seen.items()):
        log(f"{meta.modalities[modality - 1]}: shared-encoder statistics from {n} chips")
    meta = dataclasses.replace(meta, model=dataclasses.replace(meta.model, shared_norm="per_modality"))
    summary = dict(payload.get("summary") or {})
    summary["recalibration"] = {"m1": [os.fspath(p) for p in m1], "m2": [os.fspath(p) for p in m2],
                                "chips": {str(k): v for k, v in seen.items()}}
    resume = resume_state(payload)
    history = resume.history if resume is not None else list(payload.get("history", []))
    target = Path(out) if out is not None else Path(model_path)
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    save_model_file(target, meta, state, summary, history, resume, payload.get("best"))  # best: as it was
    return target
