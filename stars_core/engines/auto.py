"""Which runtime segments a .stars model on the CPU: eager PyTorch, or the model's ONNX (fp32) or
int8 export run by ONNX Runtime, exported once and cached beside the model file.

`SegmentConfig.runtime`:
- torch: eager PyTorch (the reference; every branch, CUDA).
- onnx: the branch exported to ONNX, fp32 (about 1.2x PyTorch's speed on 2 cores in bench/RESULTS.md;
  the same map up to float rounding).
- int8: the branch quantised statically to int8 (about 3x; a few pixels change class where two
  classes are nearly tied), calibrated on tiles of the raster it first segments, deterministically.
- auto: on a CPU, int8 for one modality and onnx for the fused branch (int8 calibrates on one
  raster); PyTorch on CUDA, or where ONNX Runtime is not installed (said once).
The exported graphs run in OpenVINO where it is installed (on a CPU), else in ONNX Runtime
(`onnx_model.engine_for`; $STARS_ONNX_ENGINE chooses).

The export is keyed by the model file's SHA-256, the branch and the tile size, written beside the
model (`<model>.<sha16>.<branch>-<tile>[.int8w7].onnx`, else in the user cache folder when that folder
cannot be written), atomically, with a JSON note beside it: the runtime, the source model's hash,
what it was calibrated on, and its measured agreement with eager PyTorch (the share of equal
pixels on tiles of the same raster that the calibration did not use). Each run says which runtime
ran and that agreement.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import RUNTIMES
from ..errors import InputError
AGREEMENT_TILES = 9
INT8_WEIGHTS = "w7"  # the int8 export's recipe (7-bit weights, `onnx_export._quantise`): cached names, series records
ENGINE_NAMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
_HASHES: dict[tuple, str] = {}
_SESSIONS: dict[tuple, object] = {}


def onnx_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def choose(runtime: str, device_type: str, branch: str, have_path: bool) -> tuple[str, str | None]:
    """The runtime that will run (torch, onnx or int8) and, where auto fell back, why. None: torch."""
    if runtime is not None and runtime not in RUNTIMES:
        raise InputError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime in (None, "torch"):
        return "torch", None
    if runtime == "auto":
        if device_type != "cpu" or not have_path:
            return "torch", None
        if not onnx_available():
            return "torch", ("runtime auto: PyTorch, since ONNX Runtime is not installed (pip install onnx onnxruntime "
                             "gives the 2-3x faster int8 CPU path)")
        return ("onnx" if branch == "fused" else "int8"), None
    if not onnx_available():
        raise InputError(f"--runtime {runtime} needs ONNX Runtime and onnx: pip install onnx onnxruntime (or `make "
                         f"setup`, or the STARS dependency installer in QGIS); or use --runtime torch")
    if not have_path:
        raise InputError(f"--runtime {runtime} exports the model file: give its path, not a loaded model")
    if runtime == "int8" and branch == "fused":
        raise InputError("int8 calibrates one modality: segment the fused branch with --runtime onnx or torch")
    return runtime, None


def model_sha256(path: str | os.PathLike) -> str:
    path = os.path.abspath(path)
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _HASHES:
        from ..files import sha256

        _HASHES[key] = sha256(path)
    return _HASHES[key]


def cache_dir() -> Path:
    """The user cache folder for exports that cannot be written beside their model."""
    from ..files import user_cache_dir

    return user_cache_dir() / "runtimes"


def cached_path(model: str | os.PathLike, runtime: str, branch: str, tile: int, weights: str = "best") -> Path:
    """Where the export of `model` for `runtime` lives: beside the model if that folder is writable."""
    model = Path(model)
    which = ".last" if weights == "last" else ""
    recipe = f".int8{INT8_WEIGHTS}" if runtime == "int8" else ""  # 8-bit weights' exports (.int8) are not reused
    name = f"{model.stem}.{model_sha256(model)[:16]}{which}.{branch}-{tile}{recipe}.onnx"
    beside = model.resolve().parent / name
    if beside.is_file() or os.access(beside.parent, os.W_OK):
        return beside
    return cache_dir() / name


def fast_runner(torch_runner, runtime: str, branch: str, tile: int, raster: str | os.PathLike,
                note: Callable[[str], None]):
    """An `onnx_model.OnnxModel` of the cached export for `runtime` (exported now if missing, with
    its agreement measured on `raster`), and the line saying what runs."""
    loaded = torch_runner.loaded  # ".last" only names the last weights of a file that also holds its best
    weights = "last" if loaded.weights == "last" and loaded.payload.get("best") else "best"
    path = cached_path(torch_runner.path, runtime, branch, tile, weights)
    info_path = path.with_suffix(".json")
    if not (path.is_file() and info_path.is_file()):
        _export(torch_runner, runtime, branch, tile, raster, path, info_path, note)
    try:
        runner, info = _open_cached(path, info_path)
    except Exception as exc:  # a damaged file of the cache (cut short, edited): made again, once
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        note(f"the runtime's cached export {path} or its note {info_path.name} is damaged ({reason}); it is only a "
             f"cache (deleting it always makes a new export): removed, exporting again")
        _SESSIONS.clear()
        for f in (path, info_path):
            f.unlink(missing_ok=True)
        _export(torch_runner, runtime, branch, tile, raster, path, info_path, note)
        runner, info = _open_cached(path, info_path)
    share = info.get("agreement")
    engine = ENGINE_NAMES.get(runner.engine, runner.engine)
    measured = ENGINE_NAMES.get(info.get("engine", "onnxruntime"), "")
    said = (f"runtime {runtime}: {engine} on the CPU with {path.name}"
            + (f"; its map agrees with eager PyTorch on {100 * share:.2f} % of the pixels of {info['agreement_tiles']} "
               f"tiles of {info['measured_on']}" + (f" (measured with {measured})" if measured != engine else "")
               if share is not None else "")
            + " (--runtime torch for PyTorch itself)")
    return runner, said


def _open_cached(path: Path, info_path: Path):
    """The session of a cached export and its note (raises on a damaged file of either)."""
    from .onnx_model import OnnxModel, engine_for

    info = json.loads(info_path.read_text())
    if not isinstance(info, dict) or "runtime" not in info:
        raise ValueError(f"{info_path.name} is not an export note")
    key = (os.fspath(path), engine_for("cpu"))
    if key not in _SESSIONS:
        _SESSIONS.clear()
        _SESSIONS[key] = OnnxModel(path, "cpu", engine=key[1])
    return _SESSIONS[key], info


def _export(torch_runner, runtime: str, branch: str, tile: int, raster, path: Path, info_path: Path, note) -> None:
    from ..files import atomic_path
    from .onnx_export import export_onnx
    from .onnx_model import OnnxModel

    note(f"runtime {runtime}: exporting the {branch} branch to ONNX{' int8' if runtime == 'int8' else ''}, once for "
         f"this model file (to {path})")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp_graph:
            export_onnx(torch_runner.path, tmp_graph, branch, tile, int8=runtime == "int8",
                        calibrate=raster if runtime == "int8" else None, log=lambda m: None,
                        weights=torch_runner.loaded.weights, loaded=torch_runner.loaded)
            measured_with = OnnxModel(tmp_graph, "cpu")
            share, tiles = agreement(torch_runner, measured_with, branch, raster, tile)
            info = {"runtime": runtime, "engine": measured_with.engine, "branch": branch, "tile_size": tile,
                    "source_sha256": model_sha256(torch_runner.path), "source_name": Path(torch_runner.path).name,
                    "calibrated_on": os.fspath(raster) if runtime == "int8" else None,
                    "measured_on": Path(raster).name, "agreement": share, "agreement_tiles": tiles}
            with atomic_path(info_path) as tmp_info:
                Path(tmp_info).write_text(json.dumps(info, indent=1))
        # the graph it compiled is now the cached file: the run uses it rather than compiling it again
        measured_with.path = os.fspath(path)
        _SESSIONS.clear()
        _SESSIONS[(os.fspath(path), measured_with.engine)] = measured_with
    except OSError as exc:
        raise InputError(f"cannot write the {runtime} export at {path} ({exc.strerror or exc}); free some space or "
                         f"use --runtime torch") from None


def agreement(torch_runner, onnx_runner, branch: str, raster, tile: int,
              count: int = AGREEMENT_TILES) -> tuple[float | None, int]:
    """The share of valid pixels where the two runners pick the same class, on `count` tiles of
    `raster` placed between the calibration's tiles (so none of them calibrated the graph)."""
    from ..raster import open_raster, valid_mask
    from ..tiling import Tile

    if branch == "fused":
        return None, 0  # measured per modality; the fused branch needs both rasters
    stats = torch_runner.stats[0 if branch == "m1" else 1]
    equal = total = 0
    with open_raster(raster, "raster") as ds:
        size = min(tile, ds.height // 32 * 32, ds.width // 32 * 32)
        if size < 32:
            return None, 0
        per_side = max(1, math.isqrt(count))
        step_r, step_c = (ds.height - size) / per_side, (ds.width - size) / per_side
        tiles = 0
        for i in range(per_side):
            for j in range(per_side):
                r, c = int(step_r * (i + 0.5)), int(step_c * (j + 0.5))
                window = ((r, r + size), (c, c + size))
                x = ds.read(window=window)
                valid = valid_mask(ds, x, window)
                t = [Tile(r, c, size, size, 0, 0)]
                a = torch_runner.probabilities(branch, torch_runner.prepare(x, valid, stats)[None], None, None, t)
                b = onnx_runner.probabilities(branch, onnx_runner.prepare(x, valid, stats)[None], None, None, t)
                same = np.asarray(a).argmax(1)[0] == np.asarray(b).argmax(1)[0]
                equal += int(same[valid].sum())
                total += int(valid.sum())
                tiles += 1
    return (equal / total if total else None), tiles
