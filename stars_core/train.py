"""The STARS training loop, top to bottom in one file.

`train(...)` prepares the data (stars_core.data), builds the model from the data's band and class
counts, and runs the paper's recipe (section 4.1.1): Adam with weight decay, linear warm-up then
cosine decay, gradient clipping. It validates every `val_every` steps on held-out blocks, writes the
model file atomically every `checkpoint_every` steps, and on cancel or at the end. Progress and
cancellation come in as callables so the command line and QGIS drive the same loop. Under `torchrun`
it trains with DistributedDataParallel (gloo on CPU, NCCL on CUDA). Asked for a diagnostics folder,
it also draws the cross-modal class similarity matrix (before training, at chosen steps and at the
end), the curves and the validation confusion matrix there.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from .checkpoint import FORMAT, FORMAT_VERSION, model_config, read_model_file, save_atomic
from .classes import IGNORE, ClassTable
from .config import LossConfig, StarsConfig
from .data import BandStats, ChipDataset, SceneSpec, TrainingData, prepare_training_data
from .diagnostics import AlignmentProbe, plot_similarity
from .files import atomic_path
from .losses import stars_loss
from .metrics import confusion_matrix, metrics_from_confusion
from .models import build_model

ProgressFn = Callable[[int, int, dict], None]
CancelFn = Callable[[], bool]


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the last good model file is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe; defaults are the paper's (80k steps, batch 8, 512 px chips)."""

    steps: int = 80_000
    batch_size: int = 8
    lr: float = 1e-4
    warmup_steps: int = 1000
    warmup_start_lr: float = 1e-6
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    chip_size: int = 512
    val_fraction: float = 0.1
    val_every: int = 1000
    checkpoint_every: int = 500
    max_val_chips: int = 64
    min_valid: float = 0.5
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = 1

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "val_every", "checkpoint_every", "max_val_chips"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0 < self.min_valid <= 1:
            raise ValueError(f"min_valid must be in (0, 1], got {self.min_valid}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up from warmup_start_lr to lr over warmup_steps, then cosine decay to 0."""
    if step < cfg.warmup_steps:
        return cfg.warmup_start_lr + (cfg.lr - cfg.warmup_start_lr) * step / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * min(1.0, progress)))


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but PyTorch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name if name != "cuda" else f"cuda:{local_rank}")


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA (fp32 stays the fast path on CPU)."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


@torch.no_grad()
def validate(model: torch.nn.Module, loader, num_classes: int, device: torch.device, amp: bool,
             names: Sequence[str], paired: bool, probe: AlignmentProbe | None = None) -> dict:
    """Metrics of the missing-modality output (model(x1), key "m1") and, when `paired`, of the
    output with both modalities (key "fused"); `probe` collects the shared features on the way."""
    was_training = model.training
    model.eval()
    cms = {"m1": np.zeros((num_classes, num_classes), np.int64)}
    if paired:
        cms["fused"] = cms["m1"].copy()
    for x1, x2, y in loader:
        x1, x2 = x1.to(device, non_blocking=True), x2.to(device, non_blocking=True)
        with autocast(device, amp):
            cms["m1"] += confusion_matrix(model(x1).argmax(1), y, num_classes, IGNORE)
            if paired:
                out = model(x1, x2)
                cms["fused"] += confusion_matrix(out["fused"].argmax(1), y, num_classes, IGNORE)
                if probe is not None:
                    probe.add(out, y)
    model.train(was_training)
    return {k: metrics_from_confusion(cm, names) for k, cm in cms.items()}


