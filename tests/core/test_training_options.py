"""Training options of issue 25: the best checkpoint kept (--keep-best), class-weighted L_seg
(--class-weights) and fine-tuning a trained model to a new area (--init-from, --freeze)."""
import pytest
import torch

from stars_core.training.data import SceneSpec
from stars_core.errors import InputError
from tests.core.helpers import TINY_MODEL, tiny_train


@pytest.fixture
def spec(demo_scene):
    return [SceneSpec(str(demo_scene["sar"]), str(demo_scene["optical"]), str(demo_scene["labels"]))]


def test_keep_best_keeps_the_best_validation_weights_and_segmentation_uses_them(spec, demo_scene, tmp_path, capsys):
    from stars_core.checkpoint import load_model, read_model_file
    from stars_core.cli import main as cli_main
    from stars_core.training.train import train

    out = tmp_path / "best.stars"
    train(spec, out, TINY_MODEL, **tiny_train(steps=6, val_every=2, keep_best=True, lr=5e-3,
                                              class_table=str(demo_scene["classes"])), log=lambda *_: None)
    payload = read_model_file(out)
    scores = {h["step"]: h["val_m1_miou"] for h in payload["history"] if "val_m1_miou" in h}
    best = payload["best"]
    assert set(scores) == {2, 4, 6} and best["val_m1_miou"] == max(scores.values())
    assert best["step"] == min(s for s, v in scores.items() if v == max(scores.values()))  # the first best
    key = "stem_m1.conv1.weight"
    assert torch.equal(load_model(out).model.state_dict()[key].cpu(), best["state_dict"][key])
    last = load_model(out, weights="last")
    assert torch.equal(last.model.state_dict()[key].cpu(), payload["state_dict"][key]) and last.weights == "last"
    assert cli_main(["info", str(out)]) == 0
    assert f"best of validation at step {best['step']}" in capsys.readouterr().out
    assert cli_main(["segment", str(out), str(demo_scene["sar"]), str(tmp_path / "m.tif"), "--tile-size", "128",
                     "--device", "cpu", "--runtime", "torch", "--weights", "last"]) == 0
    plain = tmp_path / "plain.stars"
    train(spec, plain, TINY_MODEL, **tiny_train(steps=2, val_every=1, class_table=str(demo_scene["classes"])),
          log=lambda *_: None)
    assert "best" not in read_model_file(plain) and load_model(plain).weights == "last"


def test_class_weights_are_inverse_frequencies_with_a_mean_of_one():
    import torch.nn.functional as F

    from stars_core.config import class_weight_values
    from stars_core.training.losses import segmentation_loss
    from stars_core.models import PairOutput

    counts = [900, 90, 10, 0]
    for mode, ratio in (("inverse", 90.0), ("sqrt-inverse", 90.0 ** 0.5)):
        w = class_weight_values(mode, counts)
        assert sum(a * c for a, c in zip(w, counts)) / sum(counts) == pytest.approx(1.0)
        assert w[2] / w[0] == pytest.approx(ratio) and w[3] == 0
    assert class_weight_values("none", counts) == ()
    torch.manual_seed(0)
    logits, target = torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8))
    target[0, 0, 0] = 255
    w = class_weight_values("inverse", counts)
    got = segmentation_loss(PairOutput(m1=logits), target, 255, w)
    want = F.cross_entropy(logits, target, weight=torch.tensor(w), ignore_index=255)
    assert got == pytest.approx(float(want)) and got != pytest.approx(float(F.cross_entropy(logits, target,
                                                                                              ignore_index=255)))


def test_class_weights_are_computed_from_the_labels_and_recorded(spec, demo_scene, tmp_path):
    from stars_core.checkpoint import read_meta, read_model_file
    from stars_core.config import LossConfig, class_weight_values
    from stars_core.training.train import train

    said = []
    out = tmp_path / "w.stars"
    train(spec, out, TINY_MODEL, LossConfig(class_weights="sqrt-inverse"),
          **tiny_train(steps=2, class_table=str(demo_scene["classes"]), ignore_values=(0,)), log=said.append)
    payload = read_model_file(out)
    loss = read_meta(payload).loss
    counts = payload["summary"]["class_pixels"]
    assert loss.class_weights == "sqrt-inverse" and loss.class_weight_values == pytest.approx(
        class_weight_values("sqrt-inverse", counts))
    assert any(m.startswith("class weights (sqrt-inverse") for m in said)
    with pytest.raises(InputError, match="class_weights must be one of"):
        LossConfig(class_weights="balanced")


