"""The STARS losses against hand-written references and the properties the paper relies on."""
import math

import pytest
import torch

from stars_core import LossConfig, StarsConfig, build_model
from stars_core.training.losses import (
    pixel_contrastive_loss,
    sample_balanced_pixels,
    segmentation_loss,
    stars_loss,
    translation_loss,
)
from stars_core.models import PairOutput, TranslationModule


def _features(*shape):
    return torch.randn(*shape, requires_grad=True)


@pytest.mark.parametrize("detach", [True, False])
def test_stop_gradient_blocks_the_target_path(detach):
    torch.manual_seed(0)
    h12, h21 = TranslationModule(8), TranslationModule(8)
    # Separate leaves for the prediction inputs and the targets isolate the target path.
    src1, src2 = _features(2, 8, 4, 4), _features(2, 8, 4, 4)
    tgt1, tgt2 = _features(2, 8, 4, 4), _features(2, 8, 4, 4)
    translation_loss(h12(src1), h21(src2), tgt1, tgt2, detach=detach).backward()
    assert src1.grad.abs().sum() > 0 and src2.grad.abs().sum() > 0
    if detach:
        assert tgt1.grad is None and tgt2.grad is None
    else:
        assert tgt1.grad.abs().sum() > 0 and tgt2.grad.abs().sum() > 0


def test_stop_gradient_in_the_full_model_leaves_only_prediction_gradients():
    """With the same tensor as prediction input and target, detach removes exactly the target term."""
    torch.manual_seed(0)
    h12, h21 = TranslationModule(8), TranslationModule(8)
    f1, f2 = _features(1, 8, 3, 3), _features(1, 8, 3, 3)
    translation_loss(h12(f1), h21(f2), f1, f2, detach=True).backward()
    with_detach = f1.grad.clone()
    f1.grad = None
    # Reference: only the prediction path, targets as constants.
    loss = -0.5 * (torch.cosine_similarity(h12(f1), f2.detach(), 1).mean()
                   + torch.cosine_similarity(h21(f2), f1.detach(), 1).mean())
    loss.backward()
    torch.testing.assert_close(with_detach, f1.grad)


def test_translation_loss_value_is_minus_mean_cosine():
    a = torch.tensor([[[[1.0]], [[0.0]]]])  # (1, 2, 1, 1): unit x
    b = torch.tensor([[[[0.0]], [[1.0]]]])  # unit y, orthogonal to a
    assert translation_loss(a, a, a, a).item() == pytest.approx(-1.0)
    assert translation_loss(a, b, a, b).item() == pytest.approx(0.0, abs=1e-7)  # both pairs orthogonal
    assert translation_loss(a, a, -a, -a).item() == pytest.approx(1.0)  # opposite targets
    with pytest.raises(ValueError, match="must match"):
        translation_loss(a, a, a, torch.randn(1, 3, 1, 1))


def test_sampler_counts_classes_ignore_and_repetition():
    labels = torch.full((2, 8, 8), 255)
    labels[0, :4] = 0  # 32 pixels
    labels[1, :, :5] = 3  # 40 pixels
    labels[0, 7, 7] = 5  # a single pixel: must be repeated
    labels[1, 7, 7] = 2
    labels[1, 6, 7] = 2  # two pixels
    gen = torch.Generator().manual_seed(1)
    idx, cls = sample_balanced_pixels(labels, n=16, ignore_index=255, generator=gen)
    flat = labels.reshape(-1)
    assert cls.tolist() == [0] * 16 + [2] * 16 + [3] * 16 + [5] * 16
    assert torch.equal(flat[idx], cls)  # every sample lies on its class
    assert 255 not in flat[idx].tolist()
    assert set(idx[cls == 5].tolist()) == {7 * 8 + 7}  # one pixel, repeated 16 times
    assert len(set(idx[cls == 2].tolist())) == 2
    assert len(set(idx[cls == 0].tolist())) == 16  # enough pixels: no repetition


def test_sampler_shuffles_and_is_reproducible():
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    labels[0, 8:] = 1
    a = sample_balanced_pixels(labels, 8, generator=torch.Generator().manual_seed(7))
    b = sample_balanced_pixels(labels, 8, generator=torch.Generator().manual_seed(7))
    c = sample_balanced_pixels(labels, 8, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    # Shuffled: not simply the first positions of each class in raster order.
    assert a[0][:8].tolist() != list(range(8))


def test_sampler_with_nothing_labelled_returns_empty():
    idx, cls = sample_balanced_pixels(torch.full((1, 4, 4), 255), 4)
    assert idx.numel() == 0 and cls.numel() == 0


def _psc_reference(f1, f2, classes, tau):
    """Eq. 5 of the paper with explicit loops, averaged over anchors."""
    m = f1.shape[0]
    total = 0.0
    for i in range(m):
        num = den = 0.0
        for j in range(m):
            sim = torch.dot(f1[i], f2[j]).item() / (f1[i].norm().item() * f2[j].norm().item())
            e = math.exp(sim / tau)
            den += e
            if classes[i] == classes[j]:
                num += e
        total += -math.log(num / den)
    return total / m


def test_pixel_contrastive_loss_matches_loop_reference():
    torch.manual_seed(3)
    f1, f2 = torch.randn(12, 5, dtype=torch.float64), torch.randn(12, 5, dtype=torch.float64)
    classes = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 4, 4, 1])
    for tau in (0.1, 0.5):
        got = pixel_contrastive_loss(f1, f2, classes, tau).item()
        assert got == pytest.approx(_psc_reference(f1, f2, classes, tau), abs=1e-5)


