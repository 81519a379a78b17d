"""An exported model as Deepness 0.6.5 (PUTvision/qgis-plugin-deepness) reads it when a user loads
it in its dock widget: the contract is its `processing/models/model_base.py` (input shape, metadata
getters, each parsed with json.loads and cast as it casts them), `deepness_dockwidget.py` (the tile
size spin box takes the input's last dimension, "Load default parameters" reads the metadata) and
`map_processor_segmentation.py` (the probability threshold, then argmax). Deepness itself is not
imported: these helpers do what its code does, line for line, on our file. The operator sets are
checked against what onnxruntime 1.17 runs (Deepness's installer caps it at 1.17.0)."""
import ast
import json

import numpy as np
import pytest
import rasterio

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from stars_core.checkpoint import load_model  # noqa: E402
from stars_core.config import SegmentConfig  # noqa: E402
from stars_core.segmentation.infer import segment  # noqa: E402
from stars_core.engines.onnx_export import export_onnx  # noqa: E402
from stars_core.errors import InputError  # noqa: E402
from tests.core.helpers import rewrite  # noqa: E402

QUIET = {"log": lambda *_: None}
# onnxruntime 1.17's compatibility table (onnxruntime.ai, "ONNX opset support"): ONNX 1.15, opset 20,
# ML opset 4, IR version 9.
ORT_117 = {"": 20, "ai.onnx": 20, "ai.onnx.ml": 4, "com.microsoft": 1}
ORT_117_IR = 9


class DeepnessModel:
    """What Deepness 0.6.5's ModelBase and dock widget take from an .onnx file."""

    def __init__(self, path):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(str(path), options=options, providers=["CPUExecutionProvider"])
        inputs = self.sess.get_inputs()
        assert len(inputs) == 1, "ONNX model: unsupported number of inputs"
        self.input_shape = inputs[0].shape
        self.input_name = inputs[0].name
        self.outputs_layers = self.sess.get_outputs()
        self.meta = self.sess.get_modelmeta().custom_metadata_map

    def _get(self, name, cast):
        return cast(json.loads(self.meta[name])) if name in self.meta else None

    # the dock widget: spinBox_tileSize_px.setValue(input_0_shape[-1]) takes an int
    def tile_size_from_shape(self):
        return self.input_shape[-1]

    def number_of_channels(self):
        return self.input_shape[-3]

    def model_batch_size(self):
        bs = self.input_shape[0]
        return None if isinstance(bs, str) else bs

    def number_of_output_channels(self):  # segmentor.py: ls[-3] of a 4-D output, 1 becomes 2
        ls = self.outputs_layers[0].shape
        return 2 if len(ls) == 3 or ls[-3] == 1 else ls[-3]

    def model_type(self):
        return str(json.loads(self.meta["model_type"])).capitalize() if "model_type" in self.meta else None

    def class_names(self):
        txt = self.meta["class_names"]
        try:
            names = json.loads(txt)
        except json.decoder.JSONDecodeError:
            names = ast.literal_eval(txt)
        if isinstance(names, dict):
            names = [names]
        out = []
        for cn in names:
            ordered = sorted(cn.items(), key=lambda kv: int(kv[0]))
            assert [int(k) for k, _ in ordered] == list(range(len(ordered))), "class names not consecutive"
            out.append([v for _, v in ordered])
        return out

    def default_parameters(self):
        """What "Load default parameters" sets (None: left as it was)."""
        return {"resolution": self._get("resolution", float), "tile_size": self._get("tile_size", int),
                "tiles_overlap": self._get("tiles_overlap", int), "seg_thresh": self._get("seg_thresh", float),
                "seg_small_segment": self._get("seg_small_segment", int)}

    def standardization(self):
        channels = self.input_shape[-3]
        if "standardization_mean" in self.meta and "standardization_std" in self.meta:
            return ([float(x) for x in json.loads(self.meta["standardization_mean"])],
                    [float(x) for x in json.loads(self.meta["standardization_std"])])
        return [0.0] * channels, [1.0] * channels

    def classify(self, tile_hwc: np.ndarray, threshold: float) -> np.ndarray:
        """One tile as Deepness processes it: /255, standardise, NCHW, run, threshold, argmax + 1."""
        mean, std = self.standardization()
        x = np.float32(tile_hwc[None] * (1.0 / 255.0))
        x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        x = np.transpose(x, (0, 3, 1, 2))
        result = self.sess.run(None, {self.input_name: x})[0]
        result[result < threshold] = 0.0
        return np.argmax(result, axis=1)[0] + 1


@pytest.fixture
def exports(onnx_exports):
    return onnx_exports


