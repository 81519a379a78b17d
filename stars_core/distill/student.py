"""Train a fast SAR-only student to reproduce a STARS teacher's SAR-only class probabilities.

The student is a single-branch model (`StarsConfig(mode="single")`: one encoder and one decoder, the
Baseline-SAR architecture) with a lighter backbone, width and decoder. Its loss is the soft-target
distillation of Hinton et al. (2015): the Kullback-Leibler divergence between the teacher's and the
student's class probabilities, both softened by a temperature T, times T^2 (so its gradients keep
their size whatever T), averaged over the valid pixels; plus the cross-entropy with the labels where
labels are given. The teacher runs its SAR-only branch in eval mode, as when it segments.

The result is an ordinary model file (the teacher's classes, band statistics, modalities and pixel
size; `distilled_from` names the teacher), so segmenting, exporting, map sheets, series and
fine-tuning take it as they take any model.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import threads
from ..checkpoint import ModelMeta, load_model, save_model_file
from ..classes import IGNORE
from ..config import DataConfig, LossConfig, StarsConfig, TrainConfig
from ..devices import TrainingPrecision, resolve_device
from ..errors import Cancelled, InputError, TrainingError
from ..files import check_outputs, sha256
from ..metrics import confusion_matrix, metrics_from_confusion
from ..models import build_model
from .config import DistillConfig
from .data import ChipReader, open_sources

VAL_CHIPS = 16  # fixed chips, drawn apart from training's, on which student and teacher are compared
VAL_SEED = 2**31 - 1


@dataclass
class DistillResult:
    path: Path
    agreement: float  # share of valid validation pixels where student and teacher pick the same class
    student_miou: float | None  # on the labelled validation pixels, when labels were given
    teacher_miou: float | None
    seconds: float


def soft_target_loss(student: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor, temperature: float):
    """T^2 x KL(teacher_T || student_T) per pixel, averaged over the valid pixels."""
    log_p = F.log_softmax(student / temperature, 1)
    log_q = F.log_softmax(teacher / temperature, 1)
    kl = (log_q.exp() * (log_q - log_p)).sum(1)
    return temperature ** 2 * (kl * valid).sum() / valid.sum().clamp(min=1)


def student_config(teacher: StarsConfig, cfg: DistillConfig) -> StarsConfig:
    cfg = cfg.for_teacher(teacher)  # a width or decoder not given: sized from the teacher
    return StarsConfig(in_channels=teacher.in_channels, num_classes=teacher.num_classes, backbone=cfg.backbone,
                       mode="single", encoder_width=cfg.encoder_width, pyramid_channels=cfg.decoder_channels,
                       segmentation_channels=cfg.decoder_channels // 2, decoder_dropout=teacher.decoder_dropout)


def distill(teacher_path: str | os.PathLike, m1: Sequence[str | os.PathLike], out: str | os.PathLike,
            cfg: DistillConfig = DistillConfig(), labels: Sequence[str | os.PathLike] | None = None,
            progress: Callable[[int, int], None] | None = None, cancel: Callable[[], bool] | None = None,
            log: Callable[[str], None] = print) -> DistillResult:
    """Train a student on chips of the `m1` rasters (labelled by `labels`, one per raster, if given)
    and write it to `out` (atomically, at the end; a cancel writes nothing and raises `Cancelled`)."""
    out = Path(out)
    check_outputs({"teacher model": teacher_path, **{f"SAR raster {k + 1}": p for k, p in enumerate(m1)},
                   **{f"labels {k + 1}": p for k, p in enumerate(labels or [])}}, {"student model": out})
    device = resolve_device(cfg.device)
    teacher = load_model(teacher_path, device)
    if teacher.config.mode == "concat":
        raise InputError("the teacher is an early-fusion model, which has no SAR-only branch to distil; give a "
                         "STARS or single-modality model")
    cfg = cfg.for_teacher(teacher.config)  # the width and decoder not given: sized from the teacher
    chip = cfg.chip_size or teacher.chip_size
    sources = open_sources(m1, labels, teacher.stats[0], chip, log)
    reader = ChipReader(sources, teacher.stats[0], teacher.classes, chip, cfg.ignore_values, cfg.seed)
    val_reader = ChipReader(sources, teacher.stats[0], teacher.classes, chip, cfg.ignore_values, seed=VAL_SEED)
    torch.manual_seed(cfg.seed)
    precision = TrainingPrecision.choose(device, cfg.amp, offer_bf16=False)
    student = precision.memory(build_model(student_config(teacher.config, cfg)).to(device))
    precision.memory(teacher.model)
    log(f"student: {cfg.backbone} at width {cfg.encoder_width}, decoder {cfg.decoder_channels} channels, SAR only; "
        f"teacher: {teacher.config.backbone} {teacher.config.mode} ({_mparams(student)} of {_mparams(teacher.model)} "
        f"parameters); {cfg.steps} steps of {cfg.batch_size} chips of {chip} px on {len(sources)} raster(s)"
        f"{', labelled' if labels else ', no labels (soft targets only)'}; T = {cfg.temperature:g}")
    log(f"precision: {precision.why}")
    if _count(student) >= _count(teacher.model):
        log(f"note: the student ({_mparams(student)} parameters) is not smaller than its teacher "
            f"({_mparams(teacher.model)}), so it will not be faster: give a smaller width, decoder or backbone")
    train_cfg = TrainConfig.for_steps(cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, num_workers=0,
                                      device=cfg.device, amp=cfg.amp)
    start = time.perf_counter()
    try:
        history = _loop(student, teacher, reader, train_cfg, cfg, device, precision, progress, cancel, log)
        agreement, s_miou, t_miou = _compare(student, teacher.model, val_reader, teacher.classes, cfg, device,
                                             precision, bool(labels))
    finally:
        reader.close()
        val_reader.close()
    seconds = time.perf_counter() - start
    log(f"student agrees with the teacher on {100 * agreement:.2f} % of the pixels of {VAL_CHIPS} other random chips"
        + ("" if s_miou is None else f"; mIoU on their labels: student {s_miou:.3f}, teacher {t_miou:.3f}"))
    _save(out, student, teacher, teacher_path, train_cfg, cfg, chip, history,
          {"agreement": agreement, "student_miou": s_miou, "teacher_miou": t_miou, "seconds": seconds,
           "rasters": [os.path.abspath(s.path) for s in sources], "labelled": bool(labels)})
    return DistillResult(out, agreement, s_miou, t_miou, seconds)


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _mparams(model: torch.nn.Module) -> str:
    return f"{_count(model) / 1e6:.1f}M"


def _loop(student, teacher, reader: ChipReader, train_cfg: TrainConfig, cfg: DistillConfig, device,
          precision: TrainingPrecision, progress, cancel, log) -> list[dict]:
    from ..training.train import get_lr

    optimizer = torch.optim.Adam(student.parameters(), lr=cfg.lr, weight_decay=1e-4)
    history, every = [], max(1, cfg.steps // 10)
    student.train()
    for step in range(cfg.steps):
        if cancel is not None and cancel():
            raise Cancelled(f"distillation cancelled at step {step}; no student was written")
        threads.adapt()
        x, y, valid = (torch.from_numpy(a).to(device) for a in reader.batch(step * cfg.batch_size, cfg.batch_size))
        x = precision.memory(x)
        for group in optimizer.param_groups:
            group["lr"] = get_lr(step, train_cfg)
        with torch.no_grad(), precision.autocast(device):
            target = teacher.model(x).float()
        with precision.autocast(device):
            logits = student(x).float()
        soft = soft_target_loss(logits, target, valid.float(), cfg.temperature)
        hard = F.cross_entropy(logits, y.long(), ignore_index=IGNORE) if (y != IGNORE).any() else logits.sum() * 0
        loss = soft + cfg.label_weight * hard
        if not torch.isfinite(loss):
            raise TrainingError(f"the distillation loss became {loss.item()} at step {step}; lower --lr "
                                f"(now {cfg.lr:g}); no student was written")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 5.0)
        optimizer.step()
        row = {"step": step + 1, "loss": loss.item(), "soft": soft.item(), "labels": hard.item(),
               "lr": optimizer.param_groups[0]["lr"]}
        if (step + 1) % every == 0 or step + 1 == cfg.steps:
            history.append(row)
            log(f"  step {step + 1}/{cfg.steps}: loss {row['loss']:.4f} (soft {row['soft']:.4f}, labels "
                f"{row['labels']:.4f})")
        if progress is not None:
            progress(step + 1, cfg.steps)
    student.eval()
    return history


@torch.no_grad()
def _compare(student, teacher, reader: ChipReader, classes, cfg: DistillConfig, device,
             precision: TrainingPrecision, labelled: bool):
    """Pixel agreement of student and teacher on fixed chips, and both mIoUs on their labels."""
    k = len(classes.values)
    same = total = 0
    cms = {"student": np.zeros((k, k), np.int64), "teacher": np.zeros((k, k), np.int64)}
    for start in range(0, VAL_CHIPS, cfg.batch_size):
        x, y, valid = (torch.from_numpy(a).to(device)
                       for a in reader.batch(start, min(cfg.batch_size, VAL_CHIPS - start)))
        x = precision.memory(x)
        with precision.autocast(device):
            s, t = student(x).argmax(1), teacher(x).argmax(1)
        same += int(((s == t) & valid).sum())
        total += int(valid.sum())
        cms["student"] += confusion_matrix(s, y, k, IGNORE)
        cms["teacher"] += confusion_matrix(t, y, k, IGNORE)
    agreement = same / max(total, 1)
    if not labelled or cms["teacher"].sum() == 0:
        return agreement, None, None
    return (agreement, metrics_from_confusion(cms["student"])["miou"], metrics_from_confusion(cms["teacher"])["miou"])


def _save(out: Path, student, teacher, teacher_path, train_cfg: TrainConfig, cfg: DistillConfig, chip: int,
          history: list[dict], scores: dict) -> None:
    meta = teacher.meta
    digest = sha256(teacher_path)  # read in blocks: a ResNet-50 teacher need not sit in memory twice
    distilled_from = {"file": os.path.basename(os.fspath(teacher_path)), "sha256": digest, "weights": teacher.weights,
                      "backbone": teacher.config.backbone, "mode": teacher.config.mode,
                      "temperature": cfg.temperature, "label_weight": cfg.label_weight, "steps": cfg.steps,
                      "agreement": scores["agreement"], "student_miou": scores["student_miou"],
                      "teacher_miou": scores["teacher_miou"], "labelled": scores["labelled"]}
    student_meta = ModelMeta(
        model=student_config(meta.model, cfg), loss=LossConfig(), train=train_cfg,
        data=DataConfig(chip_size=chip, class_table=meta.data.class_table, ignore_values=cfg.ignore_values),
        classes=meta.classes, stats=meta.stats, modalities=meta.modalities, chip_size=chip,
        pixel_size=meta.pixel_size, crs=meta.crs, distilled_from=distilled_from)
    state = {k: v.detach().cpu() for k, v in student.state_dict().items()}
    summary = {"steps": cfg.steps, "device": str(next(student.parameters()).device), "seconds": scores["seconds"],
               "last_losses": history[-1] if history else {}, "distilled": True, "rasters": scores["rasters"]}
    save_model_file(out, student_meta, state, summary, history)
