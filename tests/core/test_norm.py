"""Per-modality BatchNorm statistics in the shared encoder (models/norm.py), format-2 files and
recalibration."""
import copy
import threading

import pytest
import torch

from stars_core import StarsConfig, build_model
from stars_core.checkpoint import load_model, read_model_file
from stars_core.models.norm import ModalityBatchNorm2d, modality_norms, use_modality
from stars_core.training.recalibrate import recalibrate_file, recalibrate_model

CFG = StarsConfig(in_channels=(1, 3), num_classes=4, backbone="resnet18", encoder_width=16,
                  pyramid_channels=16, segmentation_channels=16)


def _shared_stats(model, modality):
    return [n.statistics(modality)[:2] for n in modality_norms(model.shared)]


def _assert_stats_equal(a, b):
    for (m1, v1), (m2, v2) in zip(a, b):
        torch.testing.assert_close(m1, m2, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(v1, v2, rtol=1e-4, atol=1e-5)


def test_training_passes_keep_each_modalitys_statistics_apart(seed):
    model = build_model(CFG).train()
    sar_only, opt_only = copy.deepcopy(model), copy.deepcopy(model)
    sar = [torch.randn(2, 1, 64, 64) * 3 - 5 for _ in range(4)]  # very different input distributions
    opt = [torch.rand(2, 3, 64, 64) * 0.2 + 1 for _ in range(4)]
    with torch.no_grad():
        for x1, x2 in zip(sar, opt):
            model(x1, x2)
            with use_modality(sar_only.shared, 1):
                sar_only.shared(sar_only.stem_m1(x1))
            with use_modality(opt_only.shared, 2):
                opt_only.shared(opt_only.stem_m2(x2))
    _assert_stats_equal(_shared_stats(model, 1), _shared_stats(sar_only, 1))
    _assert_stats_equal(_shared_stats(model, 2), _shared_stats(opt_only, 2))
    gap = (_shared_stats(model, 1)[0][0] - _shared_stats(model, 2)[0][0]).abs().max()
    assert gap > 1e-3  # the two sets really differ


def test_sar_alone_in_eval_mode_uses_the_sar_statistics(seed):
    model = build_model(CFG).eval()
    x1 = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        before = model(x1)
        for n in modality_norms(model.shared):
            n.running_mean_m2.fill_(50.0)  # optical statistics: irrelevant to a SAR-only map
        torch.testing.assert_close(model(x1), before)
        for n in modality_norms(model.shared):
            n.running_mean.fill_(5.0)
        assert not torch.allclose(model(x1), before)


def test_two_passes_of_one_model_in_two_threads_each_use_their_own_statistics(seed):
    """A SAR-only pass runs the shared body while an optical-only pass of the same model is inside
    it too (QGIS runs algorithms in threads and shares cached models): the SAR pass must still use
    the SAR statistics. The hooks force that interleaving on every run."""
    model = build_model(CFG).eval()
    for n in modality_norms(model.shared):  # optical statistics far from the SAR ones
        n.running_mean_m2.add_(2.0)
        n.running_var_m2.mul_(4.0)
    x1, x2 = torch.randn(1, 1, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = {"sar": model(x1), "optical": model(x2=x2)}
    sar_inside, optical_inside, sar_done = threading.Event(), threading.Event(), threading.Event()

    def hold(module, inputs):
        if threading.current_thread().name == "sar" and not sar_inside.is_set():
            sar_inside.set()  # the SAR pass has chosen its statistics; now the optical pass starts
            assert optical_inside.wait(30)
        elif threading.current_thread().name == "optical" and not optical_inside.is_set():
            optical_inside.set()  # the optical pass has chosen its statistics too, and waits
            assert sar_done.wait(30)  # while the SAR pass runs the rest of the shared body

    hook = modality_norms(model.shared)[0].register_forward_pre_hook(hold)
    got, errors = {}, []

    def run(name):
        try:
            if name == "optical":
                assert sar_inside.wait(30)
            with torch.no_grad():
                got[name] = model(x1) if name == "sar" else model(x2=x2)
        except BaseException as exc:  # reported below: an assert in a thread would vanish
            errors.append(exc)
        finally:
            if name == "sar":
                sar_done.set()
            else:
                optical_inside.set()

    workers = [threading.Thread(target=run, args=(n,), name=n) for n in ("sar", "optical")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    hook.remove()
    assert not errors, errors
    torch.testing.assert_close(got["sar"], want["sar"])
    torch.testing.assert_close(got["optical"], want["optical"])


def test_mixed_statistics_are_one_set_as_plain_batchnorm(seed):
    norm = ModalityBatchNorm2d(4, per_modality=False).train()
    plain = torch.nn.BatchNorm2d(4).train()
    for modality in (1, 2, 1):
        x = torch.randn(8, 4, 5, 5) + modality
        with use_modality(norm, modality):
            torch.testing.assert_close(norm(x), plain(x))
    torch.testing.assert_close(norm.running_mean, plain.running_mean)
    assert norm.num_batches_tracked_m2.item() == 0


def _format2(path, out):
    """The file as format 2 wrote it: no per-modality keys, no shared_norm."""
    payload = read_model_file(path)
    payload["format_version"] = 2
    payload["model_config"].pop("shared_norm")
    payload["state_dict"] = {k: v for k, v in payload["state_dict"].items() if not k.endswith("_m2")}
    torch.save(payload, out)
    return out


def test_a_format_2_file_loads_with_mixed_statistics_and_segments(trained_model, demo_scene, tmp_path):
    from stars_core.config import SegmentConfig
    from stars_core.segmentation.infer import segment

    old = _format2(trained_model, tmp_path / "old.stars")
    loaded = load_model(old)
    assert loaded.config.shared_norm == "mixed"
    res = segment(old, demo_scene["sar"], tmp_path / "map.tif", SegmentConfig(tile_size=128, device="cpu"))
    assert sum(res.class_pixels.values()) > 0
    said = [w for w in res.warnings if "mixed set" in w]  # said at segment time, with the fix
    assert len(said) == 1 and f"stars recalibrate {old}" in said[0]
    new = segment(trained_model, demo_scene["sar"], tmp_path / "new.tif", SegmentConfig(tile_size=128, device="cpu"))
    assert not [w for w in new.warnings if "mixed set" in w]


def test_a_format_3_file_without_the_optical_statistics_is_refused_naming_them(trained_model, tmp_path):
    from stars_core.errors import InputError

    payload = read_model_file(trained_model)
    payload["state_dict"] = {k: v for k, v in payload["state_dict"].items() if not k.endswith("_m2")}
    torch.save(payload, tmp_path / "cut.stars")
    with pytest.raises(InputError, match=r"without the optical statistics.*shared\.layer1\.0\.bn1\.running_mean_m2"):
        load_model(tmp_path / "cut.stars")


def test_recalibration_changes_the_shared_statistics_and_nothing_else(trained_model, demo_scene, tmp_path):
    old = _format2(trained_model, tmp_path / "old.stars")
    before = load_model(old).model.state_dict()
    out = recalibrate_file(old, [str(demo_scene["sar"])], [str(demo_scene["optical"])], tmp_path / "new.stars",
                           chips=8, device="cpu", log=lambda *_: None)
    new = load_model(out)
    assert new.config.shared_norm == "per_modality" and read_model_file(out)["format_version"] == 3
    after = new.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("shared.") and ("running_" in k or "num_batches" in k) for k in changed)
    assert any(k.endswith("running_mean") for k in changed) and any(k.endswith("running_mean_m2") for k in changed)
    assert read_model_file(out)["summary"]["recalibration"]["chips"] == {"1": 8, "2": 8}


def test_recalibrating_one_modality_keeps_the_other(seed):
    model = build_model(CFG)
    opt_before = [s[0].clone() for s in _shared_stats(model, 2)]
    seen = recalibrate_model(model, [(1, torch.randn(4, 1, 64, 64) * 2 + 3)])
    assert seen == {1: 4}
    for a, (b, _) in zip(opt_before, _shared_stats(model, 2)):
        torch.testing.assert_close(a, b)
    assert all(n.momentum == 0.1 for n in modality_norms(model.shared))  # restored


def test_baselines_cannot_be_recalibrated(tmp_path):
    from stars_core.errors import InputError

    with pytest.raises(InputError, match="no shared encoder"):
        recalibrate_model(build_model(StarsConfig(num_classes=3, backbone="resnet18", mode="single")), [])


def test_training_can_end_with_a_recalibration(demo_scene, tmp_path):
    from stars_core.training.data import SceneSpec
    from stars_core.training.train import train
    from tests.core.helpers import TINY_MODEL, tiny_train

    spec = [SceneSpec(str(demo_scene["sar"]), str(demo_scene["optical"]), str(demo_scene["labels"]))]
    messages = []
    train(spec, tmp_path / "m.stars", TINY_MODEL, **tiny_train(steps=2, batch_size=2, class_table=str(demo_scene["classes"])),
          recalibrate_chips=8, log=messages.append)
    assert any("re-estimated from 8 chips per modality" in m for m in messages)
    state = load_model(tmp_path / "m.stars").model.state_dict()
    # the cumulative average restarted at the end: 8 chips in batches of 2, for each modality
    assert int(state["shared.layer1.0.bn1.num_batches_tracked"]) == 4
    assert int(state["shared.layer1.0.bn1.num_batches_tracked_m2"]) == 4
