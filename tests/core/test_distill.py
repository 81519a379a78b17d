"""`stars distill`: a SAR-only student from the session's tiny STARS model, as an ordinary model file."""
import json
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