def test_pixel_contrastive_loss_prefers_aligned_classes():
    torch.manual_seed(0)
    classes = torch.arange(4).repeat_interleave(8)
    centers = torch.randn(4, 16)
    f1 = centers[classes] + 0.1 * torch.randn(32, 16)
    f2 = centers[classes] + 0.1 * torch.randn(32, 16)
    aligned = pixel_contrastive_loss(f1, f2, classes, 0.1)
    shuffled = pixel_contrastive_loss(f1, f2[torch.randperm(32)], classes, 0.1)
    assert aligned < shuffled


def test_segmentation_loss_is_mean_of_branches_and_ignores_index():
    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 4, 4))
    target[0, 0, 0] = 255
    out = PairOutput(*(torch.randn(2, 3, 4, 4) for _ in range(3)))
    ce = [torch.nn.functional.cross_entropy(v, target, ignore_index=255) for v in out.logits().values()]
    assert segmentation_loss(out, target).item() == pytest.approx(sum(c.item() for c in ce) / 3)
    # Changing the logits at the ignored pixel changes nothing.
    out2 = PairOutput(*(v.clone() for v in out.logits().values()))
    for v in out2.logits().values():
        v[0, :, 0, 0] = 100.0
    assert segmentation_loss(out2, target).item() == pytest.approx(segmentation_loss(out, target).item())


def test_stars_loss_combines_terms_with_weights_and_switches():
    torch.manual_seed(0)
    model = build_model(StarsConfig(in_channels=(1, 3), num_classes=4, backbone="resnet18"))
    x1, x2 = torch.randn(2, 1, 64, 64), torch.randn(2, 3, 64, 64)
    target = torch.randint(0, 4, (2, 64, 64))
    out = model(x1, x2)
    cfg = LossConfig(alpha=0.5, beta=0.2)
    total, terms = stars_loss(out, target, cfg, torch.Generator().manual_seed(0))
    assert terms["psc"] > 0 and terms["ncs"] != 0
    expected = terms["seg"] + 0.5 * terms["psc"] + 0.2 * terms["ncs"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    total.backward()
    assert all(p.grad is not None for p in model.translate_12.parameters())

    _, off = stars_loss(out, target, LossConfig(use_psc=False, use_ncs=False))
    assert off["psc"] == 0 and off["ncs"] == 0 and off["total"] == pytest.approx(terms["seg"].item())


def test_stars_loss_on_baseline_is_segmentation_only():
    model = build_model(StarsConfig(num_classes=3, backbone="resnet18", mode="single"))
    out = model(torch.randn(1, 1, 64, 64), torch.randn(1, 3, 64, 64))
    total, terms = stars_loss(out, torch.randint(0, 3, (1, 64, 64)), LossConfig())
    assert terms["psc"] == 0 and terms["ncs"] == 0 and total.item() == pytest.approx(terms["seg"].item())


def test_loss_config_rejects_bad_values():
    with pytest.raises(ValueError, match="tau"):
        LossConfig(tau=0)
    with pytest.raises(ValueError, match="n_samples"):
        LossConfig(n_samples=0)


def test_psa_leaves_excluded_classes_out_of_the_sampling():
    labels = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 255]])
    idx, classes = sample_balanced_pixels(labels, 3, 255, torch.Generator().manual_seed(0), exclude=(0,))
    assert sorted(set(classes.tolist())) == [1, 2] and len(idx) == 6
    assert all(labels.reshape(-1)[i] != 0 for i in idx.tolist())


def test_psa_exclusions_are_class_values_checked_against_the_table(demo_scene, tmp_path):
    from stars_core.training.data import SceneSpec
    from stars_core.errors import InputError
    from stars_core.training.train import train
    from tests.core.helpers import TINY_MODEL, tiny_train

    spec = [SceneSpec(str(demo_scene["sar"]), str(demo_scene["optical"]), str(demo_scene["labels"]))]
    cfg = tiny_train(steps=1, class_table=str(demo_scene["classes"]))
    with pytest.raises(InputError, match=r"--psa-exclude: \[9\] not in the class table"):
        train(spec, tmp_path / "m.stars", TINY_MODEL, LossConfig(psa_exclude=(9,)), **cfg, log=lambda *_: None)
    result = train(spec, tmp_path / "m.stars", TINY_MODEL, LossConfig(psa_exclude=(4,)), **cfg, log=lambda *_: None)
    assert result.steps_done == 1


def test_translation_handles_a_one_pixel_stage():
    h = TranslationModule(8).train()
    x = torch.randn(2, 8, 1, 1, requires_grad=True)
    y = h(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.sum().backward()
    assert h.norm.bias.grad is not None  # the shift still learns


def test_stars_trains_on_32_pixel_chips(seed):
    model = build_model(StarsConfig(in_channels=(1, 3), num_classes=3, backbone="resnet18", encoder_width=16))
    target = torch.randint(0, 3, (2, 32, 32))
    loss, terms = stars_loss(model(torch.randn(2, 1, 32, 32), torch.randn(2, 3, 32, 32)), target, LossConfig())
    loss.backward()
    assert torch.isfinite(loss) and terms["ncs"] != 0