def test_fine_tuning_starts_from_the_model_keeps_matching_classes_and_freezes(trained_model, spec, demo_scene,
                                                                             tmp_path, capsys):
    from stars_core.checkpoint import load_model, read_model_file
    from stars_core.training.train import train

    table = tmp_path / "classes.csv"  # the demo's classes and one the source model never saw
    table.write_text(open(demo_scene["classes"]).read().rstrip("\n") + "\n9,snow,#ffffff\n")
    out = tmp_path / "tuned.stars"
    said = []
    train(spec, out, None, **tiny_train(steps=2, lr=1e-3, chip_size=64, class_table=str(table), ignore_values=(0,)),
          init_from=trained_model, freeze="encoders", log=said.append)
    record = read_model_file(out)["init_from"]
    import hashlib

    assert record["sha256"] == hashlib.sha256(trained_model.read_bytes()).hexdigest() and record["freeze"] == "encoders"
    assert record["classes_new"] == ["snow"] and "snow" not in record["classes_kept"] and len(record["classes_kept"]) == 6
    assert any("keep the source's classifier rows" in m and "snow" in m for m in said)
    source, tuned = load_model(trained_model).model.state_dict(), load_model(out).model.state_dict()
    for key in ("stem_m1.conv1.weight", "shared.layer1.0.bn1.running_mean", "specific_m1.layer4.0.conv1.weight"):
        assert torch.equal(tuned[key], source[key]), key  # frozen: weights and BatchNorm statistics kept
    assert not torch.equal(tuned["decoder_m1.classifier.bias"][:6], source["decoder_m1.classifier.bias"])  # trained
    assert tuned["decoder_m1.classifier.weight"].shape[0] == 7
    from stars_core.cli import main as cli_main

    capsys.readouterr()
    assert cli_main(["info", str(out)]) == 0  # `stars info` says where the run started, as it names a teacher
    shown = capsys.readouterr().out
    assert f"fine-tuned from {trained_model.name}" in shown and record["sha256"][:12] in shown
    assert "frozen: encoders" in shown and "new: snow" in shown


def test_the_source_rows_land_on_the_classes_of_the_same_value(trained_model, demo_scene, tmp_path):
    from stars_core.checkpoint import load_model
    from stars_core.classes import ClassTable
    from stars_core.training.finetune import load_source, read_source
    from stars_core.models import build_model

    src = read_source(trained_model, "none")
    old = src.meta.classes
    new = ClassTable((9, old.values[2], old.values[0]), ("snow", old.names[2], old.names[0]),
                     ("#ffffff", old.colors[2], old.colors[0]))
    import dataclasses

    model = build_model(dataclasses.replace(src.meta.model, num_classes=3))
    fresh = model.state_dict()["decoder_m1.classifier.weight"].clone()
    load_source(model, src, new)
    w, theirs = model.state_dict()["decoder_m1.classifier.weight"], load_model(trained_model).model.state_dict()
    assert torch.equal(w[1], theirs["decoder_m1.classifier.weight"][2])
    assert torch.equal(w[2], theirs["decoder_m1.classifier.weight"][0]) and torch.equal(w[0], fresh[0])


def test_fine_tuning_refuses_what_it_cannot_do_in_one_line(trained_model, demo_scene, tmp_path, capsys):
    from stars_core.cli import _parser, main as cli_main, train_settings

    base = ["train", "--m1", str(demo_scene["sar"]), "--m2", str(demo_scene["optical"]), "--labels",
            str(demo_scene["labels"]), "--out", str(tmp_path / "x.stars"), "--steps", "1", "--device", "cpu",
            "--workers", "0", "--init-from", str(trained_model)]
    assert train_settings(_parser().parse_args(base))[2].lr == pytest.approx(1e-5)  # a tenth of the paper's
    assert cli_main(base + ["--resume", str(trained_model)]) == 2
    assert cli_main(base + ["--pretrained-m1", str(trained_model)]) == 2
    assert "leave out --pretrained" in capsys.readouterr().err
    swapped = base.copy()
    swapped[2], swapped[4] = str(demo_scene["optical"]), str(demo_scene["sar"])  # 4 + 2 bands, not 2 + 4
    assert cli_main(swapped) == 2
    assert "the source model takes 2 + 4 bands" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: an unknown choice is named with the choices
        cli_main(base + ["--freeze", "everything"])
    assert not (tmp_path / "x.stars").exists()
