"""The training loop: learning, exact resume, the model file, NaN and cancel handling, the CLI."""
import dataclasses

import numpy as np
import pytest
import torch

import stars_core.training.train as train_mod
from stars_core.checkpoint import load_model, read_model_file
from stars_core.training.data import SceneSpec
from stars_core.errors import Cancelled, TrainingError
from stars_core.training.train import get_lr, train
from tests.core.helpers import TINY_MODEL, tiny_train

QUIET = {"log": lambda *_: None}


def _specs(p):
    return [SceneSpec(str(p["sar"]), str(p["optical"]), str(p["labels"]))]


def test_lr_schedule_warms_up_then_decays():
    cfg = tiny_train(steps=100, warmup_steps=10, lr=1e-3)["train_cfg"]
    assert get_lr(0, cfg) == pytest.approx(cfg.warmup_start_lr)
    assert get_lr(5, cfg) == pytest.approx((1e-6 + 1e-3) / 2, rel=1e-3)
    assert get_lr(10, cfg) == pytest.approx(1e-3)
    assert get_lr(55, cfg) == pytest.approx(5e-4, rel=1e-3)
    assert get_lr(100, cfg) == pytest.approx(0.0, abs=1e-12)
    lrs = [get_lr(s, cfg) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_loss_falls_on_the_demo_scene(demo_scene, tmp_path):
    rows = []
    cfg = tiny_train(steps=40, warmup_steps=4, lr=2e-3, batch_size=4, class_table=str(demo_scene["classes"]))
    train(_specs(demo_scene), tmp_path / "m.stars", TINY_MODEL, **cfg, progress=lambda s, n, row: rows.append(row),
          **QUIET)
    seg = [r["seg"] for r in rows]
    assert len(seg) == 40
    assert np.mean(seg[-8:]) < 0.8 * np.mean(seg[:8])


@pytest.mark.usefixtures("steady_threads")  # two runs compared bit for bit
def test_resume_reproduces_the_uninterrupted_run(demo_scene, tmp_path):
    kw = dict(model_cfg=TINY_MODEL, **tiny_train(steps=6, checkpoint_every=100, class_table=str(demo_scene["classes"])),
              **QUIET)
    full = train(_specs(demo_scene), tmp_path / "full.stars", **kw)
    assert full.steps_done == 6

    calls = {"n": 0}

    def cancel_after_three():
        calls["n"] += 1
        return calls["n"] == 3

    with pytest.raises(Cancelled, match="cancelled at step 3; .*part.stars holds the model"):
        train(_specs(demo_scene), tmp_path / "part.stars", cancel=cancel_after_three, **kw)
    assert read_model_file(tmp_path / "part.stars")["resume"]["step"] == 3
    resumed = train(_specs(demo_scene), tmp_path / "part.stars", resume=tmp_path / "part.stars", **QUIET)
    assert resumed.steps_done == 6

    a = read_model_file(tmp_path / "full.stars")["state_dict"]
    b = read_model_file(tmp_path / "part.stars")["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=f"{key} differs after resume")


def test_model_file_is_self_contained_and_weights_only(demo_scene, tmp_path):
    path = tmp_path / "m.stars"
    train(_specs(demo_scene), path, TINY_MODEL, **tiny_train(steps=2, class_table=str(demo_scene["classes"])), modalities=("S1", "S2"), **QUIET)
    payload = torch.load(path, weights_only=True)  # nothing pickled beyond tensors and plain types
    assert "resume" not in payload and payload["summary"]["steps"] == 2
    assert payload["modalities"] == ["S1", "S2"] and payload["pixel_size"] == [2.0, 2.0]
    assert payload["bands"]["m1"]["names"] == ["VV", "VH"]
    loaded = load_model(path)
    assert loaded.classes.names[2] == "water" and loaded.config.in_channels == (2, 4)
    x = torch.zeros(1, 2, 64, 64)
    assert loaded.model(x).shape == (1, 6, 64, 64)
    assert (tmp_path / "m.log.csv").read_text().startswith("step,lr,grad_norm,seg,psc,ncs,total")
    assert (tmp_path / "m.curves.png").stat().st_size > 1000


@pytest.mark.parametrize("mode", ["single", "concat"])
def test_baselines_train_from_the_same_loop(demo_scene, tmp_path, mode):
    result = train(_specs(demo_scene), tmp_path / f"{mode}.stars", dataclasses.replace(TINY_MODEL, mode=mode),
                   **tiny_train(steps=2, val_every=2, class_table=str(demo_scene["classes"])), **QUIET)
    assert result.summary["last"]["psc"] == 0 and result.summary["last"]["ncs"] == 0
    assert "val_m1_miou" in result.summary["validation"]


def test_nan_loss_stops_and_keeps_the_last_good_file(demo_scene, tmp_path, monkeypatch):
    real = train_mod.stars_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        loss, terms = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan"), terms) if calls["n"] == 3 else (loss, terms)

    monkeypatch.setattr(train_mod, "stars_loss", poisoned)
    path = tmp_path / "m.stars"
    with pytest.raises(TrainingError, match=r"loss became nan at step 3.*m.stars \(step 2\) is kept"):
        train(_specs(demo_scene), path, TINY_MODEL, **tiny_train(steps=6, checkpoint_every=2, class_table=str(demo_scene["classes"])), **QUIET)
    assert read_model_file(path)["resume"]["step"] == 2


def test_the_cpu_precision_follows_what_the_cpu_has_and_what_was_asked(monkeypatch):
    from stars_core import devices
    from stars_core.devices import TrainingPrecision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(devices, "cpu_bf16", lambda: None)
    plain = TrainingPrecision.choose(cpu, True, want_bf16=True)
    assert not plain.bf16 and not plain.channels_last and "--cpu-bf16 needs them" in plain.why
    monkeypatch.setattr(devices, "cpu_bf16", lambda: "AMX")
    layout = TrainingPrecision.choose(cpu, True)
    assert not layout.bf16 and layout.channels_last and "it has AMX" in layout.why
    fast = TrainingPrecision.choose(cpu, True, want_bf16=True)
    assert fast.bf16 and fast.channels_last
    off = TrainingPrecision.choose(cpu, False, want_bf16=True)  # --no-amp: plain fp32 whatever the CPU
    assert not off.bf16 and not off.channels_last
    assert TrainingPrecision.choose(cuda, True).bf16 and not TrainingPrecision.choose(cuda, True).channels_last
    x = torch.zeros(2, 3, 8, 8)
    assert layout.memory(x).is_contiguous(memory_format=torch.channels_last) and plain.memory(x) is x
    with fast.autocast(cpu):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16
    with layout.autocast(cpu):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.float32


@pytest.mark.parametrize("found,want,said", [(None, False, "fp32 on the CPU"),
                                             ("AMX", False, "fp32 with channels-last memory"),
                                             ("AMX", True, "bf16 autocast with channels-last memory")])
def test_training_says_its_precision_and_trains_either_way(demo_scene, tmp_path, monkeypatch, found, want, said):
    from stars_core import devices
    from stars_core.training.data import SceneSpec
    from stars_core.training.train import train
    from tests.core.helpers import TINY_MODEL, tiny_train

    monkeypatch.setattr(devices, "cpu_bf16", lambda: found)
    lines = []
    spec = SceneSpec(str(demo_scene["sar"]), str(demo_scene["optical"]), str(demo_scene["labels"]))
    result = train([spec], tmp_path / "m.stars", TINY_MODEL,
                   **tiny_train(steps=2, batch_size=2, chip_size=64, cpu_bf16=want,
                                class_table=str(demo_scene["classes"])), log=lines.append)
    precision = [line for line in lines if line.startswith("precision:")]
    assert len(precision) == 1 and said in precision[0], precision
    assert result.path.is_file() and 0 <= result.summary["validation"]["val_m1_miou"] <= 1
    assert load_model(result.path).meta.train.cpu_bf16 == want


def test_a_resumed_bf16_run_goes_on_in_bf16_as_it_says(demo_scene, tmp_path, monkeypatch):
    """`stars train --resume` without --cpu-bf16 passes cpu_bf16=False with this machine's settings:
    the saved run's bf16 is what it computes in, so it stays."""
    import dataclasses

    from stars_core import devices
    from tests.core.helpers import TINY_MODEL, tiny_train

    monkeypatch.setattr(devices, "cpu_bf16", lambda: "AMX")
    kw = tiny_train(steps=4, batch_size=2, chip_size=64, cpu_bf16=True, class_table=str(demo_scene["classes"]))
    calls = {"n": 0}

    def cancel_after_two():
        calls["n"] += 1
        return calls["n"] == 2

    path = tmp_path / "m.stars"
    with pytest.raises(Cancelled):
        train(_specs(demo_scene), path, TINY_MODEL, cancel=cancel_after_two, **kw, **QUIET)
    saved = load_model(path).meta.train
    assert saved.cpu_bf16
    lines = []
    train(_specs(demo_scene), path, resume=path, train_cfg=dataclasses.replace(saved, cpu_bf16=False),
          log=lines.append)
    kept = next(line for line in lines if line.startswith("resuming keeps"))
    precision = next(line for line in lines if line.startswith("precision:"))
    assert "bf16" in kept and precision.startswith("precision: bf16 autocast"), (kept, precision)
    assert load_model(path).meta.train.cpu_bf16
