"""Model shapes, wiring and input checks, shared across modes and backbones."""
import pytest
import torch

from stars_core import StarsConfig, build_model
from stars_core.models import SCSE, FusionModule, ResNet, TranslationModule

BACKBONES = ["resnet18", "resnet34", "resnet50"]
BANDS = [(1, 3), (2, 12), (1, 4)]


def _pair(bands, b=2, h=64, w=96):
    return torch.randn(b, bands[0], h, w), torch.randn(b, bands[1], h, w)


@pytest.mark.parametrize("bands", BANDS)
def test_stars_forward_shapes_for_band_counts(bands, seed):
    cfg = StarsConfig(in_channels=bands, num_classes=6, backbone="resnet18")
    model = build_model(cfg)
    x1, x2 = _pair(bands)
    out = model(x1, x2)
    for branch in ("m1", "m2", "fused"):
        assert out[branch].shape == (2, 6, 64, 96)
    channels = model.shared.out_channels
    for key in ("shared_m1", "shared_m2", "trans_12", "trans_21"):
        assert [tuple(f.shape) for f in out[key]] == [(2, channels[2], 4, 6), (2, channels[3], 2, 3)]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_each_backbone_paired_and_missing_modality(backbone, seed):
    model = build_model(StarsConfig(in_channels=(1, 3), num_classes=5, backbone=backbone)).eval()
    x1, x2 = _pair((1, 3), b=1, h=64, w=64)
    with torch.no_grad():
        out = model(x1, x2)
        logits = model(x1)
        logits_m2 = model(x2=x2)
    assert logits.shape == logits_m2.shape == (1, 5, 64, 64)
    # In eval mode the missing-modality path is exactly the paired forward's m1 branch.
    torch.testing.assert_close(logits, out["m1"])
    torch.testing.assert_close(logits_m2, out["m2"])


def test_missing_modality_does_not_touch_modality_two_parts(seed):
    model = build_model(StarsConfig(in_channels=(1, 3), num_classes=4, backbone="resnet18"))
    model(torch.randn(2, 1, 64, 64)).sum().backward()
    used = [model.stem_m1, model.shared, model.specific_m1, model.fusion_m1, model.decoder_m1]
    unused = [model.stem_m2, model.specific_m2, model.fusion_m2, model.decoder_m2, model.decoder_fused]
    assert all(any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters()) for m in used)
    assert all(p.grad is None for m in unused for p in m.parameters())


@pytest.mark.parametrize("mode,key", [("single", "m1"), ("concat", "fused")])
def test_baselines_share_the_calling_convention(mode, key, seed):
    model = build_model(StarsConfig(in_channels=(2, 12), num_classes=7, backbone="resnet18", mode=mode))
    x1, x2 = _pair((2, 12))
    out = model(x1, x2)
    assert set(out) == {key}
    assert out[key].shape == (2, 7, 64, 96)
    assert model(x1).shape == (2, 7, 64, 96)


def test_concat_missing_modality_is_zero_filled(seed):
    model = build_model(StarsConfig(in_channels=(1, 3), num_classes=3, backbone="resnet18", mode="concat")).eval()
    x1 = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x1), model(x1, torch.zeros(1, 3, 64, 64))["fused"])


def test_wrong_band_count_names_expected_and_received():
    model = build_model(StarsConfig(in_channels=(1, 3), num_classes=3, backbone="resnet18"))
    with pytest.raises(ValueError, match=r"3 band\(s\), got 4"):
        model(torch.randn(1, 1, 64, 64), torch.randn(1, 4, 64, 64))
    with pytest.raises(ValueError, match=r"1 band\(s\), got 2"):
        model(torch.randn(1, 2, 64, 64))


def test_size_not_multiple_of_32_suggests_padding():
    model = build_model(StarsConfig(in_channels=(1, 3), num_classes=3, backbone="resnet18"))
    with pytest.raises(ValueError, match=r"multiples of 32, got 70x64.*96x64"):
        model(torch.randn(1, 1, 70, 64))
    with pytest.raises(ValueError, match="share batch size"):
        model(torch.randn(1, 1, 64, 64), torch.randn(1, 3, 96, 64))


def test_single_refuses_modality_two_only():
    model = build_model(StarsConfig(in_channels=(1, 3), num_classes=3, backbone="resnet18", mode="single"))
    with pytest.raises(ValueError, match="modality 1 only"):
        model(x2=torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"in_channels": (0, 3)}, "positive band counts"),
        ({"backbone": "vgg16"}, "vgg16"),
        ({"mode": "late"}, "late"),
        ({"num_classes": 1}, "at least 2"),
        ({"align_stages": (5,)}, "subset of 1..4"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StarsConfig(**kwargs)


def test_config_round_trips_through_plain_dict():
    cfg = StarsConfig(in_channels=(2, 12), num_classes=9, backbone="resnet34", align_stages=(2, 3, 4))
    data = cfg.to_dict()
    assert data["in_channels"] == [2, 12] and isinstance(data["align_stages"], list)
    assert StarsConfig.from_dict(data) == cfg
    with pytest.raises(ValueError, match="unknown StarsConfig fields"):
        StarsConfig.from_dict({**data, "depth": 3})


def test_no_translation_ablation_passes_features_through(seed):
    model = build_model(StarsConfig(num_classes=3, backbone="resnet18", use_translation=False))
    out = model(*_pair((1, 3)))
    assert not hasattr(model, "translate_12")
    assert all(p is f for p, f in zip(out["trans_12"], out["shared_m1"]))


def test_resnet_strides_and_channels():
    for name, chans in {"resnet18": (64, 128, 256, 512), "resnet50": (256, 512, 1024, 2048)}.items():
        enc = ResNet(name, in_channels=5)
        feats = enc(torch.randn(1, 5, 64, 128))
        assert enc.out_channels == chans
        assert [tuple(f.shape[1:]) for f in feats] == [
            (c, 64 // s, 128 // s) for c, s in zip(chans, (4, 8, 16, 32))
        ]


def test_scse_gates_are_bounded_and_fusion_doubles_channels(seed):
    u = torch.randn(2, 32, 8, 8).abs()
    y = SCSE(32, reduction=4)(u)
    # Each gate lies in (0, 1), so the output of a non-negative input lies in [0, 2u].
    assert torch.all(y >= 0) and torch.all(y <= 2 * u + 1e-6)
    fused = FusionModule(32, reduction=4)(torch.randn(2, 32, 8, 8), torch.randn(2, 32, 8, 8))
    assert fused.shape == (2, 64, 8, 8)


def test_fusion_keeps_shared_stream_verbatim(seed):
    shared = torch.randn(2, 16, 4, 4)
    fused = FusionModule(16, reduction=4)(torch.randn(2, 16, 4, 4), shared)
    torch.testing.assert_close(fused[:, 16:], shared)


def test_translation_module_shape_and_instance_norm(seed):
    h = TranslationModule(16)
    x = torch.randn(3, 16, 5, 7)
    assert h(x).shape == x.shape
    # Instance norm makes the module blind to a per-sample affine change of its first projection's output.
    h.proj_in.bias.data.zero_()
    torch.testing.assert_close(h(x), h(3.0 * x), rtol=1e-4, atol=1e-4)
