"""The model file: what it holds, older layouts, damaged and hostile files, atomic writes."""
import os
import pickle

import pytest
import torch

from stars_core import checkpoint
from stars_core.checkpoint import load_model, read_meta, read_model_file, read_resume, save_model_file
from stars_core.errors import InputError


def test_meta_describes_the_trained_model(trained_model):
    meta = read_meta(read_model_file(trained_model))
    assert meta.model.backbone == "resnet18" and meta.model.in_channels == (2, 4)
    assert meta.classes.names[0] == "buildings" and meta.stats[0].names == ("VV", "VH")
    assert meta.data.chip_size == meta.chip_size == 128 and meta.train.steps == 30
    assert meta.modalities == ("SAR", "optical") and meta.crs is not None


def test_a_file_saved_and_read_again_gives_the_same_model(trained_model, tmp_path):
    payload = read_model_file(trained_model)
    meta = read_meta(payload)
    copy = tmp_path / "copy.stars"
    save_model_file(copy, meta, payload["state_dict"], payload["summary"], payload["history"])
    assert read_meta(read_model_file(copy)) == meta
    x = torch.randn(1, 2, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(load_model(copy).model(x), load_model(trained_model).model(x))


def test_files_from_before_the_data_config_still_load(trained_model, tmp_path):
    payload = read_model_file(trained_model)
    data = payload.pop("data_config")
    payload["train_config"].update(chip_size=data["chip_size"], val_fraction=data["val_fraction"],
                                   min_valid=data["min_valid"])
    old = tmp_path / "old.stars"
    torch.save(payload, old)
    loaded = load_model(old)
    assert loaded.meta.data.chip_size == 128 and loaded.chip_size == 128


def test_missing_keys_are_named(trained_model, tmp_path):
    payload = read_model_file(trained_model)
    del payload["bands"], payload["state_dict"]
    torch.save(payload, tmp_path / "cut.stars")
    with pytest.raises(InputError, match="incomplete STARS model file: it lacks state_dict, bands"):
        read_model_file(tmp_path / "cut.stars")


class _Runs:
    def __reduce__(self):
        return (open, ("/tmp/stars-pwned-by-model-file", "w"))


@pytest.mark.parametrize("content", [b"\x00garbage" * 10, pickle.dumps({"format": "stars-model", "x": _Runs()})],
                         ids=["random bytes", "pickle that runs code"])
def test_damaged_or_code_carrying_files_are_refused_without_advice_to_disable_safety(tmp_path, content):
    path = tmp_path / "bad.stars"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        read_model_file(path)
    message = str(err.value)
    assert "not plain data" in message and "weights_only" not in message and "\n" not in message
    assert not os.path.exists("/tmp/stars-pwned-by-model-file")  # nothing in the file ran


def test_a_failed_write_keeps_the_earlier_file(trained_model, tmp_path, monkeypatch):
    payload = read_model_file(trained_model)
    meta, target = read_meta(payload), tmp_path / "m.stars"
    save_model_file(target, meta, payload["state_dict"], {}, [])
    before = target.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(OSError):
        save_model_file(target, meta, payload["state_dict"], {}, [])
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.stars"]


def test_a_finished_file_cannot_be_resumed(trained_model):
    with pytest.raises(InputError, match="holds no training state to resume from"):
        read_resume(trained_model)