@pytest.mark.parametrize("name", ["m1", "m2", "fused", "m1-int8", "m2-int8"])
def test_deepness_loads_the_export_as_a_user_clicks_it(trained_model, exports, name):
    loaded = load_model(trained_model)
    model = DeepnessModel(exports[name])
    tile = model.tile_size_from_shape()
    assert isinstance(tile, int) and tile == loaded.chip_size and model.input_shape[-2] == tile  # square, an int
    bands = {"m1": 2, "m2": 4, "fused": 6}[name.split("-")[0]]
    assert model.number_of_channels() == bands and model.model_batch_size() is None  # batch free
    classes = model.number_of_output_channels()
    assert isinstance(classes, int) and classes == len(loaded.classes)
    assert model.outputs_layers[0].shape[1:] == [classes, tile, tile]
    assert model.model_type() == "Segmentor"  # a ModelType Deepness knows
    assert model.class_names() == [list(loaded.classes.names)]
    defaults = model.default_parameters()
    assert defaults["tile_size"] == tile and defaults["tiles_overlap"] == 25
    assert defaults["seg_thresh"] == 0.0 and defaults["seg_small_segment"] == 0  # nothing overridden or filtered
    assert isinstance(defaults["resolution"], float) and defaults["resolution"] == pytest.approx(200.0)  # cm/px
    mean, std = model.standardization()
    assert len(mean) == len(std) == bands
    for key, value in model.meta.items():  # every value parses as Deepness parses them
        json.loads(value)


@pytest.mark.parametrize("name", ["m1", "m2", "fused", "m1-int8", "m2-int8"])
def test_the_operator_sets_are_ones_onnxruntime_1_17_runs(exports, name):
    model = onnx.load(str(exports[name]))
    declared = {op.domain or "": op.version for op in model.opset_import}
    used = {node.domain or "" for node in model.graph.node}
    assert used <= set(declared) and set(declared) - {"", "ai.onnx"} <= used, (declared, used)  # none unused
    for domain, version in declared.items():
        assert domain in ORT_117 and version <= ORT_117[domain], (domain, version)
    assert model.ir_version <= ORT_117_IR


def test_a_model_without_a_crs_has_no_resolution_key(trained_model, tmp_path):
    import torch

    payload = torch.load(trained_model, weights_only=True)
    payload["crs"] = None
    torch.save(payload, tmp_path / "nocrs.stars")
    model = DeepnessModel(export_onnx(tmp_path / "nocrs.stars", tmp_path / "nocrs.onnx", "m1", **QUIET))
    assert "resolution" not in model.meta and model.default_parameters()["resolution"] is None


def test_deepness_maps_a_tile_as_stars_segment_does(trained_model, exports, demo_scene, tmp_path):
    """One tile-sized raster: Deepness (no blending, threshold from the metadata, and also its 0.5
    default) gives the class `stars segment` gives, from the .onnx and from the .stars file."""
    with rasterio.open(demo_scene["sar"]) as src:
        data = src.read(window=((64, 192), (64, 192)))
        transform = src.window_transform(((64, 192), (64, 192)))
    tile = rewrite(demo_scene["sar"], tmp_path / "tile.tif", data=data, width=128, height=128, transform=transform)
    cfg = SegmentConfig(device="cpu")
    onnx_map = segment(exports["m1"], tile, tmp_path / "onnx.tif", cfg)
    torch_map = segment(trained_model, tile, tmp_path / "torch.tif", SegmentConfig(tile_size=128, device="cpu"))
    with rasterio.open(onnx_map.path) as a, rasterio.open(torch_map.path) as b:
        ours, theirs = a.read(1), b.read(1)
    model = DeepnessModel(exports["m1"])
    values = np.asarray(load_model(trained_model).classes.values)
    deepness = values[model.classify(np.transpose(data, (1, 2, 0)), model.default_parameters()["seg_thresh"]) - 1]
    valid = ours != 255  # Deepness has no no-data: it classifies no-data pixels too
    assert valid.mean() > 0.9
    assert (deepness[valid] == ours[valid]).mean() == 1.0
    assert (ours[valid] == theirs[valid]).mean() >= 0.999


def test_a_raster_smaller_than_the_fixed_tile_and_a_wrong_tile_size(exports, trained_model, demo_scene, tmp_path):
    with rasterio.open(demo_scene["sar"]) as src:
        data = src.read(window=((0, 80), (0, 100)))
        transform = src.transform
    small = rewrite(demo_scene["sar"], tmp_path / "small.tif", data=data, width=100, height=80, transform=transform)
    res = segment(exports["m1"], small, tmp_path / "small_map.tif", SegmentConfig(device="cpu"))
    assert (res.width, res.height, res.tiles) == (100, 80, 1)
    with pytest.raises(InputError, match="takes tiles of 128 x 128 pixels.*--tile-size 64"):
        segment(exports["m1"], demo_scene["sar"], tmp_path / "x.tif", SegmentConfig(tile_size=64, device="cpu"))
