"""Every model (backbone x mode) through the same checks, like segmentation_models_pytorch's shared
tester; then the building blocks (ResNet, SCSE, fusion, translation)."""
import pytest
import torch

from stars_core import StarsConfig, build_model
from stars_core.config import BACKBONES, MODES
from stars_core.models import SCSE, FusionModule, PairOutput, ResNet, TranslationModule

BRANCHES = {"stars": {"m1", "m2", "fused"}, "single": {"m1"}, "concat": {"fused"}}


def _pair(bands, b=2, h=64, w=96):
    return torch.randn(b, bands[0], h, w), torch.randn(b, bands[1], h, w)


@pytest.fixture(scope="module", params=[(b, m) for b in BACKBONES for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}")
def any_model(request):
    backbone, mode = request.param
    torch.manual_seed(0)
    cfg = StarsConfig(in_channels=(2, 4), num_classes=5, backbone=backbone, mode=mode, encoder_width=16,
                      pyramid_channels=32, segmentation_channels=32)
    return cfg, build_model(cfg)


class TestEveryModel:
    def test_pair_returns_the_branches_of_its_mode_at_input_size(self, any_model):
        cfg, model = any_model
        model.train()
        out = model(*_pair(cfg.in_channels))
        assert isinstance(out, PairOutput)
        assert set(out.logits()) == BRANCHES[cfg.mode]
        assert all(v.shape == (2, 5, 64, 96) for v in out.logits().values())
        if cfg.mode == "stars":
            chans = model.shared.out_channels
            for feats in (out.shared_m1, out.shared_m2, out.trans_12, out.trans_21):
                assert [tuple(f.shape) for f in feats] == [(2, chans[2], 4, 6), (2, chans[3], 2, 3)]
        else:
            assert out.shared_m1 == [] and out.trans_12 == []

    def test_missing_modality_gives_the_paired_m1_answer_in_eval_mode(self, any_model):
        cfg, model = any_model
        model.eval()
        x1, x2 = _pair(cfg.in_channels, b=1, h=64, w=64)
        with torch.no_grad():
            alone, out = model(x1), model(x1, x2)
            if cfg.mode == "concat":  # a missing modality is zero-filled: the same as giving zeros
                out = model(x1, torch.zeros_like(x2))
        assert alone.shape == (1, 5, 64, 64)
        torch.testing.assert_close(alone, out.m1 if out.m1 is not None else out.fused)

    def test_gradients_reach_every_parameter_the_pair_uses(self, any_model):
        cfg, model = any_model
        model.train()
        model.zero_grad(set_to_none=True)
        out = model(*_pair(cfg.in_channels, b=2, h=64, w=64))
        loss = sum(v.mean() for v in out.logits().values()) + sum(f.mean() for f in out.trans_12 + out.trans_21)
        loss.backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert missing == []

    def test_bad_inputs_name_expected_and_received(self, any_model):
        cfg, model = any_model
        with pytest.raises(ValueError, match=rf"{cfg.in_channels[0]} band\(s\), got 3"):
            model(torch.randn(1, 3, 64, 64))
        with pytest.raises(ValueError, match=r"multiples of 32, got 70x64.*96x64"):
            model(torch.randn(1, cfg.in_channels[0], 70, 64))

    def test_weights_round_trip_through_a_state_dict(self, any_model):
        cfg, model = any_model
        model.eval()
        twin = build_model(cfg).eval()
        twin.load_state_dict(model.state_dict())
        x1 = torch.randn(1, cfg.in_channels[0], 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(twin(x1), model(x1))


def test_missing_modality_does_not_touch_modality_two_parts(seed):
    model = build_model(StarsConfig(in_channels=(1, 3), num_classes=4, backbone="resnet18"))
    model(torch.randn(2, 1, 64, 64)).sum().backward()
    used = [model.stem_m1, model.shared, model.specific_m1, model.fusion_m1, model.decoder_m1]
    unused = [model.stem_m2, model.specific_m2, model.fusion_m2, model.decoder_m2, model.decoder_fused]
    assert all(any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters()) for m in used)
    assert all(p.grad is None for m in unused for p in m.parameters())


def test_modality_two_alone_uses_the_m2_branch(seed):
    model = build_model(StarsConfig(in_channels=(1, 3), num_classes=4, backbone="resnet18")).eval()
    x1, x2 = _pair((1, 3), b=1, h=64, w=64)
    with torch.no_grad():
        torch.testing.assert_close(model(x2=x2), model(x1, x2).m2)


def test_pair_size_mismatch_and_single_without_modality_one():
    model = build_model(StarsConfig(in_channels=(1, 3), num_classes=3, backbone="resnet18"))
    with pytest.raises(ValueError, match="share batch size"):
        model(torch.randn(1, 1, 64, 64), torch.randn(1, 3, 96, 64))
    single = build_model(StarsConfig(in_channels=(1, 3), num_classes=3, backbone="resnet18", mode="single"))
    with pytest.raises(ValueError, match="modality 1 only"):
        single(x2=torch.randn(1, 3, 64, 64))


def test_no_translation_ablation_passes_features_through(seed):
    model = build_model(StarsConfig(num_classes=3, backbone="resnet18", use_translation=False))
    out = model(*_pair((1, 3)))
    assert not hasattr(model, "translate_12")
    assert all(p is f for p, f in zip(out.trans_12, out.shared_m1))


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
