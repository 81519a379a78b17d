"""Chip folders: the paired, non-georeferenced chips most SAR-optical datasets ship as.

EarthMiss, WHU-OPT-SAR and DDHR-style datasets are folders of chips matched by name, e.g. EarthMiss:
`<root>/SAR/<name>_SAR.tif`, `<root>/RGB/<name>.tif`, `<root>/mask/<name>_mask.tif` (PNG masks too;
values 1..8, 0 = ignore). `ChipFolder` describes such a layout, `ChipFolder.match` pairs the files
(a clear error lists the unmatched ones), `ChipFolder.scenes` makes training scenes of them (each
chip is a scene without CRS; training crops `chip_size` windows with flips and rotations), and
`evaluate_chips` scores a model on a folder from SAR alone, optical alone and both.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..bands import normalise
from ..classes import ClassTable
from ..config import STRIDE
from ..raster import open_raster, valid_mask
from ..devices import autocast, resolve_device
from ..errors import Cancelled, InputError
from ..tiling import pad_reflect

EXTENSIONS = (".tif", ".tiff", ".png")


@dataclass(frozen=True)
class ChipFolder:
    """Where the chips of each kind live under `root` and how their names end (defaults: EarthMiss)."""

    root: str
    m1_dir: str = "SAR"
    m2_dir: str = "RGB"
    labels_dir: str = "mask"
    m1_suffix: str = "_SAR"
    m2_suffix: str = ""
    labels_suffix: str = "_mask"

    def _files(self, folder: str, suffix: str) -> dict[str, Path]:
        path = Path(self.root) / folder
        if not path.is_dir():
            raise InputError(f"chip folder {str(path)!r} not found; name the sub-folders with --m1-dir, --m2-dir "
                             f"and --labels-dir (found: {sorted(p.name for p in Path(self.root).iterdir() if p.is_dir())})"
                             if Path(self.root).is_dir() else f"chip folder root {self.root!r} not found")
        found = {}
        for p in sorted(path.iterdir()):
            if p.suffix.lower() in EXTENSIONS and p.stem.endswith(suffix):
                found[p.stem[: len(p.stem) - len(suffix)] if suffix else p.stem] = p
        return found

    def match(self) -> list[tuple[str, Path, Path, Path]]:
        """(name, modality-1 chip, modality-2 chip, label chip) for every name found in all three
        folders; an InputError lists what is unmatched (up to 10 names per folder)."""
        m1 = self._files(self.m1_dir, self.m1_suffix)
        m2 = self._files(self.m2_dir, self.m2_suffix)
        labels = self._files(self.labels_dir, self.labels_suffix)
        names = set(m1) | set(m2) | set(labels)
        problems = []
        for what, have in ((f"{self.m1_dir}/*{self.m1_suffix}", m1), (f"{self.m2_dir}/*{self.m2_suffix}", m2),
                           (f"{self.labels_dir}/*{self.labels_suffix}", labels)):
            lacking = sorted(names - set(have))
            if lacking:
                more = f" and {len(lacking) - 10} more" if len(lacking) > 10 else ""
                problems.append(f"no {what} for {', '.join(lacking[:10])}{more}")
        if problems:
            raise InputError(f"chip folder {self.root!r}: unmatched chips: " + "; ".join(problems)
                             + " (check --m1-suffix, --m2-suffix and --labels-suffix)")
        if not names:
            raise InputError(f"chip folder {self.root!r} holds no chips ({', '.join(EXTENSIONS)}) in "
                             f"{self.m1_dir}, {self.m2_dir} and {self.labels_dir}")
        return [(n, m1[n], m2[n], labels[n]) for n in sorted(names)]

    def scenes(self) -> list:
        """Training scenes (`data.SceneSpec`), one per chip (not georeferenced)."""
        from .data import SceneSpec

        return [SceneSpec(str(a), str(b), str(c), georeferenced=False) for _, a, b, c in self.match()]


def _read_chip(path: Path, role: str, stats, order_names) -> tuple[np.ndarray, np.ndarray]:
    with open_raster(path, role, require_crs=False) as ds:
        if ds.count != len(order_names):
            raise InputError(f"{role} chip {str(path)!r} has {ds.count} band(s) but the model was trained on "
                             f"{len(order_names)} ({', '.join(order_names)})")
        x = ds.read()
        valid = valid_mask(ds, x)
    return normalise(x, valid, stats), valid


def evaluate_chips(model, folder: ChipFolder, ignore_values=(),
                   device: str = "auto", amp: bool = True, cancel: Callable[[], bool] | None = None,
                   log: Callable[[str], None] = print) -> dict:
    """Confusion matrices and metrics of the model on every chip of `folder`: from modality 1 alone
    ("m1", the missing-modality case), modality 2 alone ("m2") and both ("fused"), as far as the
    model has those branches. Chips are padded to a multiple of 32; padding is not scored. `model`:
    a model file or a `checkpoint.LoadedModel`."""
    import torch

    from ..checkpoint import LoadedModel, load_model
    from ..metrics import confusion_matrix, metrics_from_confusion

    dev = resolve_device(device)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, dev)
    loaded.model.to(dev).eval()
    classes: ClassTable = loaded.classes
    # early fusion's "m1" is its map with the optical bands zero-filled: its missing-modality answer
    branches = {"stars": ["m1", "m2", "fused"], "single": ["m1"], "concat": ["m1", "fused"]}[loaded.config.mode]
    K = len(classes)
    cms = {b: np.zeros((K, K), np.int64) for b in branches}
    chips = folder.match()
    for i, (name, p1, p2, pl) in enumerate(chips):
        if cancel is not None and cancel():
            raise Cancelled("chip evaluation cancelled; nothing was written")
        x1, v1 = _read_chip(p1, loaded.modalities[0], loaded.stats[0], loaded.stats[0].names)
        x2, v2 = _read_chip(p2, loaded.modalities[1], loaded.stats[1], loaded.stats[1].names)
        with open_raster(pl, "label", require_crs=False) as ds:
            y = ds.read(1, masked=True)
        shapes = {"modality-1": x1.shape[-2:], "modality-2": x2.shape[-2:], "label": y.shape}
        if len(set(shapes.values())) > 1:
            raise InputError(f"chip {name!r} of {str(folder.root)!r}: its files differ in size ("
                             + ", ".join(f"{k} {w} x {h}" for k, (h, w) in shapes.items())
                             + f"; {p1.name}, {p2.name}, {pl.name}); the three files of a chip must share one grid")
        target = classes.lookup(y.data, ignore_values, str(pl), mask=np.ma.getmaskarray(y) | ~v1)
        h, w = target.shape
        pad = (-h % STRIDE, -w % STRIDE)
        t1 = torch.from_numpy(pad_reflect(x1, *pad)[None]).to(dev)
        t2 = torch.from_numpy(pad_reflect(x2, *pad)[None]).to(dev)
        with autocast(dev, amp), torch.inference_mode():
            outs = {}
            if "m1" in branches:
                outs["m1"] = loaded.model(t1)
            if "m2" in branches:
                outs["m2"] = loaded.model(x2=t2)
            if "fused" in branches:
                outs["fused"] = loaded.model(t1, t2).fused
        for b, logits in outs.items():
            pred = logits[0, :, :h, :w].argmax(0).cpu().numpy()
            cms[b] += confusion_matrix(pred, target, K)
        if (i + 1) % 50 == 0:
            log(f"{i + 1}/{len(chips)} chips")
    names = {"m1": f"{loaded.modalities[0]} alone", "m2": f"{loaded.modalities[1]} alone",
             "fused": "both modalities"}
    reports = {}
    for b, cm in cms.items():
        r = metrics_from_confusion(cm, classes.names)
        r.update(prediction=f"{Path(folder.root).name}: {names[b]}", labels=folder.root,
                 class_values=list(classes.values), class_colors=list(classes.colors), chips=len(chips), branch=b)
        reports[b] = r
    return reports
