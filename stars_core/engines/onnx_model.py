"""Segmenting with an exported model in ONNX Runtime: no PyTorch needed (`infer.segment` picks this
for .onnx files).

The exported graph (stars_core.engines.onnx_export) takes raw band values divided by 255, the scaling
Deepness applies to its input, and does the model file's clipping and normalisation itself; no-data
pixels are filled with the band's mean (what training saw for them). Its metadata carries the class
table, band statistics, modality, branch, pixel size and CRS, so nothing else is needed.
"""
from __future__ import annotations

import json
import os
import threading

import numpy as np

from ..bands import BandStats
from ..classes import ClassTable
from ..devices import check_device
from ..errors import InputError
from ..tiling import BlendRows, Tile, pad_reflect

INPUT_SCALE = 255.0  # the exported graph's input is raw values / 255 (Deepness's convention)
ENGINES = ("auto", "onnxruntime", "openvino")


def engine_for(device: str, engine: str | None = None) -> str:
    """Which engine runs an exported graph on `device` ("cpu" or "cuda"): `engine` or
    $STARS_ONNX_ENGINE if given;
    else OpenVINO on a CPU where it is installed (1.1-1.5x ONNX Runtime's int8 speed in
    bench/RESULTS.md), ONNX Runtime otherwise. OpenVINO runs an fp32 graph in f32 (asked: its
    default is bf16 on CPUs with it) and an int8 graph at its defaults."""
    import importlib.util

    engine = engine or os.environ.get("STARS_ONNX_ENGINE", "auto") or "auto"
    if engine not in ENGINES:
        raise InputError(f"STARS_ONNX_ENGINE must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        engine = "openvino" if device == "cpu" and importlib.util.find_spec("openvino") is not None else "onnxruntime"
    if engine == "openvino" and importlib.util.find_spec("openvino") is None:
        raise InputError("STARS_ONNX_ENGINE=openvino but OpenVINO is not installed: pip install openvino")
    return engine


MAX_REQUESTS = 4  # tiles in flight at most: each request holds its own activations (memory)
OPENVINO_HINT = "LATENCY"  # or "THROUGHPUT"; bench/pipeline_profile.py --hints compares the two


class OpenVinoSession:
    """An exported graph compiled by OpenVINO for the CPU, answering `session.run` as ONNX Runtime's
    session does (the runner's only call).

    The graph is reshaped to one tile per inference request (static where the export's tile size is
    fixed; as fast as the free batch in bench/engine_ab.py) and the tiles of a batch run as requests
    of one queue. `OPENVINO_HINT` LATENCY (the default) gives one request on every thread;
    THROUGHPUT splits the threads into streams that run `requests` tiles side by side (the batch the
    pipeline then feeds it): on 2 cores it tied with LATENCY inside the pipeline (0.60-0.63 against
    0.59-0.61 s per ResNet-50 tile, bench/RESULTS.md) and holds a second tile's activations, so it
    is not the default."""

    def __init__(self, path: str, threads: int | None):
        import openvino

        core = openvino.Core()
        model = core.read_model(path)
        # f32 for every float layer, int8 graphs included: OpenVINO's default on CPUs with bf16 (AVX-512
        # BF16, AMX) is bf16 for the layers between the int8 ones, whose results then depend on the
        # thread count (617 of 262,144 pixels moved between 1 and 2 threads on the test model); in f32
        # they do not, and the int8 layers stay int8 (bench/RESULTS.md, "One map whatever the threads")
        config = {"PERFORMANCE_HINT": OPENVINO_HINT, "INFERENCE_PRECISION_HINT": "f32"}
        self.quantised = any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        shape = model.inputs[0].get_partial_shape()
        model.reshape({model.inputs[0]: openvino.PartialShape([1, *list(shape)[1:]])})
        self.compiled = core.compile_model(model, "CPU", config)
        self.output = self.compiled.output(0)
        self.requests = max(1, min(MAX_REQUESTS, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))))
        self._queue = openvino.AsyncInferQueue(self.compiled, self.requests)
        self._results: dict[int, np.ndarray] = {}
        self._queue.set_callback(self._keep)
        self._lock = threading.Lock()  # one batch at a time: the queue and its results are shared

    def _keep(self, request, index: int) -> None:
        self._results[index] = request.get_tensor(self.output).data.copy()

    def run(self, _names, feed: dict) -> list[np.ndarray]:
        (x,) = feed.values()  # (B, C, H, W)
        with self._lock:
            self._results.clear()
            for i in range(x.shape[0]):
                self._queue.start_async({0: x[i:i + 1]}, i)
            self._queue.wait_all()
            return [np.concatenate([self._results[i] for i in range(x.shape[0])])]  # (B, K, H, W)


def onnxruntime_module():
    """onnxruntime, or one line saying how to get it."""
    try:
        import onnxruntime
    except ImportError:
        raise InputError("segmenting with a .onnx model needs ONNX Runtime: pip install onnxruntime (or, in QGIS, "
                         "the STARS dependency installer); PyTorch is not needed") from None
    return onnxruntime