@dataclass
class TrainResult:
    path: Path
    steps_done: int
    cancelled: bool
    summary: dict


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def _rng_state(gen: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "psa": gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["psa"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train(
    scenes: Sequence[SceneSpec],
    out: str | os.PathLike,
    model_cfg: StarsConfig | None = None,
    loss_cfg: LossConfig | None = None,
    train_cfg: TrainConfig | None = None,
    class_table: str | None = None,
    ignore_values: Sequence[int] = (),
    aoi: str | None = None,
    resume: str | os.PathLike | None = None,
    pretrained: str | os.PathLike | None = None,
    modalities: tuple[str, str] = ("SAR", "optical"),
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    log: Callable[[str], None] = print,
    diagnostics: str | os.PathLike | None = None,
    similarity_steps: Sequence[int] = (),
) -> TrainResult:
    """Train a STARS model (or a baseline) and write the model file `out`.

    `model_cfg.in_channels` and `num_classes` are taken from the data. With `resume`, the configs,
    class table, statistics, weights, optimiser, schedule position and random state come from that
    model file; only `train_cfg.steps` may be raised to train longer. `diagnostics`: folder for the
    PNGs (similarity matrices before training, at `similarity_steps` and at the end; curves; confusion).
    """
    out = Path(out)
    world, rank, local_rank = _dist_info()
    state = None
    if resume is not None:
        state = read_model_file(resume)
        if "resume" not in state:
            raise ValueError(f"{resume} holds no training state to resume from (it was finalised)")
        model_cfg = model_config(state)
        loss_cfg = LossConfig.from_dict(state["loss_config"])
        saved = TrainConfig(**state["train_config"])
        steps = max(saved.steps, train_cfg.steps) if train_cfg else saved.steps
        train_cfg = dataclasses.replace(saved, steps=steps)
        class_table = None
        modalities = tuple(state["modalities"])
    model_cfg = model_cfg or StarsConfig()
    loss_cfg = loss_cfg or LossConfig()
    train_cfg = train_cfg or TrainConfig()
    if loss_cfg.ignore_index != IGNORE:
        raise ValueError(f"loss ignore_index must be {IGNORE} (the pipeline's no-data index)")

    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() and train_cfg.device != "cpu" else "gloo")
    device = resolve_device(train_cfg.device, local_rank)
    is_main = rank == 0
    say = log if is_main else (lambda *_: None)

    data: TrainingData = prepare_training_data(
        scenes, class_table, ignore_values, aoi, train_cfg.chip_size, train_cfg.val_fraction,
        train_cfg.min_valid, train_cfg.seed, log=say,
    )
    if state is not None:  # the model file's table and statistics are what the weights expect
        data.table = ClassTable.from_dict(state["classes"])
        data.stats = (BandStats.from_dict(state["bands"]["m1"]), BandStats.from_dict(state["bands"]["m2"]))
        for s in data.scenes:
            s.table = data.table
    model_cfg = dataclasses.replace(
        model_cfg, in_channels=(len(data.stats[0].names), len(data.stats[1].names)), num_classes=len(data.table)
    )
    if state is not None and model_config(state) != model_cfg:
        raise ValueError("the resumed model file does not match these scenes' band or class counts")

    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg, pretrained=pretrained if state is None else None).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    psa_gen = torch.Generator().manual_seed(train_cfg.seed * 1000 + rank)
    start, history = 0, []
    if state is not None:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["resume"]["optimizer"])
        _set_rng_state(state["resume"]["rng"], psa_gen)
        start, history = int(state["resume"]["step"]), list(state["resume"]["history"])
        say(f"resuming from step {start} of {train_cfg.steps}")
    net = model
    if world > 1:
        unused = model_cfg.mode == "stars" and model_cfg.use_translation and not (loss_cfg.use_ncs and loss_cfg.beta > 0)
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=unused
        )

    remaining = max(0, train_cfg.steps - start)
    train_set = ChipDataset(
        data.scenes, data.stats, data.chip_size, data.plan.train, remaining * train_cfg.batch_size,
        seed=train_cfg.seed, train=True, offset=start * train_cfg.batch_size, stride=world, rank=rank,
    )
    workers = train_cfg.num_workers
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=train_cfg.batch_size, shuffle=False, num_workers=workers, drop_last=True,
        pin_memory=device.type == "cuda", generator=torch.Generator(),
        prefetch_factor=4 if workers > 0 else None, persistent_workers=False,
    )
    val_positions = data.plan.val[: train_cfg.max_val_chips]
    val_loader = None
    if len(val_positions) and is_main:
        val_set = ChipDataset(data.scenes, data.stats, data.chip_size, val_positions, len(val_positions), train=False)
        # Its own generator: iterating a loader must not draw from the global RNG (exact resume).
        val_loader = torch.utils.data.DataLoader(val_set, batch_size=train_cfg.batch_size, num_workers=0,
                                                 generator=torch.Generator())
    paired = model_cfg.mode != "single"
    diag = None
    if diagnostics is not None and is_main:
        if val_loader is None:
            say(f"no diagnostics in {diagnostics}: there are no validation chips (raise the validation "
                "fraction or give a larger area)")
        else:
            diag = Diagnostics(Path(diagnostics), data.table.names, modalities, set(similarity_steps),
                               resuming=state is not None)

    def run_validation(step: int, row: dict) -> dict:
        probe = AlignmentProbe(len(data.table)) if model_cfg.mode == "stars" else None
        metrics = validate(model, val_loader, len(data.table), device, train_cfg.amp, data.table.names, paired, probe)
        for key, m in metrics.items():
            row[f"val_{key}_miou"], row[f"val_{key}_mf1"] = m["miou"], m["mf1"]
            row.update({f"val_{key}_iou_{n}": v["iou"] for n, v in m["per_class"].items()})
        alignment = probe.summary() if probe is not None and probe.pixels else None
        if alignment is not None:
            row.update(val_align_diagonal=alignment["diagonal"], val_align_gap=alignment["gap"],
                       val_spread=alignment["spread"])
        if diag is not None:
            diag.write(step, metrics["m1"], alignment, history + [row], final=step == train_cfg.steps)
        return metrics

    def payload(step: int, finished: bool, summary: dict) -> dict:
        p = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "model_config": model_cfg.to_dict(), "loss_config": loss_cfg.to_dict(),
            "train_config": train_cfg.to_dict(), "state_dict": model.state_dict(),
            "classes": data.table.to_dict(), "modalities": list(modalities),
            "bands": {"m1": data.stats[0].to_dict(), "m2": data.stats[1].to_dict()},
            "chip_size": data.chip_size, "pixel_size": list(data.pixel_size), "crs": data.crs,
            "summary": summary,
        }
        if not finished:
            p["resume"] = {"step": step, "optimizer": optimizer.state_dict(),
                           "rng": _rng_state(psa_gen), "history": history}
        else:
            p["history"] = history
        return p

    def summarise(step: int, wall: float, wait: float) -> dict:
        last_val = next((h for h in reversed(history) if "val_m1_miou" in h), {})
        return {
            "steps": step, "device": str(device), "world_size": world, "seconds": round(wall, 1),
            "data_wait_fraction": round(wait / wall, 4) if wall > 0 else None,
            "last": {k: v for k, v in (history[-1] if history else {}).items() if not k.startswith("val_")},
            "validation": {k: v for k, v in last_val.items() if k == "step" or k.startswith("val_")},
            "class_pixels": data.plan.class_counts.tolist(),
        }

    if diag is not None and start == 0:
        run_validation(0, {"step": 0})
    model.train()
    step, cancelled = start, False
    t0, wait = time.perf_counter(), 0.0
    last_saved = start if state is not None else None
    t_fetch = time.perf_counter()
    for x1, x2, y in loader:
        wait += time.perf_counter() - t_fetch
        lr = get_lr(step, train_cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x1, x2, y = (t.to(device, non_blocking=True) for t in (x1, x2, y))
        with autocast(device, train_cfg.amp):
            loss, terms = stars_loss(net(x1, x2), y, loss_cfg, psa_gen)
        if not torch.isfinite(loss):
            where = f"the last good model file {out} (step {last_saved}) is kept" if last_saved is not None \
                else "no model file was written"
            raise TrainingError(
                f"the loss became {loss.item()} at step {step + 1} (terms "
                f"{ {k: round(float(v), 4) for k, v in terms.items()} }); {where}. Lower --lr, check the inputs "
                f"for extreme values, or resume from the last model file"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        optimizer.step()
        step += 1
        row = {"step": step, "lr": lr, "grad_norm": float(grad_norm), **{k: float(v) for k, v in terms.items()}}

        stop = bool(cancel and cancel())
        last = step == train_cfg.steps
        chosen = diag is not None and step in diag.steps
        if is_main and val_loader is not None and (step % train_cfg.val_every == 0 or last or stop or chosen):
            metrics = run_validation(step, row)
            say(f"step {step}: validation mIoU {metrics['m1']['miou']:.4f} from {modalities[0]} alone"
                + (f", {metrics['fused']['miou']:.4f} with both" if "fused" in metrics else ""))
        history.append(row)
        if progress:
            progress(step, train_cfg.steps, row)
        if is_main and (step % train_cfg.checkpoint_every == 0 or last or stop):
            wall = time.perf_counter() - t0
            save_atomic(payload(step, last, summarise(step, wall, wait)), out)
            write_log(history, out)
            last_saved = step
        if stop:
            cancelled = True
            say(f"cancelled at step {step}; {out} holds the model and can be resumed with --resume")
            break
        t_fetch = time.perf_counter()

    wall = time.perf_counter() - t0
    summary = summarise(step, wall, wait)
    if is_main and last_saved != step:
        save_atomic(payload(step, step >= train_cfg.steps, summary), out)
        write_log(history, out)
    if world > 1:
        dist.barrier()
    return TrainResult(out, step, cancelled, summary)


class Diagnostics:
    """The PNGs training draws into a folder when asked (validation chips, modality-1 branch)."""

    def __init__(self, folder: Path, names: Sequence[str], modalities: tuple[str, str], steps: set[int],
                 resuming: bool):
        self.folder, self.names, self.modalities, self.steps = folder, list(names), modalities, steps
        folder.mkdir(parents=True, exist_ok=True)
        saved = folder / "similarity.json"
        self.matrices: dict[str, dict] = {}
        if resuming and saved.exists():  # a resumed run adds to the matrices already drawn
            self.matrices = json.loads(saved.read_text())["steps"]
        elif not resuming:  # a new run: no matrix of an earlier run may stay beside this one's
            for old in [saved, *folder.glob("similarity_*.png")]:
                old.unlink(missing_ok=True)

    def write(self, step: int, metrics: dict, alignment: dict | None, history: list[dict], final: bool) -> None:
        from .evaluate import plot_confusion

        plot_confusion({**metrics, "class_names": self.names}, self.folder / "confusion.png")
        if len(history) > 1:
            plot_curves(history, self.folder / "curves.png")
        if alignment is None or not (step == 0 or final or step in self.steps):
            return
        label = "init" if step == 0 else f"step{step:06d}"
        title = "before training" if step == 0 else f"step {step}"
        plot_similarity(alignment, self.names, f"cross-modal class similarity, {title}",
                        self.folder / f"similarity_{label}.png", self.modalities)
        # NaN (no class present twice, say) is null in the JSON: strict readers refuse NaN tokens
        self.matrices[str(step)] = {k: None if isinstance(v, float) and math.isnan(v) else v
                                    for k, v in alignment.items()}
        with atomic_path(self.folder / "similarity.json") as tmp:
            Path(tmp).write_text(json.dumps({"classes": self.names, "steps": self.matrices}, indent=1))


def write_log(history: list[dict], out: Path) -> tuple[Path, Path | None]:
    """The CSV of every logged term beside the model file, and a PNG of the curves."""
    csv_path = out.with_name(out.stem + ".log.csv")
    keys = list(dict.fromkeys(k for row in history for k in row))
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    try:
        png = plot_curves(history, out.with_name(out.stem + ".curves.png"))
    except ImportError:
        png = None
    return csv_path, png


def plot_curves(history: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("total", "L_total"), ("seg", "L_seg"), ("psc", "L_psc"), ("ncs", "L_ncs")):
        ax1.plot(steps, [h.get(key, np.nan) for h in history], label=label, lw=1)
    ax1.set_xlabel("step"), ax1.set_title("training losses"), ax1.legend()
    for key, label, style in (("val_m1_miou", "mIoU, modality 1 alone", "-"), ("val_fused_miou", "mIoU, both", "-"),
                              ("val_spread", "shared-feature spread (0 = collapse)", "--")):
        pts = [(h["step"], h[key]) for h in history if key in h and h[key] is not None]
        if pts:
            ax2.plot(*zip(*pts), marker="o", ls=style, label=label)
    ax2.set_xlabel("step"), ax2.set_title("validation"), ax2.set_ylim(0, 1)
    if ax2.lines:
        ax2.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return path
