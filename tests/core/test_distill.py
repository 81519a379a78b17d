"""`stars distill`: a SAR-only student from the session's tiny STARS model, as an ordinary model file."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from stars_core.cli import main as cli_main

STUDENT = ["--backbone", "resnet18", "--width", "8", "--decoder-channels", "32", "--steps", "4", "--batch-size", "2",
           "--chip-size", "64", "--device", "cpu"]


@pytest.fixture(scope="module")
def student(trained_model, demo_scene, tmp_path_factory):
    out = tmp_path_factory.mktemp("distill") / "fast.stars"
    assert cli_main(["distill", str(trained_model), "--m1", str(demo_scene["sar"]), "--labels", str(demo_scene["labels"]),
                     "--ignore-value", "0", "--out", str(out), *STUDENT]) == 0
    return out


def test_soft_targets_vanish_only_where_the_student_matches_the_teacher():
    from stars_core.distill import soft_target_loss

    teacher = torch.randn(2, 5, 8, 8)
    valid = torch.ones(2, 8, 8)
    assert soft_target_loss(teacher.clone(), teacher, valid, 2.0).item() == pytest.approx(0, abs=1e-6)
    other = torch.randn(2, 5, 8, 8)
    assert soft_target_loss(other, teacher, valid, 2.0).item() > 0.01
    valid[:, :4] = 0  # pixels out of the mask do not count, whatever the student says there
    changed = other.clone()
    changed[:, :, :4] = 100 * torch.randn(2, 5, 4, 8)
    assert soft_target_loss(changed, teacher, valid, 2.0).item() == pytest.approx(
        soft_target_loss(other, teacher, valid, 2.0).item(), rel=1e-5)


@pytest.mark.parametrize("temperature", [2.0, 5.0])
def test_the_soft_target_loss_is_t_squared_times_the_kl_worked_by_hand(temperature):
    """Hinton et al. (2015): T^2 KL(teacher_T || student_T), averaged over the valid pixels. Worked
    here with math alone on two valid pixels and one left out; two temperatures, so a loss that drops
    T (in the softmax or the T^2 factor) or flips the sign of the KL cannot match both."""
    from stars_core.distill import soft_target_loss

    students = [[1.0, -0.5, 2.0], [0.0, 3.0, -1.0], [9.0, -9.0, 0.0]]  # (pixel, class) logits
    teachers = [[0.2, 1.5, -1.0], [2.0, 0.5, 0.5], [-9.0, 9.0, 0.0]]
    valid = [1.0, 1.0, 0.0]

    def softmax(z):
        e = [math.exp(v / temperature) for v in z]
        return [v / sum(e) for v in e]

    kl = [sum(qi * math.log(qi / pi) for qi, pi in zip(softmax(t), softmax(s))) for s, t in zip(students, teachers)]
    expected = temperature ** 2 * (kl[0] + kl[1]) / 2
    as_maps = lambda rows: torch.tensor(rows, dtype=torch.float64).T.reshape(1, 3, 1, 3)  # (B, K, H, W)
    got = soft_target_loss(as_maps(students), as_maps(teachers), torch.tensor(valid).reshape(1, 1, 3), temperature)
    assert got.item() == pytest.approx(expected, rel=1e-9) and expected > 0.05


def test_a_short_distillation_moves_the_student_towards_its_teacher(trained_model, demo_scene):
    """Twenty steps on soft targets alone: the student's KL to the teacher on held-out chips falls (a
    loss of the wrong sign trains it away from its teacher)."""
    from stars_core.checkpoint import load_model
    from stars_core.config import TrainConfig
    from stars_core.devices import TrainingPrecision
    from stars_core.distill import DistillConfig
    from stars_core.distill.data import ChipReader, open_sources
    from stars_core.distill.student import VAL_SEED, _loop, student_config
    from stars_core.models import build_model

    cpu = torch.device("cpu")
    teacher = load_model(trained_model, cpu)
    cfg = DistillConfig(steps=20, batch_size=4, chip_size=64, lr=3e-3, label_weight=0.0, device="cpu",
                        amp=False).for_teacher(teacher.config)
    sources = open_sources([demo_scene["sar"]], None, teacher.stats[0], 64, log=lambda *_: None)
    reader = ChipReader(sources, teacher.stats[0], teacher.classes, 64, seed=0)
    held_out = ChipReader(sources, teacher.stats[0], teacher.classes, 64, seed=VAL_SEED)
    x, _, valid = (torch.from_numpy(a) for a in held_out.batch(0, 8))
    torch.manual_seed(0)
    student = build_model(student_config(teacher.config, cfg))

    @torch.no_grad()
    def gap() -> float:
        """KL(teacher || student) per valid pixel, measured here (not by the loss under test), on the
        chips' own batch statistics (the running ones start at 0 and 1 whatever the student learns)."""
        student.train()
        log_s, log_t = (torch.log_softmax(m(x).float(), 1) for m in (student, teacher.model))
        return (log_t.exp() * (log_t - log_s)).sum(1)[valid].mean().item()

    before = gap()
    _loop(student, teacher, reader, TrainConfig.for_steps(20, batch_size=4, lr=cfg.lr, num_workers=0, device="cpu",
                                                          amp=False), cfg, cpu,
          TrainingPrecision.choose(cpu, False, offer_bf16=False), None, None, lambda *_: None)
    after = gap()
    reader.close()
    held_out.close()
    assert after < 0.7 * before, (before, after)


