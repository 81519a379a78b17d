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


def ssl4eo_style_file(path, name="resnet50", bands=2):
    """The layout of the Sentinel-1/2 self-supervised weights distributed with torchgeo: timm's
    resnet names (as torchvision's), wrapped by MoCo's encoder_q. and DDP's module., a 2-band first
    convolution, and a checkpoint dictionary around the state dict."""
    sd = torchvision_state_dict(name)
    sd["conv1.weight"] = torch.randn(64, bands, 7, 7)
    wrapped = {f"module.encoder_q.{k}": v for k, v in sd.items()}
    torch.save({"epoch": 100, "arch": name, "state_dict": wrapped}, path)
    return sd


@pytest.mark.parametrize("layout", ["torchvision", "ssl4eo"])
def test_per_modality_weights_land_in_their_encoders(tmp_path, layout):
    if layout == "torchvision":
        sar = torchvision_state_dict("resnet18")
        torch.save(sar, tmp_path / "sar.pth")
    else:
        sar = ssl4eo_style_file(tmp_path / "sar.pth", "resnet18", bands=2)
    opt = torchvision_state_dict("resnet18")
    torch.save(opt, tmp_path / "opt.pth")
    model = build_model(StarsConfig(in_channels=(2, 4), num_classes=3, backbone="resnet18"),
                        pretrained_m1=tmp_path / "sar.pth", pretrained_m2=tmp_path / "opt.pth")
    for part, sd in (("specific_m1", sar), ("specific_m2", opt), ("shared", opt)):
        own = getattr(model, part).state_dict()
        for key, value in sd.items():
            if key in own and not key.startswith("conv1"):
                torch.testing.assert_close(own[key], value, msg=f"{part}.{key}")
    shared = model.shared.state_dict()
    torch.testing.assert_close(shared["layer1.0.bn1.running_mean_m2"], opt["layer1.0.bn1.running_mean"])
    expected_conv = sar["conv1.weight"] if layout == "ssl4eo" else adapt_first_conv(sar["conv1.weight"], 2)
    torch.testing.assert_close(model.stem_m1.conv1.weight, expected_conv)  # 2 bands kept as they are
    torch.testing.assert_close(model.stem_m2.conv1.weight, adapt_first_conv(opt["conv1.weight"], 4))


def test_a_baseline_given_only_optical_weights_starts_from_them_like_the_stars_shared_body(tmp_path):
    """Fair baselines: with only --pretrained-m2 (e.g. ImageNet) STARS's shared body starts from it,
    and so must Baseline-SAR's encoder and the early-fusion encoder."""
    from stars_core.models import pretrained_plan

    opt = torchvision_state_dict("resnet18")
    torch.save(opt, tmp_path / "opt.pth")
    cfg = StarsConfig(in_channels=(2, 4), num_classes=3, backbone="resnet18")
    stars = build_model(cfg, pretrained_m2=tmp_path / "opt.pth")
    for mode in ("single", "concat"):
        baseline = build_model(StarsConfig(in_channels=(2, 4), num_classes=3, backbone="resnet18", mode=mode),
                               pretrained_m2=tmp_path / "opt.pth")
        torch.testing.assert_close(baseline.encoder.layer2[0].conv1.weight, opt["layer2.0.conv1.weight"])
        torch.testing.assert_close(baseline.encoder.layer2[0].conv1.weight, stars.shared.layer2[0].conv1.weight)
    assert pretrained_plan("single", {"m2"}) == {"encoder": "m2"}
    assert pretrained_plan("single", {"m1", "m2"}) == {"encoder": "m1"}
    assert pretrained_plan("stars", {"m2"}) == {"stem_m1": None, "stem_m2": "m2", "shared": "m2",
                                                "specific_m1": None, "specific_m2": "m2"}


def test_a_code_carrying_weights_file_is_refused_in_one_line(tmp_path):
    import pickle

    class Runs:
        def __reduce__(self):
            return (print, ("ran",))

    (tmp_path / "bad.pth").write_bytes(pickle.dumps({"conv1.weight": Runs()}))
    with pytest.raises(ValueError, match="not plain data, so it was not loaded") as err:
        load_pretrained(ResNetStem(1), tmp_path / "bad.pth")
    assert "weights_only" not in str(err.value)


def test_training_records_the_weights_and_warns_without_them(demo_scene, tmp_path):
    from stars_core.checkpoint import read_model_file
    from stars_core.training.data import SceneSpec
    from stars_core.training.train import train
    from tests.core.helpers import TINY_MODEL, tiny_train

    spec = [SceneSpec(str(demo_scene["sar"]), str(demo_scene["optical"]), str(demo_scene["labels"]))]
    cfg = tiny_train(steps=1, class_table=str(demo_scene["classes"]))
    tiny = {k: v for k, v in torchvision_state_dict("resnet18").items()}
    weights = tmp_path / "r18.pth"
    torch.save(tiny, weights)
    messages = []
    import dataclasses

    r50 = dataclasses.replace(TINY_MODEL, backbone="resnet50")
    train(spec, tmp_path / "a.stars", r50, **cfg, log=messages.append)
    assert any("from scratch: the paper's numbers assume pretrained weights" in m for m in messages)
    wide = dataclasses.replace(TINY_MODEL, encoder_width=64)
    train(spec, tmp_path / "b.stars", wide, **cfg, pretrained_m2=weights, log=lambda *_: None)
    record = read_model_file(tmp_path / "b.stars")["pretrained"]
    assert set(record) == {"m2"} and record["m2"]["file"] == "r18.pth" and len(record["m2"]["sha256"]) == 64
