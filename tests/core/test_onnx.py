"""ONNX export and segmentation with ONNX Runtime: the graph matches the PyTorch branch, the
metadata round-trips, maps match the .stars model's, and the ONNX path needs no PyTorch."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from stars_core.checkpoint import load_model  # noqa: E402
from stars_core.config import SegmentConfig  # noqa: E402
from stars_core.segmentation.infer import segment  # noqa: E402
from stars_core.models.norm import modality_norms  # noqa: E402
from stars_core.engines.onnx_export import export_onnx  # noqa: E402
from stars_core.engines.onnx_model import INPUT_SCALE, OnnxModel  # noqa: E402
from stars_core.errors import InputError  # noqa: E402

QUIET = {"log": lambda *_: None}


@pytest.fixture
def exported(onnx_exports):
    return onnx_exports


def _torch_probs(loaded, branch, raw1, raw2=None):
    def norm(raw, stats):
        x = torch.from_numpy(raw.copy())
        lo, hi, mean, std = (torch.tensor(getattr(stats, k))[None, :, None, None] for k in ("lo", "hi", "mean", "std"))
        x = torch.where(torch.isnan(x), mean, x)
        return (torch.minimum(torch.maximum(x, lo), hi) - mean) / std

    with torch.no_grad():
        if branch == "m1":
            logits = loaded.model(norm(raw1, loaded.stats[0]))
        elif branch == "m2":
            logits = loaded.model(x2=norm(raw1, loaded.stats[1]))
        else:
            logits = loaded.model(norm(raw1, loaded.stats[0]), norm(raw2, loaded.stats[1])).fused
        return torch.softmax(logits, 1).numpy()


@pytest.mark.parametrize("branch", ["m1", "m2", "fused"])
def test_the_graph_matches_the_pytorch_branch(trained_model, exported, branch):
    loaded = load_model(trained_model)
    onnx = OnnxModel(exported[branch], "cpu")
    rng = np.random.default_rng(0)
    assert onnx.fixed_tile == loaded.chip_size == 128
    for shape in ((1, 128, 128), (3, 128, 128)):  # dynamic batch, fixed tile
        b, h, w = shape
        sar = rng.normal(-14, 5, (b, 2, h, w)).astype(np.float32)  # real-valued dB, some beyond the clip range
        sar[0, 0, :3, :3] = np.nan  # no data
        opt = rng.uniform(0, 4000, (b, 4, h, w)).astype(np.float32)
        first = opt if branch == "m2" else sar
        x = np.concatenate([sar, opt], 1) if branch == "fused" else first
        got = onnx.session.run(None, {"input": x / INPUT_SCALE})[0]
        want = _torch_probs(loaded, branch, first, opt)
        assert np.abs(got - want).max() < 1e-4
        assert (got.argmax(1) == want.argmax(1)).mean() >= 0.999


def test_metadata_round_trips(trained_model, exported):
    loaded = load_model(trained_model)
    onnx = OnnxModel(exported["m1"], "cpu")
    m = onnx.meta
    assert m["model_type"] == "Segmentor" and m["tile_size"] == m["tiles_size"] == loaded.chip_size
    assert m["tiles_overlap"] == 25 and m["seg_thresh"] == 0 and m["seg_small_segment"] == 0
    assert m["class_names"] == {str(i): n for i, n in enumerate(loaded.classes.names)}
    assert m["resolution"] == pytest.approx(200.0)  # 2 m pixels, in cm
    assert onnx.classes == loaded.classes and onnx.stats[0] == loaded.stats[0] and onnx.stats[1] is None
    assert m["stars_branch"] == "m1" and m["stars_input_modalities"] == ["SAR"]
    assert len(m["stars_source_sha256"]) == 64 and m["standardization_std"] == [1.0, 1.0]


def test_the_branch_exports_its_own_batchnorm_statistics(trained_model, tmp_path):
    loaded = load_model(trained_model)
    for n in modality_norms(loaded.model.shared):
        n.running_mean_m2.add_(3.0)  # make the optical statistics very different from SAR's
    saved = tmp_path / "changed.stars"
    payload = torch.load(trained_model, weights_only=True)
    payload["state_dict"] = loaded.model.state_dict()
    torch.save(payload, saved)
    m1, m2 = export_onnx(saved, tmp_path / "m1.onnx", "m1", **QUIET), export_onnx(saved, tmp_path / "m2.onnx", "m2", **QUIET)
    rng = np.random.default_rng(1)
    sar = rng.normal(-14, 5, (1, 2, 128, 128)).astype(np.float32)
    opt = rng.uniform(0, 4000, (1, 4, 128, 128)).astype(np.float32)
    assert np.abs(OnnxModel(m1, "cpu").session.run(None, {"input": sar / INPUT_SCALE})[0]
                  - _torch_probs(loaded, "m1", sar)).max() < 1e-4
    assert np.abs(OnnxModel(m2, "cpu").session.run(None, {"input": opt / INPUT_SCALE})[0]
                  - _torch_probs(loaded, "m2", opt)).max() < 1e-4


def test_segmenting_with_onnx_gives_the_stars_map(trained_model, exported, demo_scene, tmp_path):
    cfg = SegmentConfig(tile_size=128, overlap=32, device="cpu")
    a = segment(exported["m1"], demo_scene["sar"], tmp_path / "onnx.tif", cfg)
    b = segment(trained_model, demo_scene["sar"], tmp_path / "torch.tif", cfg)
    with rasterio.open(a.path) as x, rasterio.open(b.path) as y:
        assert (x.read(1) == y.read(1)).mean() >= 0.999
        assert x.colormap(1) == y.colormap(1) and x.tags(1)["STARS_CLASSES"] == y.tags(1)["STARS_CLASSES"]
    assert a.device.startswith(("onnxruntime", "openvino")) and (tmp_path / "onnx.qml").is_file()
    fused = segment(exported["fused"], demo_scene["sar"], tmp_path / "fused.tif", cfg, with_m2=demo_scene["optical"])
    assert fused.branch == "fused"
    with pytest.raises(InputError, match="holds the m1 branch only"):
        segment(exported["m1"], demo_scene["sar"], tmp_path / "x.tif", cfg, with_m2=demo_scene["optical"])


def test_the_onnx_path_imports_no_torch(exported, demo_scene, tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"  # importing torch now fails
            "from stars_core.cli import main\n"
            f"code = main(['segment', {str(exported['m1'])!r}, {str(demo_scene['sar'])!r}, {str(tmp_path / 'm.tif')!r}, "
            "'--device', 'cpu'])\n"
            "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
            "sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-1500:]
    assert (tmp_path / "m.tif").is_file()


def test_int8_export_runs_and_keeps_the_metadata(trained_model, exported, demo_scene, tmp_path):
    out = exported["m1-int8"]
    onnx = OnnxModel(out, "cpu")
    assert onnx.meta["stars_branch"] == "m1" and any(n.op_type == "QuantizeLinear" for n in _nodes(out))
    res = segment(onnx, demo_scene["sar"], tmp_path / "int8.tif", SegmentConfig(tile_size=128, device="cpu"))
    assert sum(res.class_pixels.values()) > 0
    with pytest.raises(InputError, match="--int8 needs --calibrate"):
        export_onnx(trained_model, tmp_path / "x.onnx", "m1", int8=True, **QUIET)


@pytest.mark.parametrize("which", ["m1-int8", "m2-int8"])
def test_int8_weights_are_7_bit_so_no_cpu_saturates_a_pair_of_products(exported, which):
    """Without VNNI, int8 convolutions sum two uint8 x int8 products in 16 bits: weights of at most 64
    keep 2 x 255 x 64 under 32,767, so every CPU computes the same map (onnx_export's docstring)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(exported[which])).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    weights = [inits[n.input[0]] for n in graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].dtype == np.int8]
    assert len(weights) >= 10  # every convolution's weights
    largest = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
    assert largest == 64 and 2 * 255 * largest <= 32767  # 7-bit range, all of it used


def _vnni() -> bool:
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as cpu
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as cpu
    return bool(cpu.get("AVX512VNNI") or cpu.get("AVX512_CLX") or cpu.get("AVX_VNNI"))


@pytest.mark.skipif(not _vnni(), reason="compares this CPU's VNNI kernels with its AVX2 ones: needs VNNI")
def test_the_int8_map_is_the_same_with_and_without_vnni(exported, demo_scene, tmp_path):
    """OpenVINO's AVX2 kernels (oneDNN's ONEDNN_MAX_CPU_ISA, as a CPU without VNNI runs them) give
    the same map and probabilities as its VNNI ones: with 8-bit weights the sums saturate there."""
    pytest.importorskip("openvino")
    maps = []
    for isa in ("", "AVX2"):
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
        env.update({"STARS_ONNX_ENGINE": "openvino", **({"ONEDNN_MAX_CPU_ISA": isa} if isa else {})})
        out = tmp_path / f"map{isa}.tif"
        cmd = [sys.executable, "-m", "stars_core.cli", "segment", str(exported["m1-int8"]), str(demo_scene["sar"]),
               str(out), "--probabilities", str(tmp_path / f"p{isa}.tif")]
        result = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr[-1500:]
        with rasterio.open(out) as m, rasterio.open(tmp_path / f"p{isa}.tif") as p:
            maps.append((m.read(), p.read()))
    assert np.array_equal(maps[0][0], maps[1][0]) and np.array_equal(maps[0][1], maps[1][1], equal_nan=True)


def test_int8_calibration_keeps_no_memory_pattern_and_gives_the_calibrator_back(trained_model, demo_scene, tmp_path,
                                                                                  monkeypatch):
    """The calibration session runs without ONNX Runtime's memory pattern and arena (they held GBs for
    a ResNet-50), and ONNX Runtime's own session factory is back afterwards."""
    from onnxruntime.quantization import calibrate

    factory = calibrate.CalibraterBase.create_inference_session
    seen = []
    collect = calibrate.MinMaxCalibrater.collect_data

    def spy(self, reader):
        options = self.infer_session.get_session_options()
        seen.append((options.enable_mem_pattern, options.enable_cpu_mem_arena))
        return collect(self, reader)

    monkeypatch.setattr(calibrate.MinMaxCalibrater, "collect_data", spy)
    export_onnx(trained_model, tmp_path / "q.onnx", "m1", tile_size=128, int8=True, calibrate=demo_scene["sar"],
                calibration_tiles=1, **QUIET)
    assert seen == [(False, False)]
    assert calibrate.CalibraterBase.create_inference_session is factory
    assert any(n.op_type == "QuantizeLinear" for n in _nodes(tmp_path / "q.onnx"))


def _nodes(path):
    import onnx

    return onnx.load(str(path)).graph.node


def test_export_refuses_to_overwrite_its_model(trained_model, tmp_path):
    with pytest.raises(InputError, match="is the model file"):
        export_onnx(trained_model, trained_model, "m1", **QUIET)


def test_openvino_runs_the_tiles_of_a_batch_side_by_side_in_order(exported, demo_scene, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    from stars_core.engines import onnx_model

    monkeypatch.setattr(onnx_model, "OPENVINO_HINT", "THROUGHPUT")  # streams: as many tiles at once as cores
    ov = OnnxModel(exported["m1"], "cpu", threads=2, engine="openvino")  # 2 streams of 1 thread on 2 cores
    ort = OnnxModel(exported["m1"], "cpu", engine="onnxruntime")
    assert ov.parallel == ov.session.requests >= 2 and ort.parallel is None
    rng = np.random.default_rng(2)
    x = rng.normal(-14, 5, (5, 2, 128, 128)).astype(np.float32) / INPUT_SCALE  # more tiles than requests
    x[3] += 0.05  # no two tiles alike: an answer in the wrong place would show
    together = ov.session.run(None, {"input": x})[0]
    alone = np.concatenate([ov.session.run(None, {"input": x[i:i + 1]})[0] for i in range(5)])
    assert together.shape == (5, len(ov.classes), 128, 128) and np.array_equal(together, alone)
    assert np.abs(together - ort.session.run(None, {"input": x})[0]).max() < 1e-4  # fp32 graph kept in f32
    sizes = []
    run = ov.probabilities
    monkeypatch.setattr(ov, "probabilities", lambda *a: sizes.append(len(a[1])) or run(*a))
    res = segment(ov, demo_scene["sar"], tmp_path / "ov.tif", SegmentConfig(tile_size=128, overlap=32, device="cpu"))
    assert max(sizes) == ov.parallel and sum(sizes) == res.tiles  # the pipeline feeds it as many tiles as it runs
    ref = segment(ort, demo_scene["sar"], tmp_path / "ort.tif", SegmentConfig(tile_size=128, overlap=32, device="cpu"))
    with rasterio.open(res.path) as a, rasterio.open(ref.path) as b:
        assert (a.read(1) == b.read(1)).mean() >= 0.999
