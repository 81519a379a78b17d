"""Chip folders (EarthMiss layout): matching by name, training, scoring, and the paper bench."""
import json
import sys
from pathlib import Path

import pytest

from stars_core.training.chips import ChipFolder, evaluate_chips
from stars_core.cli import main as cli_main
from stars_core.errors import InputError
from tests.core.helpers import make_chip_folder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chip_root(demo_scene, tmp_path_factory):
    return make_chip_folder(demo_scene, tmp_path_factory.mktemp("earthmiss"))


def test_chips_are_matched_by_name_and_gaps_are_listed(chip_root, tmp_path):
    matched = ChipFolder(str(chip_root)).match()
    assert [m[0] for m in matched] == ["tile_000", "tile_001", "tile_002", "tile_003"]
    assert matched[1][3].suffix == ".png"
    broken = tmp_path / "broken"
    for sub in ("SAR", "RGB", "mask"):
        (broken / sub).mkdir(parents=True)
        for p in (chip_root / sub).iterdir():
            (broken / sub / p.name).write_bytes(p.read_bytes())
    (broken / "RGB" / "tile_002.tif").unlink()
    with pytest.raises(InputError, match=r"no RGB/\* for tile_002"):
        ChipFolder(str(broken)).match()
    with pytest.raises(InputError, match="chip folder .* not found; name the sub-folders"):
        ChipFolder(str(chip_root), m2_dir="optical").match()


def test_train_and_evaluate_from_a_chip_folder(chip_root, tmp_path, capsys):
    model = tmp_path / "chips.stars"
    assert cli_main(["train", "--chips", str(chip_root), "--ignore-value", "0", "--out", str(model),
                     "--backbone", "resnet18", "--encoder-width", "16", "--steps", "2", "--batch-size", "2",
                     "--chip-size", "64", "--workers", "0", "--device", "cpu"]) == 0
    reports = evaluate_chips(model, ChipFolder(str(chip_root)), [0], device="cpu", log=lambda *_: None)
    assert set(reports) == {"m1", "m2", "fused"}
    labelled = sum(r["pixels"] for r in [reports["m1"]])
    assert labelled > 0.8 * 4 * 128 * 128 and reports["m1"]["chips"] == 4
    capsys.readouterr()
    out = tmp_path / "report.json"
    assert cli_main(["evaluate-chips", str(model), str(chip_root), "--ignore-value", "0", "--json", str(out),
                     "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "SAR alone" in text and "both modalities" in text
    assert json.loads(out.read_text())["m2"]["branch"] == "m2"


def test_the_paper_bench_writes_the_table_row(chip_root, tmp_path, capsys, monkeypatch):
    import runpy

    script = ROOT / "bench" / "paper.py"  # run as `python bench/paper.py ...` runs it, in this process
    monkeypatch.setattr(sys, "argv", [str(script), str(chip_root), "--out", str(tmp_path / "run"), "--steps", "2",
                                      "--batch", "2", "--chip", "64", "--backbone", "resnet18", "--width", "16",
                                      "--workers", "0", "--device", "cpu"])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "| Baseline-SAR |" in out and "| STARS |" in out
    assert (tmp_path / "run" / "stars_test.json").is_file() and (tmp_path / "run" / "single.stars").is_file()