class OnnxModel:
    """An exported STARS branch in an ONNX Runtime session, with what `infer.segment` asks of a model."""

    mode = "stars"

    def __init__(self, path: str | os.PathLike, device: str = "auto", threads: int | None = None,
                 session_options: dict | None = None, engine: str | None = None):
        """`session_options`: onnxruntime.SessionOptions attributes to set (the speed bench varies
        them, e.g. {"enable_cpu_mem_arena": False}). `engine`: see `engine_for` (OpenVINO runs the
        graph where chosen; ONNX Runtime still reads its metadata)."""
        ort = onnxruntime_module()
        check_device(device)
        path = self.path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"model file {path!r} not found")
        available = ort.get_available_providers()
        if device.startswith("cuda") and "CUDAExecutionProvider" not in available:
            raise InputError(f"device {device!r} was asked for but this ONNX Runtime has no CUDA provider "
                             f"(providers: {', '.join(available)}); use --device cpu or auto")
        providers = ["CPUExecutionProvider"]
        if device != "cpu" and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        engine = engine_for("cuda" if "CUDAExecutionProvider" in providers else "cpu", engine)
        options = ort.SessionOptions()
        options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if engine == "onnxruntime" else
                                            ort.GraphOptimizationLevel.ORT_DISABLE_ALL)  # (metadata only)
        if threads is None:
            from .. import threads as policy

            threads = policy.current()  # the toolbox's thread policy, when one is configured
        if threads:
            options.intra_op_num_threads = threads
        for key, value in (session_options or {}).items():
            setattr(options, key, value)
        try:
            self.session = ort.InferenceSession(path, options, providers=providers)
        except Exception as exc:  # ORT raises its own types for unreadable or foreign graphs
            raise InputError(f"{path!r} is not an ONNX model ONNX Runtime can load: {str(exc).splitlines()[0]}") from None
        self.meta = read_metadata(self.session, path)
        self.input_name = self.session.get_inputs()[0].name
        m = self.meta
        self.classes = ClassTable.from_dict(m["stars_classes"])
        self.stats = tuple(BandStats.from_dict(b) if b else None for b in (m["stars_bands"]["m1"], m["stars_bands"]["m2"]))
        self.modalities = tuple(m["stars_modalities"])
        self.branches = (m["stars_branch"],)
        self.mode = m.get("stars_mode", "stars")
        self.chip_size, self.pixel_size, self.crs = int(m.get("tile_size", m.get("tiles_size"))), tuple(m["stars_pixel_size"]), m["stars_crs"]
        # Exports since stars_format 2 take tiles of one fixed size (as Deepness needs): segmentation
        # uses that size, and pads a raster smaller than a tile up to it. Older exports are dynamic.
        h, w = self.session.get_inputs()[0].shape[-2:]
        self.fixed_tile = int(h) if isinstance(h, int) and isinstance(w, int) and h == w else None
        if self.fixed_tile is not None:
            self.chip_size = self.fixed_tile
        active = self.session.get_providers()[0]
        self.device_type = "cuda" if active.startswith("CUDA") else "cpu"
        self.device_name = f"onnxruntime {active.replace('ExecutionProvider', '')}"
        self.engine = engine
        self.parallel = None  # tiles the engine runs side by side: the batch it wants (None: 1)
        if engine == "openvino":
            self.session = OpenVinoSession(path, threads)  # ONNX Runtime's session is dropped
            self.device_name = "openvino CPU"
            self.parallel = self.session.requests

    @staticmethod
    def prepare(x: np.ndarray, valid: np.ndarray, stats: BandStats) -> np.ndarray:
        """Raw (C, H, W) values -> the graph's input: no data at the band mean, divided by 255."""
        mean = np.asarray(stats.mean, np.float32)[:, None, None]
        return (np.where(valid, x.astype(np.float32), mean) / INPUT_SCALE).astype(np.float32)

    def blend_rows(self, height: int, width: int, block: int, weights: np.ndarray, on_device: bool | None):
        return BlendRows(height, width, len(self.classes), block, weights)

    def probabilities(self, branch: str, x: np.ndarray, x2: np.ndarray | None, v2, tiles: list[Tile]) -> np.ndarray:
        """(B, C, h, w) graph inputs -> (B, K, h, w) class probabilities."""
        if branch == "fused":
            x = np.concatenate([x, x2], axis=1)
        h, w = x.shape[-2:]
        size = self.fixed_tile
        if size is not None and (h, w) != (size, size):  # a raster smaller than the graph's tile
            if h > size or w > size:
                raise InputError(f"tiles of {h} x {w} do not fit this export's fixed {size} x {size} input")
            x = np.stack([pad_reflect(t, size - h, size - w) for t in x])
            return self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0][:, :, :h, :w]
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0]


REQUIRED_KEYS = ("stars_classes", "stars_bands", "stars_modalities", "stars_branch", "stars_pixel_size", "stars_crs")


def read_metadata(session, path: str = "") -> dict:
    """The JSON values of an exported model's metadata, checked like a model file's keys: an
    InputError naming what is missing when it is not a complete STARS export."""
    raw = session.get_modelmeta().custom_metadata_map
    if "stars_classes" not in raw:
        raise InputError(f"{path!r} is an ONNX model but not a STARS export (no STARS metadata); export it with "
                         f"`stars export`")
    meta = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except ValueError:
            meta[key] = value  # another tool's plain-text entry; the STARS keys are checked below
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if not any(k in meta for k in ("tile_size", "tiles_size")):
        missing.append("tile_size")
    bands = meta.get("stars_bands")
    if isinstance(bands, dict) and not bands.get("m1") and not bands.get("m2"):
        missing.append("stars_bands.m1/m2")
    if missing:
        raise InputError(f"{path!r} is an incomplete STARS export: its metadata lacks {', '.join(missing)} (edited, "
                         f"or written by another tool); export the model file again with `stars export`")
    return meta
