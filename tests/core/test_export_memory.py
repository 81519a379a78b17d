"""The int8 export's memory (issue 45): a loaded model keeps no second copy of its weights, the export
reuses the runner's model, and no PyTorch model is alive while the calibration runs; the int8 graph
is the same, byte for byte; the calibration keeps no activation alive for its ranges alone."""
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


def test_the_calibration_keeps_no_activation_alive_for_its_ranges_alone(trained_model, demo_scene, tmp_path,
                                                                          monkeypatch):
    """ONNX Runtime's calibrator reads every tensor's range with a ReduceMin and a ReduceMax added to
    the graph. In the order the calibration session runs its nodes, each tensor's two reductions run
    before the last node that needs the tensor anyway: none is kept alive for its ranges alone (in
    ONNX Runtime's default order, many were: 2.0 GB per 512-pixel ResNet-50 tile instead of 0.4)."""
    import json
    from pathlib import Path

    import onnxruntime
    from onnxruntime.quantization import calibrate

    from stars_core.engines import onnx_export

    runs = []
    collect = calibrate.MinMaxCalibrater.collect_data

    def profiled(self, reader):  # the same session options, with ONNX Runtime's profiler on
        options = self.infer_session.get_session_options()
        options.enable_profiling, options.profile_file_prefix = True, str(tmp_path / "calibration")
        self.infer_session = onnxruntime.InferenceSession(self.augmented_model_path, sess_options=options,
                                                          providers=self.execution_providers)
        collect(self, reader)
        events = json.loads(Path(self.infer_session.end_profiling()).read_text())
        order = [e["name"][: -len("_kernel_time")] for e in events if e.get("cat") == "Node"
                 and e["name"].endswith("_kernel_time")]
        runs.append((self.model.graph, order))

    monkeypatch.setattr(calibrate.MinMaxCalibrater, "collect_data", profiled)
    onnx_export.export_onnx(trained_model, tmp_path / "q.onnx", "m1", tile_size=128, int8=True,
                            calibrate=demo_scene["sar"], calibration_tiles=1, log=lambda m: None)
    (graph, order), = runs
    step = {name: i for i, name in enumerate(order)}
    reductions = {n.name: n.input[0] for n in graph.node if n.op_type in ("ReduceMin", "ReduceMax")}
    assert len(reductions) > 100 and set(reductions) <= set(step)  # every tensor's range was read, in this run
    last_use = {}
    for n in graph.node:
        if n.name not in reductions and not n.name.endswith("_Reshape"):
            for t in n.input:
                last_use[t] = max(last_use.get(t, -1), step[n.name])
    kept = [t for r, t in reductions.items() if t in last_use and step[r] > last_use[t]]
    assert kept == []
