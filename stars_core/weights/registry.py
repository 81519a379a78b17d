"""Named pretrained encoder weights: where each file comes from, how to check it, what it expects.

Every URL and hash prefix is copied from its publisher's own source, never written from memory:
- torchvision's ImageNet ResNets: `torchvision/models/resnet.py` (the `ResNet*_Weights` enums of
  pytorch/vision, read in two of its forks, as the search index holds only an old upstream copy;
  pytorch.org's model pages give the same files), whose loader checks them with
  `check_hash=True`; their preprocessing from
  `torchvision/transforms/_presets.py` (ImageClassification: RGB in 0..1, ImageNet mean and std).
- SSL4EO-S12 self-supervised ResNets: torchgeo's `torchgeo/models/resnet.py` (microsoft/torchgeo,
  HEAD 7ea0616 of 2025-08-14: `ResNet50_Weights.SENTINEL1_GRD_MOCO`, `..._SENTINEL1_GRD_DECUR`,
  `SENTINEL2_ALL_MOCO`, `ResNet18_Weights.SENTINEL2_ALL_MOCO`), with the bands and normalisation
  torchgeo states there (`_sentinel1_grd_bands`, `_mean_s1`/`_std_s1`, `_ssl4eo_s12_transforms_s2_10k`)
  and the licences of torchgeo's weight tables (docs/api/weights/sentinel1.csv, sentinel2.csv).
The hash is the prefix of the file's SHA-256 that its publisher put in the file name (the
`-<hex>.` part), checked the way torch.hub's `download_url_to_file` checks it.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlparse

# torch.hub's HASH_REGEX (torch/hub.py): the first "-<hex>." in the file name
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")

IMAGENET = "RGB reflectance or 8-bit values scaled to 0..1, then mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)"
SENTINEL2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    url: str
    arch: str  # resnet18 | resnet34 | resnet50
    layout: str  # torchvision | timm (the same key names; the loader strips MoCo's and DDP's prefixes)
    bands: tuple[str, ...]  # the input channels, in order
    normalisation: str  # what the publisher feeds the network (STARS standardises each band itself)
    licence: str
    source: str  # where the URL and hash were read
    sha256: str | None = None  # the whole digest where known; else the file name's prefix is checked

    @property
    def filename(self) -> str:
        return os.path.basename(urlparse(self.url).path)

    @property
    def hash_prefix(self) -> str:
        if self.sha256:
            return self.sha256
        m = HASH_REGEX.search(self.filename)
        return m.group(1) if m else ""


TORCHVISION = ("torchvision/models/resnet.py of pytorch/vision as its forks carry it (AidanGoldfarb/vision@18d67af, "
               "carlostojal/vision@3ca55ad; pytorch.org's model pages agree)")
TORCHGEO = "microsoft/torchgeo torchgeo/models/resnet.py @7ea0616"
TV_LICENCE = ("ImageNet-1k terms (torchvision's 'Pre-trained Model License' note: the dataset's terms apply); "
              "torchvision's code is BSD-3-Clause")

ENTRIES = (
    WeightsEntry("imagenet-resnet18", "https://download.pytorch.org/models/resnet18-f37072fd.pth", "resnet18",
                 "torchvision", ("red", "green", "blue"), IMAGENET, TV_LICENCE,
                 TORCHVISION + " ResNet18_Weights.IMAGENET1K_V1"),
    WeightsEntry("imagenet-resnet34", "https://download.pytorch.org/models/resnet34-b627a593.pth", "resnet34",
                 "torchvision", ("red", "green", "blue"), IMAGENET, TV_LICENCE,
                 TORCHVISION + " ResNet34_Weights.IMAGENET1K_V1"),
    WeightsEntry("imagenet-resnet50", "https://download.pytorch.org/models/resnet50-11ad3fa6.pth", "resnet50",
                 "torchvision", ("red", "green", "blue"), IMAGENET, TV_LICENCE,
                 TORCHVISION + " ResNet50_Weights.IMAGENET1K_V2 (torchvision's DEFAULT)"),
    WeightsEntry("imagenet-resnet50-v1", "https://download.pytorch.org/models/resnet50-0676ba61.pth", "resnet50",
                 "torchvision", ("red", "green", "blue"), IMAGENET, TV_LICENCE,
                 TORCHVISION + " ResNet50_Weights.IMAGENET1K_V1"),
    WeightsEntry("ssl4eo-s1-resnet50",
                 "https://hf.co/torchgeo/resnet50_sentinel1_all_moco/resolve/e79862c667853c10a709bdd77ea8ffbad0e0f1cf/"
                 "resnet50_sentinel1_all_moco-906e4356.pth", "resnet50", "timm", ("VV", "VH"),
                 "Sentinel-1 GRD backscatter in dB, mean (-12.59, -20.26), std (5.26, 5.91)", "CC-BY-4.0",
                 TORCHGEO + " ResNet50_Weights.SENTINEL1_GRD_MOCO (SSL4EO-S12, MoCo)"),
    WeightsEntry("ssl4eo-s1-resnet50-decur",
                 "https://huggingface.co/torchgeo/decur/resolve/9328eeb90c686a88b30f8526ed757b4bc0f12027/"
                 "rn50_ssl4eo-s12_sar_decur_ep100-f0e69ba2.pth", "resnet50", "timm", ("VV", "VH"),
                 "Sentinel-1 GRD backscatter in dB, mean (-12.59, -20.26), std (5.26, 5.91)", "Apache-2.0",
                 TORCHGEO + " ResNet50_Weights.SENTINEL1_GRD_DECUR (SSL4EO-S12, DeCUR)"),
    WeightsEntry("ssl4eo-s2-resnet50",
                 "https://hf.co/torchgeo/resnet50_sentinel2_all_moco/resolve/da4f3c9dbe09272eb902f3b37f46635fa4726879/"
                 "resnet50_sentinel2_all_moco-df8b932e.pth", "resnet50", "timm", SENTINEL2_BANDS,
                 "Sentinel-2 L1C top-of-atmosphere reflectance (13 bands) divided by 10,000", "CC-BY-4.0",
                 TORCHGEO + " ResNet50_Weights.SENTINEL2_ALL_MOCO (SSL4EO-S12, MoCo)"),
    WeightsEntry("ssl4eo-s2-resnet18",
                 "https://hf.co/torchgeo/resnet18_sentinel2_all_moco/resolve/5b8cddc9a14f3844350b7f40b85bcd32aed75918/"
                 "resnet18_sentinel2_all_moco-59bfdff9.pth", "resnet18", "timm", SENTINEL2_BANDS,
                 "Sentinel-2 L1C top-of-atmosphere reflectance (13 bands) divided by 10,000", "CC-BY-4.0",
                 TORCHGEO + " ResNet18_Weights.SENTINEL2_ALL_MOCO (SSL4EO-S12, MoCo)"),
)
REGISTRY = {e.name: e for e in ENTRIES}


def entry(name: str) -> WeightsEntry | None:
    return REGISTRY.get(name.strip().lower())
