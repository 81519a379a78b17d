"""Fine-tuning: a new training run that starts from the weights of a trained model file
(`stars train --init-from model.stars`), on another area's rasters and labels.

Unlike `--resume`, which finishes the saved run with its own settings, this is a new run with its
own recipe (the schedule of the new --steps; a learning rate a tenth of the paper's unless given)
and its own data: the band statistics and class table are the new area's. The architecture (mode,
backbone, width, norms) is the source model's, and its band counts must match. Classes are matched
by value: a class of the new table that the source has keeps its classifier rows (in every
decoder), a new one starts from the fresh initialisation, and a source class the new table lacks
is dropped; the log and the model file say which. The source's best validation weights are used
when it kept them. `freeze`: "encoders" (every encoder part: the method's stems, shared and
specific encoders, or a baseline's encoder), "shared" (the shared encoder only) or "none"; frozen
parts get no gradient and keep their BatchNorm statistics (they stay in eval mode).
"""
from __future__ import annotations

import os
import types
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..config import FREEZE, LR_FACTOR  # noqa: F401 (FREEZE and LR_FACTOR live where front ends read them)
from ..files import sha256
from ..errors import InputError


@dataclass
class Source:
    path: Path
    meta: object  # checkpoint.ModelMeta
    state: dict
    weights: str  # "best" or "last"
    step: int | None
    sha256: str


def read_source(path: str | os.PathLike, freeze: str) -> Source:
    from ..checkpoint import read_meta, read_model_file

    if freeze not in FREEZE:
        raise InputError(f"--freeze must be one of {', '.join(FREEZE)}, got {freeze!r}")
    payload = read_model_file(path)
    meta = read_meta(payload)
    if freeze == "shared" and meta.model.mode != "stars":
        raise InputError(f"--freeze shared needs a STARS model (it has a shared encoder); {os.fspath(path)!r} is a "
                         f"{meta.model.mode!r} baseline: freeze encoders or none")
    best = payload.get("best")
    state = best["state_dict"] if best else payload["state_dict"]
    step = best["step"] if best else (payload.get("summary") or {}).get("steps")
    return Source(Path(path), meta, state, "best" if best else "last", step, sha256(path))


def record(source: Source, freeze: str, classes) -> dict:
    """What the model file says about where its run started."""
    kept, new = class_match(source.meta.classes, classes)
    return {"file": source.path.name, "sha256": source.sha256, "weights": source.weights, "step": source.step,
            "freeze": freeze, "classes_kept": [classes.names[i] for i, _ in kept],
            "classes_new": [classes.names[i] for i in new],
            "classes_dropped": [n for v, n in zip(source.meta.classes.values, source.meta.classes.names)
                                if v not in classes.values]}


def class_match(source_classes, classes) -> tuple[list[tuple[int, int]], list[int]]:
    """(new index, source index) of the classes both tables hold (by value), and the new indices
    of the classes only the new table holds."""
    where = {v: j for j, v in enumerate(source_classes.values)}
    kept = [(i, where[v]) for i, v in enumerate(classes.values) if v in where]
    return kept, [i for i, v in enumerate(classes.values) if v not in where]


def load_source(model: nn.Module, source: Source, classes) -> None:
    """The source's weights in `model`: every tensor of the same name and shape, and the classifier
    rows of the classes both tables hold."""
    from ..checkpoint import fit_state_dict

    own = model.state_dict()
    state = fit_state_dict(model, source.state)
    kept, _ = class_match(source.meta.classes, classes)
    merged = {}
    for key, value in own.items():
        theirs = state.get(key)
        if theirs is None:
            raise InputError(f"the source model lacks {key}: it is not the same architecture")
        if key.endswith(("classifier.weight", "classifier.bias")):
            rows = value.clone()
            for i, j in kept:
                rows[i] = theirs[j]
            merged[key] = rows
        elif theirs.shape != value.shape:
            raise InputError(f"the source model's {key} has shape {tuple(theirs.shape)}, this run's "
                             f"{tuple(value.shape)}: the rasters do not match the source model")
        else:
            merged[key] = theirs
    model.load_state_dict(merged)


def freeze_parts(model: nn.Module, freeze: str) -> list[str]:
    """Freeze the named parts (no gradients, BatchNorm statistics kept); returns their names."""
    if freeze == "none":
        return []
    parts = model.encoders()
    names = ["shared"] if freeze == "shared" else list(parts)
    for name in names:
        part = parts[name]
        for p in part.parameters():
            p.requires_grad_(False)
        for m in part.modules():  # model.train() must not put them back into training mode
            m.train = types.MethodType(lambda self, mode=True: nn.Module.train(self, False), m)
        part.eval()
    return names

