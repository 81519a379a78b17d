"""The `stars` command line: the recipe it builds, resume, and every failure as one line with its
exit status (2 bad input, 1 training failed, 130 cancelled)."""
import pytest

import stars_core.training.train as train_mod
from stars_core.checkpoint import read_model_file
from stars_core.cli import _parser, main as cli_main, train_settings
from stars_core.config import TrainConfig
from stars_core.training.data import SceneSpec
from stars_core.errors import Cancelled
from stars_core.training.train import train
from tests.core.helpers import TINY_MODEL, tiny_train

TINY = ["--backbone", "resnet18", "--encoder-width", "16", "--batch-size", "2", "--chip-size", "64", "--workers", "0",
        "--device", "cpu"]


def _args(scene, out, *extra):
    return ["train", "--m1", str(scene["sar"]), "--m2", str(scene["optical"]), "--labels", str(scene["labels"]),
            "--class-table", str(scene["classes"]), "--out", str(out), *TINY, *extra]


def test_steps_scale_the_paper_recipe_instead_of_warming_up_for_the_whole_run():
    args = _parser().parse_args(["train", "--m1", "a", "--m2", "b", "--labels", "c", "--out", "m", "--steps", "400"])
    _, _, cfg, data = train_settings(args)
    assert cfg == TrainConfig.for_steps(400) and cfg.warmup_steps == 5 < 400 and cfg.val_every == 80
    default = train_settings(_parser().parse_args(["train", "--m1", "a", "--m2", "b", "--labels", "c", "--out", "m"]))
    assert default[2] == TrainConfig()  # no --steps: the paper's 80,000-step recipe



def test_cli_train_and_info(demo_scene, tmp_path, capsys):
    out = tmp_path / "cli.stars"
    assert cli_main(_args(demo_scene, out, "--steps", "2")) == 0 and out.exists()
    capsys.readouterr()
    assert cli_main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "stars / resnet18" in text and "bare ground" in text and "VV, VH" in text


def test_resume_finishes_the_saved_run_unless_steps_say_otherwise(demo_scene, tmp_path, capsys):
    path = tmp_path / "m.stars"
    spec = [SceneSpec(str(demo_scene["sar"]), str(demo_scene["optical"]), str(demo_scene["labels"]))]
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        train(spec, path, TINY_MODEL, **tiny_train(steps=5, class_table=str(demo_scene["classes"])),
              cancel=lambda: next(calls) == 1, log=lambda *_: None)
    assert read_model_file(path)["resume"]["step"] == 2
    assert cli_main(_args(demo_scene, path, "--resume", str(path), "--steps", "2")) == 2
    assert "already did 2 steps" in capsys.readouterr().err
    assert cli_main(_args(demo_scene, path, "--resume", str(path))) == 0
    captured = capsys.readouterr()
    assert "resuming from step 2 of 5" in captured.out + captured.err
    payload = read_model_file(path)
    assert "resume" not in payload and payload["summary"]["steps"] == 5


def test_bad_input_is_one_line_with_exit_2(demo_scene, tmp_path, capsys):
    code = cli_main(["train", "--m1", str(demo_scene["sar"]), "--m2", str(tmp_path / "missing.tif"),
                     "--labels", str(demo_scene["labels"]), "--out", str(tmp_path / "x.stars")])
    err = capsys.readouterr().err
    assert code == 2 and "modality-2 raster" in err and "not found" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.stars").exists()
    assert cli_main(["segment", str(tmp_path / "x.stars"), str(demo_scene["sar"]), str(tmp_path / "o.tif"),
                     "--device", "gpu"]) == 2
    assert "got 'gpu'" in capsys.readouterr().err


def test_a_failed_training_is_one_line_with_exit_1(demo_scene, tmp_path, capsys, monkeypatch):
    real = train_mod.stars_loss
    monkeypatch.setattr(train_mod, "stars_loss", lambda *a, **k: (lambda l, t: (l * float("nan"), t))(*real(*a, **k)))
    code = cli_main(_args(demo_scene, tmp_path / "m.stars", "--steps", "3"))
    err = capsys.readouterr().err
    assert code == 1 and "training failed: the loss became nan at step 1" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_cancel_is_one_line_with_exit_130(demo_scene, tmp_path, capsys, monkeypatch):
    def cancelled(*args, **kwargs):
        raise Cancelled("training cancelled at step 1; m.stars holds the model")

    monkeypatch.setattr(train_mod, "train", cancelled)
    assert cli_main(_args(demo_scene, tmp_path / "m.stars", "--steps", "3")) == 130
    assert capsys.readouterr().err.strip() == "stars train: training cancelled at step 1; m.stars holds the model"


def test_progress_in_a_log_file_is_plain_lines_not_carriage_return_redraws(demo_scene, trained_model, tmp_path):
    """stderr redirected to a file (a scheduler, nohup, CI): no tqdm redraws, readable lines."""
    import os
    import subprocess
    import sys

    log = tmp_path / "segment.log"
    with open(log, "w") as err:
        code = subprocess.run([sys.executable, "-m", "stars_core.cli", "segment", str(trained_model),
                               str(demo_scene["sar"]), str(tmp_path / "map.tif"), "--tile-size", "64", "--overlap",
                               "16", "--device", "cpu", "--runtime", "torch"], stderr=err, stdout=subprocess.DEVNULL,
                              env=dict(os.environ, STARS_PROGRESS_INTERVAL="0")).returncode
    assert code == 0
    text = log.read_text()
    assert "\r" not in text
    import re

    lines = [l for l in text.splitlines() if l.startswith("segmenting: ")]
    assert lines and re.match(r"segmenting: (\d+)/\1 tiles \(100 %\)", lines[-1]), text[-500:]
    assert len(lines) == len(set(lines))  # the end is said once


def test_log_progress_prints_at_its_interval_and_once_at_the_end(capsys):
    from stars_core.progress import LogProgress

    bar = LogProgress(100, "step", what="training: ", interval=3600)
    for _ in range(100):
        bar.update(1)
    bar.set_postfix({"loss": "0.5"})
    bar.close()
    bar.close()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("training: 100/100 steps (100 %)") and err[0].endswith("; loss 0.5")
