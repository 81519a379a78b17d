"""The int8 export's memory (issue 45): a loaded model keeps no second copy of its weights, the export
reuses the runner's model, and no PyTorch model is alive while the calibration runs; the int8 graph
is the same, byte for byte."""
import gc
import hashlib

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def test_a_loaded_model_keeps_its_weights_once(trained_model):
    import torch

    from stars_core.checkpoint import load_model, read_model_file

    loaded = load_model(trained_model, "cpu")
    assert "state_dict" in read_model_file(trained_model)  # the file has them ...
    tensors = [k for k, v in loaded.payload.items() if isinstance(v, torch.Tensor) or k in ("state_dict", "resume")]
    assert tensors == [] and not any("state_dict" in (v or {}) for v in loaded.payload.values() if isinstance(v, dict))
    full = read_model_file(trained_model)
    assert {k: loaded.payload[k] for k in ("classes", "bands", "summary")} == {k: full[k] for k in ("classes", "bands", "summary")}


def test_the_int8_export_calibrates_with_no_pytorch_model_alive_and_reusing_one_changes_no_byte(
        trained_model, demo_scene, tmp_path, monkeypatch):
    from stars_core.checkpoint import LoadedModel, load_model
    from stars_core.engines import onnx_export

    alive = []
    original = onnx_export._quantise

    def counting(*args, **kwargs):
        gc.collect()
        alive.append(sum(isinstance(o, LoadedModel) for o in gc.get_objects()))
        return original(*args, **kwargs)

    monkeypatch.setattr(onnx_export, "_quantise", counting)
    a = onnx_export.export_onnx(trained_model, tmp_path / "a.onnx", "m1", 128, int8=True, calibrate=demo_scene["sar"],
                                log=lambda m: None)
    assert alive == [0]  # the export's own model went before the calibration
    runner_model = load_model(trained_model, "cpu")
    b = onnx_export.export_onnx(trained_model, tmp_path / "b.onnx", "m1", 128, int8=True,
                                calibrate=demo_scene["sar"], log=lambda m: None, loaded=runner_model)
    assert alive == [0, 1]  # only the caller's (a segment run's runner keeps its model)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b)]
    assert digest[0] == digest[1]
