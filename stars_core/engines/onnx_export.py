"""Exporting one branch of a model file to ONNX, for segmentation without PyTorch (this toolbox with
ONNX Runtime, or Deepness in QGIS).

The graph takes raw band values divided by 255 (Deepness divides its input by 255; this toolbox does
the same), multiplies them back, puts NaN at the band mean, clips and normalises with the model
file's statistics, runs the branch and returns class probabilities (N, K, H, W). Height and width
are fixed at the export's tile size and K is fixed, as Deepness reads them (its tile size is the
input's last dimension, its class count the output's second); the batch is free. This toolbox's
runner tiles any raster into that size (padding the edges). The per-modality BatchNorm statistics
of the shared encoder are the branch's own (eval mode). `int8=True` quantises statically (QDQ, per
channel), calibrated on tiles of a raster of the branch's input, with 7-bit weights (the recipe
`auto.INT8_WEIGHTS` names).

Why 7 bits: a CPU without VNNI (AVX2, or AVX-512 before Cascade Lake; AMD before Zen 4) multiplies
uint8 activations by int8 weights in pairs summed in 16 bits, which saturate where both are large
(OpenVINO's "Saturation (overflow) issue" page; ONNX Runtime's `quantize_static` advises
`reduce_range` there). With 8-bit weights the demo model's int8 map on AVX2 differed from its map on
VNNI on 1.4 % of pixels; with 7-bit weights the two are the same pixels, on every x86 CPU, for the
same mIoU (bench/RESULTS.md). One export therefore serves every machine of a cluster or a shared
folder.

Compatibility (the contract is Deepness 0.6.5's `processing/models/model_base.py`, which caps
onnxruntime at 1.17): every value of the metadata is JSON; the keys Deepness's code reads
(`tile_size`, `seg_thresh`, `seg_small_segment`, `resolution` only where known) and the one its
documentation names (`tiles_size`); only the operator sets the graph uses are declared, at versions
onnxruntime 1.17 runs (ai.onnx <= 20, ai.onnx.ml <= 4, IR <= 9).
"""
from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..checkpoint import LoadedModel, load_model
from ..config import STRIDE
from ..files import atomic_path, check_outputs, sha256
from .onnx_model import INPUT_SCALE
from ..errors import InputError

OPSET = 17
OVERLAP_PERCENT = 25  # the segmentation default: a quarter of the tile
# The newest versions onnxruntime 1.17 runs (its compatibility table: ONNX 1.15, opset 20, ML opset 4,
# IR 9); Deepness 0.6.5 installs onnxruntime <= 1.17.0.
MAX_OPSETS = {"": 20, "ai.onnx": 20, "ai.onnx.ml": 4}
MAX_IR_VERSION = 9


class ExportedBranch(nn.Module):
    """Raw values / 255 in, class probabilities out: normalisation and the branch in one graph."""

    def __init__(self, loaded: LoadedModel, branch: str):
        super().__init__()
        self.model, self.branch = loaded.model, branch
        stats = {"m1": [loaded.stats[0]], "m2": [loaded.stats[1]], "fused": list(loaded.stats)}[branch]
        self.split = len(stats[0].names)

        def column(key: str) -> torch.Tensor:
            return torch.tensor([v for s in stats for v in getattr(s, key)], dtype=torch.float32)[None, :, None, None]

        for key in ("lo", "hi", "mean", "std"):
            self.register_buffer(key, column(key))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * INPUT_SCALE  # (N, C, H, W) raw band values
        x = torch.where(torch.isnan(x), self.mean.expand_as(x), x)
        x = (torch.minimum(torch.maximum(x, self.lo), self.hi) - self.mean) / self.std
        if self.branch == "m1":
            logits = self.model(x)
        elif self.branch == "m2":
            logits = self.model(x2=x)
        else:
            logits = self.model(x[:, : self.split], x[:, self.split:]).fused
        return torch.softmax(logits, dim=1)  # (N, K, H, W)


