import os
from pathlib import Path

import pytest

from stars_core import threads

threads.prepare_environment()  # the toolbox's thread policy, before torch loads (stars_core/threads.py)
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "terramind"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
threads.configure("auto", settle=0.1)


@pytest.fixture
def steady_threads():
    """One thread count for the whole test (a comparison of two runs bit for bit): the session's count
    otherwise adapts to the machine's load between them."""
    with threads.hold() as count:
        yield count


@pytest.fixture
def seed():
    torch.manual_seed(0)
    return 0


@pytest.fixture(scope="session")
def demo_scene(tmp_path_factory):
    """One generated 256 x 256 demo scene for the whole session (tests must not modify it)."""
    from stars_core.demo_scene import make_demo_scene

    return make_demo_scene(tmp_path_factory.mktemp("demo"), size=256, seed=1, sheets=(2, 2))


@pytest.fixture(scope="session")
def trained_model(demo_scene, tmp_path_factory):
    """A tiny STARS model trained for a few CPU steps on the demo scene (shared by the session)."""
    from stars_core.training.data import SceneSpec
    from stars_core.training.train import train
    from tests.core.helpers import TINY_MODEL, tiny_train

    spec = SceneSpec(str(demo_scene["sar"]), str(demo_scene["optical"]), str(demo_scene["labels"]))
    out = tmp_path_factory.mktemp("model") / "tiny.stars"
    train([spec], out, TINY_MODEL, **tiny_train(steps=30, warmup_steps=3, lr=2e-3, batch_size=4, chip_size=128, class_table=str(demo_scene["classes"])), log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def landcover(trained_model, demo_scene, tmp_path_factory):
    """The SAR-only map of the demo scene by the tiny model (128-px tiles), shared by the session."""
    from stars_core.config import SegmentConfig
    from stars_core.segmentation.infer import segment

    out = tmp_path_factory.mktemp("landcover") / "landcover.tif"
    segment(trained_model, demo_scene["sar"], out, SegmentConfig(tile_size=128, device="cpu"))
    return out


@pytest.fixture(scope="session")
def int8_model(trained_model, demo_scene, tmp_path_factory):
    """The tiny model with the int8 export of its m1 branch for 128-px tiles cached beside it, made
    once as `stars segment` and QGIS make it on a CPU (runtime auto), and the SAR map it made. Later
    runs of the default path reuse it; tests that re-export or damage it copy it first
    (helpers.copy_with_exports). Without ONNX Runtime the default path runs PyTorch: no export, no map."""
    from stars_core.config import SegmentConfig
    from stars_core.engines.auto import onnx_available
    from stars_core.segmentation.infer import segment

    if not onnx_available():
        return {"model": Path(trained_model), "map": None}
    landcover = tmp_path_factory.mktemp("int8-map") / "landcover.tif"
    segment(trained_model, demo_scene["sar"], landcover, SegmentConfig(tile_size=128, device="cpu", runtime="int8"))
    return {"model": Path(trained_model), "map": landcover}


@pytest.fixture(scope="session")
def onnx_exports(trained_model, demo_scene, int8_model, tmp_path_factory):
    """The tiny model's m1, m2 and fused branches exported to ONNX, and m1 and m2 in int8 (a fused
    int8 export is refused: it calibrates on one raster); the m1 int8 file is int8_model's export."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from stars_core.engines.auto import cached_path
    from stars_core.engines.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("onnx")
    quiet = {"log": lambda *_: None}
    files = {b: export_onnx(trained_model, folder / f"{b}.onnx", b, **quiet) for b in ("m1", "m2", "fused")}
    files["m1-int8"] = folder / "m1-int8.onnx"  # the default path's export: an export_onnx file, calibrated
    files["m1-int8"].write_bytes(cached_path(int8_model["model"], "int8", "m1", 128).read_bytes())
    files["m2-int8"] = export_onnx(trained_model, folder / "m2-int8.onnx", "m2", int8=True,
                                   calibrate=demo_scene["optical"], calibration_tiles=4, **quiet)
    return files


@pytest.fixture(scope="session")
def stac_servers(tmp_path_factory):
    """A real STAC API (stac-fastapi-pgstac on PostgreSQL + PostGIS) and a Range-capable asset server
    with switchable faults, on 127.0.0.1, loaded with the local catalogue (tests/servers/). Started once
    per session; each test gets the asset server with no fault and an empty request log. A server that
    cannot start skips its tests with the reason, and fails the run under CI=true."""
    from tests.servers import ServerUnavailable, start_servers

    folder = tmp_path_factory.mktemp("servers")
    try:
        servers = start_servers(folder)
    except ServerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"test servers could not start under CI: {exc}")
        pytest.skip(f"test servers could not start: {exc}")
    yield servers
    servers.stop()


@pytest.fixture
def servers(stac_servers, tmp_path_factory, monkeypatch):
    """The session's servers with no fault and an empty request log, and a fetch cache of the test's
    own (an earlier test's cached assets would hide this test's reads)."""
    monkeypatch.setenv("STARS_CACHE_DIR", str(tmp_path_factory.mktemp("stars-cache")))
    stac_servers.assets.reset()
    yield stac_servers
    stac_servers.assets.reset()
