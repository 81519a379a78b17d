"""Configurations: validation with clear messages, plain-dict round trips, the recipe rule."""
import pytest

from stars_core.config import (PAPER_STEPS, PAPER_WARMUP, DataConfig, LossConfig, SegmentConfig, StarsConfig,
                               TrainConfig, split_legacy_train_config)
from stars_core.errors import InputError


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"in_channels": (0, 3)}, "positive band counts"),
        ({"backbone": "vgg16"}, "vgg16"),
        ({"mode": "late"}, "late"),
        ({"num_classes": 1}, "at least 2"),
        ({"align_stages": (5,)}, "subset of 1..4"),
        ({"encoder_width": 12}, "multiple of 8"),
    ],
)
def test_model_config_rejects_bad_values(kwargs, match):
    with pytest.raises(InputError, match=match):
        StarsConfig(**kwargs)


@pytest.mark.parametrize("cls,value", [
    (StarsConfig, StarsConfig(in_channels=(2, 12), num_classes=9, backbone="resnet34", align_stages=(2, 3, 4))),
    (LossConfig, LossConfig(alpha=0.1, detach=False)),
    (TrainConfig, TrainConfig(steps=10, warmup_steps=2, device="cuda:1")),
    (DataConfig, DataConfig(chip_size=96, ignore_values=[0, 255], aoi="a.gpkg")),
])
def test_configs_round_trip_through_plain_dicts(cls, value):
    data = value.to_dict()
    assert all(not isinstance(v, tuple) for v in data.values())  # JSON- and weights_only-safe
    assert cls.from_dict(data) == value
    with pytest.raises(InputError, match=f"unknown {cls.__name__} fields"):
        cls.from_dict({**data, "depth": 3})


def test_the_paper_recipe_is_the_default_and_scales_to_shorter_runs():
    paper = TrainConfig.for_steps(PAPER_STEPS)
    assert paper == TrainConfig()  # 80k steps: exactly the paper's 1000 warm-up steps, validation every 1000
    short = TrainConfig.for_steps(400)
    assert short.warmup_steps == round(400 * PAPER_WARMUP / PAPER_STEPS) == 5
    assert short.val_every == 80 and short.checkpoint_every == 40
    tiny = TrainConfig.for_steps(3)
    assert tiny.warmup_steps == 1 and tiny.val_every == 1 and tiny.checkpoint_every == 1
    assert TrainConfig.for_steps(500, warmup_steps=0, lr=1e-3).warmup_steps == 0  # overrides win
    with pytest.raises(InputError, match="steps must be at least 1"):
        TrainConfig.for_steps(0)


@pytest.mark.parametrize("kwargs,match", [
    ({"steps": 0}, "steps must be at least 1"),
    ({"device": "gpu"}, "auto, cpu, cuda or cuda:N, got 'gpu'"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"num_workers": -1}, "num_workers"),
])
def test_train_config_rejects_bad_values(kwargs, match):
    with pytest.raises(InputError, match=match):
        TrainConfig(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"chip_size": 100}, "multiple of 32, got 100"),
    ({"val_fraction": 1.0}, r"\[0, 1\)"),
    ({"min_valid": 0}, r"\(0, 1\]"),
])
def test_data_config_rejects_bad_values(kwargs, match):
    with pytest.raises(InputError, match=match):
        DataConfig(**kwargs)


def test_old_model_files_kept_data_settings_in_the_train_config():
    old = {**TrainConfig(steps=50).to_dict(), "chip_size": 128, "val_fraction": 0.2, "min_valid": 0.3}
    train_cfg, data_cfg = split_legacy_train_config(old)
    assert train_cfg.steps == 50 and (data_cfg.chip_size, data_cfg.val_fraction, data_cfg.min_valid) == (128, 0.2, 0.3)


def test_segment_tile_defaults_to_the_training_chip_and_overlap_follows():
    cfg = SegmentConfig()
    assert cfg.tile_size is None and cfg.overlap is None
    resolved = cfg.for_model(200)  # rounded up to the 32-pixel stride
    assert (resolved.tile_size, resolved.overlap) == (224, 32)  # an eighth, at least 32
    given = SegmentConfig(tile_size=128, overlap=10)
    assert given.for_model(512) is given
    assert [SegmentConfig(tile_size=t).overlap for t in (32, 64, 256, 512, 1024)] == [16, 32, 32, 64, 128]
    assert SegmentConfig(batch_size=None).batch_for("cpu") == 1 and SegmentConfig().batch_for("cuda") == 4


@pytest.mark.parametrize("kwargs,match", [
    ({"tile_size": 100}, "multiple of 32"),
    ({"tile_size": 64, "overlap": 64}, "overlap must be in 0..63"),
    ({"batch_size": 0}, "at least 1"),
    ({"modality": 3}, "modality must be 1"),
    ({"device": "gpu"}, "got 'gpu'"),
])
def test_segment_config_rejects_bad_values(kwargs, match):
    with pytest.raises(InputError, match=match):
        SegmentConfig(**kwargs)
