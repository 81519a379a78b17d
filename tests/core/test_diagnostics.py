"""Training diagnostics: the cross-modal class similarity matrix, the collapse indicator, the PNGs."""
import json

import numpy as np
import pytest
import torch

from stars_core.checkpoint import read_model_file
from stars_core.cli import main as cli_main
from stars_core.training.data import SceneSpec
from stars_core.training.diagnostics import AlignmentProbe, Diagnostics
from stars_core.metrics import metrics_from_confusion
from stars_core.models import PairOutput
from stars_core.training.train import train
from tests.core.helpers import TINY_MODEL, tiny_train


def _outputs(f1: torch.Tensor, f2: torch.Tensor) -> PairOutput:
    return PairOutput(shared_m1=[f1], shared_m2=[f2])


def _class_features(labels: torch.Tensor, channels: int, noise: float = 0.0) -> torch.Tensor:
    """(B, C, H, W) features pointing along axis `class` for each pixel, plus noise."""
    f = torch.nn.functional.one_hot(labels.clamp(max=channels - 1), channels).permute(0, 3, 1, 2).float()
    return f + noise * torch.randn_like(f)


def test_probe_finds_the_diagonal_when_modalities_agree_on_classes():
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (2, 16, 16))
    labels[0, 0, :4] = 255  # ignored pixels count in no class
    probe = AlignmentProbe(num_classes=4)  # class 3 never occurs
    probe.add(_outputs(_class_features(labels, 8, 0.1), _class_features(labels, 8, 0.1)), labels)
    s = probe.summary()
    sim = np.array([[np.nan if v is None else v for v in row] for row in s["similarity"]])
    assert np.isnan(sim[3]).all() and np.isnan(sim[:, 3]).all()
    assert np.diag(sim)[:3] == pytest.approx(1.0, abs=0.05)
    assert s["off_diagonal"] == pytest.approx(0.0, abs=0.1)
    assert s["gap"] > 0.9 and s["spread"] > 0.5


def test_probe_reports_collapse_and_swapped_classes():
    labels = torch.randint(0, 3, (2, 16, 16))
    constant = torch.ones(2, 8, 16, 16)
    collapsed = AlignmentProbe(3)
    collapsed.add(_outputs(constant, constant), labels)
    assert collapsed.spread() == pytest.approx(0.0, abs=1e-6)
    assert collapsed.summary()["gap"] == pytest.approx(0.0, abs=1e-6)  # every class looks the same

    swapped = AlignmentProbe(3)  # modality 2 puts class 0 where modality 1 puts class 1
    swapped.add(_outputs(_class_features(labels, 8), _class_features((labels + 1) % 3, 8)), labels)
    assert swapped.summary()["diagonal"] == pytest.approx(0.0, abs=1e-6)


def test_training_draws_diagnostics_when_asked(demo_scene, tmp_path):
    spec = SceneSpec(str(demo_scene["sar"]), str(demo_scene["optical"]), str(demo_scene["labels"]))
    folder = tmp_path / "diag"
    folder.mkdir()  # an earlier, longer run drew into the same folder: nothing of it may stay
    (folder / "similarity_step000800.png").write_bytes(b"old")
    (folder / "similarity.json").write_text(json.dumps({"classes": ["x"], "steps": {"800": {}}}))
    cfg = tiny_train(steps=6, chip_size=64, val_fraction=0.2, val_every=100, class_table=str(demo_scene["classes"]))
    train([spec], tmp_path / "m.stars", TINY_MODEL, **cfg, diagnostics=folder, similarity_steps=[3], log=lambda *_: None)
    names = {p.name for p in folder.iterdir()}
    assert {"similarity_init.png", "similarity_step000003.png", "similarity_step000006.png", "curves.png",
            "confusion.png", "similarity.json"} <= names
    assert "similarity_step000800.png" not in names
    saved = json.loads((folder / "similarity.json").read_text())
    assert set(saved["steps"]) == {"0", "3", "6"} and len(saved["classes"]) == 6
    assert len(saved["steps"]["6"]["similarity"]) == 6
    history = read_model_file(tmp_path / "m.stars")["history"]
    validated = [h for h in history if "val_spread" in h]
    assert [h["step"] for h in validated] == [3, 6]
    assert all(0 < h["val_spread"] < 2 for h in validated)


def test_train_cli_takes_diagnostics_flags(demo_scene, tmp_path, capsys):
    folder = tmp_path / "d"
    code = cli_main(["train", "--m1", str(demo_scene["sar"]), "--m2", str(demo_scene["optical"]), "--labels",
                     str(demo_scene["labels"]), "--out", str(tmp_path / "m.stars"), "--backbone", "resnet18",
                     "--encoder-width", "16", "--steps", "2", "--batch-size", "2", "--chip-size", "64",
                     "--warmup-steps", "1", "--val-fraction", "0.2", "--workers", "0", "--device", "cpu",
                     "--diagnostics", str(folder), "--similarity-steps", "1"])
    assert code == 0
    assert (folder / "similarity_step000001.png").is_file() and (folder / "similarity_step000002.png").is_file()
    with pytest.raises(SystemExit):
        cli_main(["train", "--m1", "a", "--m2", "b", "--labels", "c", "--out", "d", "--similarity-steps", "x"])
    assert "comma-separated step numbers" in capsys.readouterr().err


def test_no_validation_chips_says_why_there_are_no_diagnostics(demo_scene, tmp_path):
    spec = SceneSpec(str(demo_scene["sar"]), str(demo_scene["optical"]), str(demo_scene["labels"]))
    messages = []
    train([spec], tmp_path / "m.stars", TINY_MODEL, **tiny_train(steps=2, chip_size=64, val_fraction=0, class_table=str(demo_scene["classes"])), diagnostics=tmp_path / "diag", log=messages.append)
    assert any("no validation chips" in m for m in messages)
    assert not (tmp_path / "diag").exists()


def test_similarity_json_holds_no_nan_tokens(tmp_path):
    diag = Diagnostics(tmp_path, ["a", "b"], ("SAR", "optical"), set(), resuming=False)
    metrics = metrics_from_confusion(np.array([[3, 1], [0, 2]]), ["a", "b"])
    alignment = {"similarity": [[0.9, None], [None, None]], "diagonal": 0.9, "off_diagonal": float("nan"),
                 "gap": float("nan"), "spread": 0.5}  # one class only: nothing off the diagonal
    diag.write(0, metrics, alignment, [{"step": 0}], final=False)

    def refuse(token):
        raise ValueError(f"{token} in similarity.json")

    saved = json.loads((tmp_path / "similarity.json").read_text(), parse_constant=refuse)
    assert saved["steps"]["0"]["gap"] is None and saved["steps"]["0"]["diagonal"] == 0.9
    assert (tmp_path / "similarity_init.png").is_file()