def test_the_default_student_is_sized_from_its_teacher(trained_model, demo_scene, tmp_path):
    """The tiny teacher is 16 wide with 32 decoder channels: the default student (32 and 128 for a
    full-size teacher) takes the teacher's, so it stays smaller; a student given wider is said to be
    no faster, in one line."""
    from stars_core.checkpoint import load_model
    from stars_core.distill import DistillConfig, distill

    from stars_core.config import StarsConfig

    full = DistillConfig().for_teacher(StarsConfig())  # a full-size teacher: 64 wide, 256 decoder channels
    assert (full.encoder_width, full.decoder_channels) == (32, 128)
    teacher = load_model(trained_model)
    assert (teacher.config.encoder_width, teacher.config.pyramid_channels) == (16, 32)
    recipe = dict(steps=1, batch_size=2, chip_size=64, device="cpu")
    lines = []
    made = distill(trained_model, [demo_scene["sar"]], tmp_path / "d.stars", DistillConfig(**recipe), log=lines.append)
    student = load_model(made.path)
    assert (student.config.encoder_width, student.config.pyramid_channels) == (16, 32)
    assert not [line for line in lines if "not smaller than its teacher" in line]
    lines.clear()
    distill(trained_model, [demo_scene["sar"]], tmp_path / "w.stars", DistillConfig(encoder_width=64, **recipe),
            log=lines.append)
    assert len([line for line in lines if "is not smaller than its teacher" in line]) == 1


def test_the_student_is_an_ordinary_model_file_that_names_its_teacher(student, trained_model, capsys):
    from stars_core.checkpoint import load_model

    teacher, fast = load_model(trained_model), load_model(student)
    assert fast.config.mode == "single" and fast.config.encoder_width == 8 and fast.config.pyramid_channels == 32
    assert fast.classes.to_dict() == teacher.classes.to_dict() and fast.modalities == teacher.modalities
    assert fast.stats[0].to_dict() == teacher.stats[0].to_dict()
    assert sum(p.numel() for p in fast.model.parameters()) < sum(p.numel() for p in teacher.model.parameters()) / 2
    capsys.readouterr()
    assert cli_main(["info", str(student), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    source = info["distilled_from"]
    assert source["file"] == Path(trained_model).name and source["steps"] == 4 and source["labelled"]
    assert 0 <= source["agreement"] <= 1 and 0 <= source["student_miou"] <= 1
    assert cli_main(["info", str(student)]) == 0
    assert f"distilled from {Path(trained_model).name}" in capsys.readouterr().out


@pytest.mark.parametrize("runtime", ["torch", "int8"])
def test_the_student_segments_on_every_runtime(student, demo_scene, tmp_path, runtime):
    out = tmp_path / f"map_{runtime}.tif"
    assert cli_main(["segment", str(student), str(demo_scene["sar"]), str(out), "--tile-size", "64", "--runtime",
                     runtime, "--device", "cpu"]) == 0
    with rasterio.open(out) as ds, rasterio.open(demo_scene["sar"]) as sar:
        assert (ds.width, ds.height) == (sar.width, sar.height) and ds.colormap(1)
        assert np.isin(np.unique(ds.read(1)), [*range(6), 255]).all()


def test_the_student_exports_for_deepness_and_fine_tunes(student, demo_scene, tmp_path):
    assert cli_main(["export", str(student), str(tmp_path / "fast.onnx")]) == 0
    assert (tmp_path / "fast.onnx").stat().st_size > 0
    assert cli_main(["train", "--m1", str(demo_scene["sar"]), "--m2", str(demo_scene["optical"]), "--labels",
                     str(demo_scene["labels"]), "--ignore-value", "0", "--init-from", str(student), "--out",
                     str(tmp_path / "tuned.stars"), "--steps", "2", "--batch-size", "2", "--chip-size", "64",
                     "--device", "cpu", "--workers", "0"]) == 0


@pytest.mark.parametrize("found,amp,said", [(None, True, "fp32 on the CPU (it has no AMX or AVX-512 BF16)"),
                                             ("AMX", True, "fp32 with channels-last memory on the CPU (it has AMX)"),
                                             ("AMX", False, "fp32 on the CPU (--no-amp)")])
def test_unlabelled_rasters_are_enough_in_the_precision_the_cpu_allows(trained_model, demo_scene, tmp_path,
                                                                      monkeypatch, found, amp, said):
    from stars_core import devices
    from stars_core.checkpoint import load_model
    from stars_core.distill import DistillConfig, distill

    monkeypatch.setattr(devices, "cpu_bf16", lambda: found)
    lines = []
    result = distill(trained_model, [demo_scene["sar"]], tmp_path / "u.stars",
                     DistillConfig(encoder_width=8, decoder_channels=32, steps=2, batch_size=2, chip_size=64,
                                   device="cpu", amp=amp), log=lines.append)
    assert result.student_miou is None and 0 <= result.agreement <= 1 and result.path.is_file()
    precision = [line for line in lines if line.startswith("precision:")]
    assert precision == [f"precision: {said}"]  # whole: distill has no --cpu-bf16 to suggest
    assert load_model(result.path).meta.train.amp == amp
