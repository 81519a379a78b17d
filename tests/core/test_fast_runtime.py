"""The runtime a .stars model segments with (stars_core/auto.py): auto picks the int8 export on
a CPU, exported once per model file and cached beside it, with its agreement with PyTorch said."""
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from stars_core.cli import main as cli_main

pytest.importorskip("onnxruntime")
SEG = ["--tile-size", "128", "--device", "cpu"]


@pytest.fixture(scope="module")
def model_copy(trained_model, tmp_path_factory):
    """The session's model in a folder of its own (under its own name, which its exports record), so
    the cached exports land there."""
    folder = tmp_path_factory.mktemp("runtime-model")
    return Path(shutil.copy(trained_model, folder / Path(trained_model).name))


def _map(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_auto_runs_the_int8_export_cached_beside_the_model_and_says_so(model_copy, int8_model, demo_scene, tmp_path,
                                                                      capsys):
    """The default path exports the int8 graph once beside the model and says so; the export is
    deterministic (byte for byte the session's export of the same model, made by `segment`)."""
    from stars_core.engines.auto import model_sha256

    assert cli_main(["segment", str(model_copy), str(demo_scene["sar"]), str(tmp_path / "auto.tif"), *SEG]) == 0
    out = capsys.readouterr()
    engine = "OpenVINO" if importlib.util.find_spec("openvino") else "ONNX Runtime"  # where OpenVINO is, it runs
    assert "exporting the m1 branch to ONNX int8" in out.err and f"runtime int8: {engine} on the CPU" in out.out
    graphs = sorted(model_copy.parent.glob(f"{model_copy.stem}.*.m1-128.int8w7.onnx"))
    assert len(graphs) == 1 and model_sha256(model_copy)[:16] in graphs[0].name
    session = int8_model["model"]
    first = next(session.parent.glob(f"{session.stem}.*.m1-128.int8w7.onnx"))  # the session's export
    assert graphs[0].read_bytes() == first.read_bytes()  # the same calibration tiles, the same graph
    info = json.loads(graphs[0].with_suffix(".json").read_text())
    assert info["source_sha256"] == model_sha256(model_copy) and info["runtime"] == "int8"
    assert 0.5 < info["agreement"] <= 1 and info["agreement_tiles"] == 9
    assert f"{100 * info['agreement']:.2f} %" in out.out  # the measured agreement is said
    stamp = graphs[0].stat().st_mtime_ns
    assert cli_main(["segment", str(model_copy), str(demo_scene["sar"]), str(tmp_path / "again.tif"), *SEG]) == 0
    assert "exporting" not in capsys.readouterr().err and graphs[0].stat().st_mtime_ns == stamp  # cached
    assert np.array_equal(_map(tmp_path / "auto.tif"), _map(tmp_path / "again.tif"))
    assert cli_main(["segment", str(model_copy), str(demo_scene["sar"]), str(tmp_path / "torch.tif"), *SEG,
                     "--runtime", "torch"]) == 0
    assert "runtime torch: PyTorch" in capsys.readouterr().out
    same = (_map(tmp_path / "auto.tif") == _map(tmp_path / "torch.tif")).mean()
    assert same > 0.8 and abs(same - info["agreement"]) < 0.1  # the said agreement is the map's


def test_the_fp32_export_gives_the_map_of_pytorch(model_copy, demo_scene, tmp_path):
    assert cli_main(["segment", str(model_copy), str(demo_scene["sar"]), str(tmp_path / "onnx.tif"), *SEG,
                     "--runtime", "onnx"]) == 0
    assert cli_main(["segment", str(model_copy), str(demo_scene["sar"]), str(tmp_path / "torch.tif"), *SEG,
                     "--runtime", "torch"]) == 0
    assert (_map(tmp_path / "onnx.tif") == _map(tmp_path / "torch.tif")).mean() > 0.995
    assert list(model_copy.parent.glob(f"{model_copy.stem}.*.m1-128.onnx"))


def test_the_export_follows_the_model_file(int8_model, tmp_path):
    """The export's name holds the model file's hash: a copy has the name of the session's export,
    another model file (one byte more) another export, not yet made."""
    from stars_core.engines.auto import cached_path

    model = int8_model["model"]
    first = next(model.parent.glob(f"{model.stem}.*.m1-128.int8w7.onnx"))  # the session's export
    a = shutil.copy(model, tmp_path / model.name)  # the same file, without its export
    again = tmp_path / first.name
    assert cached_path(a, "int8", "m1", 128) == again
    with open(a, "ab") as f:
        f.write(b"\0")  # another model file: its hash, so its export's name, changes
    assert cached_path(a, "int8", "m1", 128) != again and not cached_path(a, "int8", "m1", 128).exists()


def test_an_unwritable_model_folder_caches_in_the_user_cache(trained_model, demo_scene, tmp_path, monkeypatch):
    from stars_core.engines import auto
    from stars_core.config import SegmentConfig
    from stars_core.segmentation.infer import segment

    monkeypatch.setenv("STARS_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "readonly"
    folder.mkdir()
    model = shutil.copy(trained_model, folder / "m.stars")
    monkeypatch.setattr(auto.os, "access", lambda p, mode: not str(p).startswith(str(folder)))
    r = segment(model, demo_scene["sar"], tmp_path / "m.tif", SegmentConfig(tile_size=128, device="cpu", runtime="onnx"))
    assert r.runtime == "onnx" and list((tmp_path / "cache" / "runtimes").glob("m.*.m1-128.onnx"))
    assert not list(folder.glob("*.onnx"))


def test_runtimes_that_cannot_serve_the_request_are_refused_in_one_line(model_copy, demo_scene, tmp_path, capsys,
                                                                       monkeypatch):
    from stars_core.engines import auto

    out = tmp_path / "x.tif"
    assert cli_main(["segment", str(model_copy), str(demo_scene["sar"]), str(out), *SEG, "--runtime", "int8",
                     "--with-m2", str(demo_scene["optical"])]) == 2
    assert "int8 calibrates one modality" in capsys.readouterr().err and not out.exists()
    monkeypatch.setattr(auto, "onnx_available", lambda: False)
    assert cli_main(["segment", str(model_copy), str(demo_scene["sar"]), str(out), *SEG, "--runtime", "onnx"]) == 2
    assert "needs ONNX Runtime" in capsys.readouterr().err and not out.exists()
    assert cli_main(["segment", str(model_copy), str(demo_scene["sar"]), str(out), *SEG]) == 0  # auto: PyTorch
    err = capsys.readouterr()
    assert "ONNX Runtime is not installed" in err.err and "runtime torch" in err.out


def test_a_onnx_file_is_not_run_by_pytorch(onnx_exports, demo_scene, tmp_path, capsys):
    assert cli_main(["segment", str(onnx_exports["m1"]), str(demo_scene["sar"]), str(tmp_path / "o.tif"),
                     "--runtime", "torch"]) == 2
    assert "runs in ONNX Runtime" in capsys.readouterr().err


@pytest.mark.parametrize("engine,name,device", [("onnxruntime", "ONNX Runtime", "onnxruntime CPU"),
                                                 ("openvino", "OpenVINO", "openvino CPU")])
def test_a_onnx_file_names_the_engine_that_runs_it(onnx_exports, demo_scene, tmp_path, capsys, monkeypatch, engine,
                                                   name, device):
    """One message: the runtime line and the device line name the same engine (OpenVINO, where it runs
    the graph, was announced as ONNX Runtime)."""
    if engine == "openvino" and importlib.util.find_spec("openvino") is None:
        pytest.skip("OpenVINO is not installed")
    monkeypatch.setenv("STARS_ONNX_ENGINE", engine)
    assert cli_main(["segment", str(onnx_exports["m1"]), str(demo_scene["sar"]), str(tmp_path / "o.tif"), *SEG]) == 0
    out = capsys.readouterr().out
    assert f"runtime: {name} with m1.onnx" in out and f"on {device})" in out, out
    other = {"ONNX Runtime", "OpenVINO"} - {name}
    assert not any(o in out for o in other), out


def test_the_default_path_gives_one_map_whatever_the_threads(int8_model, demo_scene, tmp_path, capsys):
    """The int8 export (OpenVINO where installed) on 1 and on 2 threads: the same map and the same
    probabilities, value for value (OpenVINO's bf16 layers between the int8 ones moved them with the
    thread count: over a hundred pixels of this map on a CPU with AVX-512 BF16)."""
    import subprocess
    import sys

    from tests.core.helpers import copy_with_exports

    from stars_core import threads

    model_copy = copy_with_exports(int8_model["model"], tmp_path)  # the session's int8 export beside it
    maps, probs = [], []
    for n in (1, 2):  # a process each (this one, then another): a runner compiled for one thread count
        out = tmp_path / f"t{n}.tif"  # is kept for the process
        argv = ["--threads", str(n), "segment", str(model_copy), str(demo_scene["sar"]), str(out), "--tile-size", "128",
                "--device", "cpu", "--runtime", "int8", "--probabilities", str(tmp_path / f"p{n}.tif")]
        if n == 1:
            capsys.readouterr()
            try:
                assert cli_main(argv) == 0
            finally:
                threads.configure("auto", settle=0)  # the session's policy again
            err = capsys.readouterr().err
            assert "exporting" not in err, err[-2000:]
        else:
            run = subprocess.run([sys.executable, "-m", "stars_core.cli", *argv], capture_output=True, text=True)
            assert run.returncode == 0 and "exporting" not in run.stderr, run.stderr[-2000:]
        maps.append(_map(out))
        with rasterio.open(tmp_path / f"p{n}.tif") as ds:
            probs.append(ds.read())
    assert np.array_equal(maps[0], maps[1]), int((maps[0] != maps[1]).sum())
    assert np.array_equal(probs[0], probs[1], equal_nan=True), int((~np.isclose(probs[0], probs[1], equal_nan=True)).sum())


@pytest.mark.parametrize("damage", ["graph", "note"])
def test_a_damaged_cached_export_is_named_and_made_again(int8_model, demo_scene, tmp_path, capsys, damage):
    from stars_core.engines.auto import _SESSIONS
    from tests.core.helpers import copy_with_exports

    model = copy_with_exports(int8_model["model"], tmp_path)  # exported and run once, as the session did
    graph = next(tmp_path.glob("*.m1-128.int8w7.onnx"))
    victim = graph if damage == "graph" else graph.with_suffix(".json")
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 3])  # cut short
    _SESSIONS.clear()  # a new process would not have it open
    capsys.readouterr()
    assert cli_main(["segment", str(model), str(demo_scene["sar"]), str(tmp_path / "b.tif"), *SEG, "--runtime",
                     "int8"]) == 0
    err = capsys.readouterr().err
    assert f"the runtime's cached export {graph}" in err and "is damaged" in err and "exporting again" in err
    assert np.array_equal(_map(int8_model["map"]), _map(tmp_path / "b.tif"))