def metadata(loaded: LoadedModel, branch: str, tile: int, source: Path) -> dict[str, object]:
    """Deepness's keys (model_type, class_names, resolution in cm/px where the model has a CRS,
    tile_size as its code reads it and tiles_size as its documentation names it, tiles_overlap in
    percent, seg_thresh 0 and seg_small_segment 0 so that "Load default parameters" gives the STARS
    map unchanged, standardization: identity, since the graph normalises) and STARS's own."""
    from ..raster import metres_per_pixel

    import rasterio

    modality = {"m1": [0], "m2": [1], "fused": [0, 1]}[branch]
    bands = {k: (loaded.stats[i].to_dict() if i in modality else None) for i, k in enumerate(("m1", "m2"))}
    channels = sum(len(loaded.stats[i].names) for i in modality)
    resolution = None
    if loaded.crs:
        resolution = 100 * metres_per_pixel(rasterio.crs.CRS.from_user_input(loaded.crs), loaded.pixel_size)
    digest = sha256(source)
    deepness = {
        "model_type": "Segmentor",
        "class_names": {str(i): n for i, n in enumerate(loaded.classes.names)},
        **({"resolution": round(resolution, 3)} if resolution else {}),  # a number, or absent
        "tile_size": tile,
        "tiles_size": tile,
        "tiles_overlap": OVERLAP_PERCENT,
        "seg_thresh": 0.0,  # no probability threshold: every pixel keeps its most probable class
        "seg_small_segment": 0,  # no median filter: the map as STARS makes it (clean it to an MMU instead)
        "standardization_mean": [0.0] * channels,
        "standardization_std": [1.0] * channels,
    }
    return {
        **deepness,
        "stars_format": 2,  # 2: fixed tile size and class count
        "stars_classes": loaded.classes.to_dict(),
        "stars_bands": bands,
        "stars_modalities": list(loaded.modalities),
        "stars_input_modalities": [loaded.modalities[i] for i in modality],
        "stars_branch": branch,
        "stars_mode": loaded.config.mode,
        "stars_pixel_size": list(loaded.pixel_size),
        "stars_crs": loaded.crs,
        "stars_input_scale": INPUT_SCALE,
        "stars_source_sha256": digest,
        "stars_source_name": source.name,
    }


def export_onnx(model: str | os.PathLike, out: str | os.PathLike, branch: str = "m1", tile_size: int | None = None,
                int8: bool = False, calibrate: str | os.PathLike | None = None, calibration_tiles: int = 16,
                log: Callable[[str], None] = print, weights: str = "best",
                loaded: LoadedModel | None = None) -> Path:
    """Write `out` (.onnx) with one branch of the model file `model`; see the module docstring.
    `loaded`: the model already loaded from `model` (its `weights`), so that it is not loaded twice."""
    if branch not in ("m1", "m2", "fused"):
        raise InputError(f"branch must be m1, m2 or fused, got {branch!r}")
    import importlib.util

    if importlib.util.find_spec("onnx") is None:  # the metadata is written with it
        raise InputError("exporting to ONNX needs the onnx package: pip install onnx onnxruntime (or `make setup`)")
    if int8 and calibrate is None:
        raise InputError("--int8 needs --calibrate RASTER: a raster of the branch's input to calibrate the "
                         "quantisation on")
    check_outputs({"model file": model, "calibration raster": calibrate}, {"ONNX file": out})
    loaded = loaded if loaded is not None else load_model(model, "cpu", weights)
    if loaded.config.mode == "single" and branch != "m1":
        raise InputError("this model (mode 'single') has the m1 branch only; export --branch m1")
    tile = tile_size or loaded.chip_size
    if tile % STRIDE or tile < STRIDE:
        raise InputError(f"tile size must be a positive multiple of {STRIDE}, got {tile}")
    graph = ExportedBranch(loaded, branch).eval()
    channels = graph.mean.shape[1]
    meta = metadata(loaded, branch, tile, Path(model))
    with atomic_path(out) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer notes about the shape checks
            torch.onnx.export(graph, (torch.zeros(1, channels, tile, tile),), str(tmp), dynamo=False,
                              opset_version=OPSET, input_names=["input"], output_names=["probabilities"],
                              dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}})
        classes, stats = len(loaded.classes), loaded.stats
        del graph, loaded  # the calibration below needs only the graph file: this function's model copy goes
        gc.collect()
        if int8:
            _quantise(tmp, stats, branch, calibrate, tile, calibration_tiles, log)
        _write_metadata(tmp, meta, classes, tile)
    log(f"exported the {branch} branch ({', '.join(meta['stars_input_modalities'])} in, {classes} class "
        f"probabilities out{', int8' if int8 else ''}) to {out}")
    return Path(out)


