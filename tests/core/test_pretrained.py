"""Loading torchvision-named ImageNet weights from a local file (generated here, no download)."""
import pytest
import torch

from stars_core import StarsConfig, build_model
from stars_core.models import ResNet, ResNetStem, adapt_first_conv, load_pretrained

# torchvision.models.resnet50().state_dict() key layout, written out from its documented structure.
BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet50": (3, 4, 6, 3)}


def _bn(prefix, c):
    return {
        f"{prefix}.weight": torch.rand(c), f"{prefix}.bias": torch.randn(c),
        f"{prefix}.running_mean": torch.randn(c), f"{prefix}.running_var": torch.rand(c) + 0.5,
        f"{prefix}.num_batches_tracked": torch.tensor(100),
    }


def torchvision_state_dict(name):
    """A random state_dict with exactly torchvision's key names and shapes for `name`."""
    bottleneck = name == "resnet50"
    exp = 4 if bottleneck else 1
    sd = {"conv1.weight": torch.randn(64, 3, 7, 7), **_bn("bn1", 64)}
    inplanes = 64
    for li, (planes, n) in enumerate(zip((64, 128, 256, 512), BLOCKS[name]), start=1):
        for b in range(n):
            p = f"layer{li}.{b}"
            cin = inplanes if b == 0 else planes * exp
            if bottleneck:
                sd[f"{p}.conv1.weight"] = torch.randn(planes, cin, 1, 1)
                sd[f"{p}.conv2.weight"] = torch.randn(planes, planes, 3, 3)
                sd[f"{p}.conv3.weight"] = torch.randn(planes * exp, planes, 1, 1)
                sd.update(_bn(f"{p}.bn1", planes) | _bn(f"{p}.bn2", planes) | _bn(f"{p}.bn3", planes * exp))
            else:
                sd[f"{p}.conv1.weight"] = torch.randn(planes, cin, 3, 3)
                sd[f"{p}.conv2.weight"] = torch.randn(planes, planes, 3, 3)
                sd.update(_bn(f"{p}.bn1", planes) | _bn(f"{p}.bn2", planes))
            if b == 0 and (li > 1 or bottleneck):
                sd[f"{p}.downsample.0.weight"] = torch.randn(planes * exp, cin, 1, 1)
                sd.update(_bn(f"{p}.downsample.1", planes * exp))
        inplanes = planes * exp
    sd["fc.weight"] = torch.randn(1000, 512 * exp)
    sd["fc.bias"] = torch.randn(1000)
    return sd


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_has_exactly_torchvision_keys(name):
    expected = {k for k in torchvision_state_dict(name) if not k.startswith("fc.")}
    assert set(ResNet(name, in_channels=3).state_dict()) == expected


def test_load_rgb_file_into_resnet50(tmp_path):
    sd = torchvision_state_dict("resnet50")
    path = tmp_path / "resnet50.pth"
    torch.save(sd, path)
    enc = ResNet("resnet50", in_channels=3)
    loaded = load_pretrained(enc, path)
    assert "fc.weight" not in loaded and "layer4.2.conv3.weight" in loaded
    torch.testing.assert_close(enc.layer3[5].conv2.weight, sd["layer3.5.conv2.weight"])
    torch.testing.assert_close(enc.conv1.weight, sd["conv1.weight"])


def test_first_conv_adapted_to_band_count():
    w = torch.randn(64, 3, 7, 7)
    one = adapt_first_conv(w, 1)
    twelve = adapt_first_conv(w, 12)
    assert one.shape == (64, 1, 7, 7) and twelve.shape == (64, 12, 7, 7)
    # A band-constant image gives the same response as the RGB filters on a grey image.
    torch.testing.assert_close(one.sum(1), w.sum(1))
    torch.testing.assert_close(twelve.sum(1), w.sum(1))
    torch.testing.assert_close(twelve[:, 4], w.mean(1) * 3 / 12)


def test_stars_model_loads_file_into_every_encoder(tmp_path):
    sd = torchvision_state_dict("resnet18")
    path = tmp_path / "r18.pth"
    torch.save(sd, path)
    model = build_model(StarsConfig(in_channels=(2, 4), num_classes=3, backbone="resnet18"), pretrained=path)
    torch.testing.assert_close(model.shared.layer2[1].conv1.weight, sd["layer2.1.conv1.weight"])
    torch.testing.assert_close(model.specific_m2.layer4[0].downsample[0].weight, sd["layer4.0.downsample.0.weight"])
    torch.testing.assert_close(model.stem_m1.conv1.weight, adapt_first_conv(sd["conv1.weight"], 2))
    torch.testing.assert_close(model.stem_m2.bn1.running_var, sd["bn1.running_var"])


def test_wrong_depth_and_missing_file_are_explained(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision_state_dict("resnet18"), path)
    with pytest.raises(ValueError, match="same ResNet depth"):
        load_pretrained(ResNet("resnet50"), path)
    with pytest.raises(FileNotFoundError, match="torch.save"):
        load_pretrained(ResNetStem(1), tmp_path / "absent.pth")