def _write_metadata(path: Path, meta: dict, classes: int, tile: int) -> None:
    """The metadata, the output's fixed shape (batch, K, tile, tile), and only the operator sets the
    graph uses, at versions onnxruntime 1.17 runs (the quantiser declares ai.onnx.ml without using it)."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, json.dumps(value)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    for dim, value in zip(dims[1:], (classes, tile, tile)):
        dim.Clear()
        dim.dim_value = value
    used = {node.domain or "" for node in model.graph.node}
    kept = [op for op in model.opset_import if (op.domain or "") in used or (op.domain or "") in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    for op in kept:
        limit = MAX_OPSETS.get(op.domain or "")
        if limit is not None and op.version > limit:
            raise InputError(f"the exported graph needs operator set {op.domain or 'ai.onnx'} {op.version}, newer than "
                             f"onnxruntime 1.17 (Deepness) runs ({limit}); upgrade or downgrade the onnx packages")
    model.ir_version = min(model.ir_version, MAX_IR_VERSION)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@contextlib.contextmanager
def _lean_calibration():
    """Calibrate without the memory ONNX Runtime and glibc would otherwise keep.

    The calibrator runs a copy of the graph with a ReduceMin and a ReduceMax added on every tensor and
    all optimisations off, inserted before the tensor's first consumer. ONNX Runtime's default order of
    the nodes (a depth-first walk back from the graph's leaves, and each reduction is a leaf) ran many
    reductions long after the tensor they read, keeping those activations alive: 2.0 GB per
    512-pixel ResNet-50 tile. Its priority-based order (Kahn's, lowest node index first) runs both
    reductions as soon as their tensor exists: 0.4 GB, the plain graph's own working set. By default
    the session also allocates a memory pattern on top of its arena, and glibc keeps freed
    activations in its heap (its mmap threshold rises to the size of the blocks freed). So the
    session runs in the priority order without its pattern and arena and, on glibc, large blocks are
    mapped from and given back to the system. The ranges, so the int8 graph, are the same byte for
    byte (bench/RESULTS.md). ONNX Runtime offers no argument for these session options, so its
    calibrator's session factory is wrapped for the call (and left alone where it is not where this
    expects it).
    """
    from onnxruntime.quantization import calibrate

    base = getattr(calibrate, "CalibraterBase", None)
    original = getattr(base, "create_inference_session", None)
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)
    if original is not None:
        import onnxruntime

        def create_inference_session(self):
            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
            options.enable_mem_pattern = False
            options.enable_cpu_mem_arena = False
            order = getattr(getattr(onnxruntime, "ExecutionOrder", None), "PRIORITY_BASED", None)
            if order is not None:
                options.execution_order = order
            self.infer_session = onnxruntime.InferenceSession(self.augmented_model_path, sess_options=options,
                                                              providers=self.execution_providers)

        base.create_inference_session = create_inference_session
    try:
        yield
    finally:
        if original is not None:
            base.create_inference_session = original
        if libc is not None:  # the ceiling glibc's own moving threshold reaches on 64-bit systems
            libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
            libc.malloc_trim(0)


M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def _glibc():
    """The C library where it is glibc (Linux), else None."""
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def _quantise(path: Path, all_stats: tuple, branch: str, raster, tile: int, count: int, log) -> None:
    """Static int8 quantisation (QDQ, per-channel 7-bit weights: `reduce_range`, the same map with or
    without VNNI, module docstring) calibrated on tiles of `raster`."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .onnx_model import OnnxModel
    from ..raster import open_raster, valid_mask

    if branch == "fused":
        raise InputError("int8 export calibrates on one raster: export the m1 or m2 branch")
    stats = all_stats[0 if branch == "m1" else 1]
    samples = []
    with open_raster(raster, "calibration") as ds:
        if ds.count != len(stats.names):
            raise InputError(f"calibration raster {os.fspath(raster)!r} has {ds.count} band(s); the {branch} branch "
                             f"takes {len(stats.names)} ({', '.join(stats.names)})")
        size = min(tile, ds.height // STRIDE * STRIDE, ds.width // STRIDE * STRIDE)
        rng = np.random.default_rng(0)
        per_side = max(1, math.isqrt(count))
        for r in np.linspace(0, ds.height - size, per_side).astype(int):
            for c in np.linspace(0, ds.width - size, per_side).astype(int):
                window = ((int(r), int(r) + size), (int(c), int(c) + size))
                x = ds.read(window=window)
                samples.append(OnnxModel.prepare(x, valid_mask(ds, x, window), stats)[None])
        rng.shuffle(samples)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(samples)

        def get_next(self):
            item = next(self.items, None)
            return None if item is None else {"input": item}

    pre = path.with_name(path.stem + ".pre.onnx")
    quantised = path.with_name(path.stem + ".int8.onnx")
    try:
        quant_pre_process(str(path), str(pre), skip_symbolic_shape=True)
        with _lean_calibration():
            quantize_static(str(pre), str(quantised), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        os.replace(quantised, path)
    finally:
        for p in (pre, quantised):
            p.unlink(missing_ok=True)
    log(f"int8: calibrated on {len(samples)} tiles of {os.fspath(raster)}")
