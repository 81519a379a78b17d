"""The STARS training loop, top to bottom in one file.

`train(...)` prepares the data (stars_core.training.data), builds the model from the data's band and class
counts, and runs the paper's recipe (section 4.1.1): Adam with weight decay, linear warm-up then
cosine decay, gradient clipping. It validates every `val_every` steps on held-out blocks and writes
the model file (stars_core.checkpoint) every `checkpoint_every` steps, at the end and on cancel.
Progress and cancellation come in as callables so the command line and QGIS drive the same loop.
Under `torchrun` it trains with DistributedDataParallel (gloo on CPU, NCCL on CUDA): every rank
stops together on a NaN loss or a cancel, and each rank's random state is saved for resuming.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from ..checkpoint import ModelMeta, ResumeState, fit_state_dict, read_resume, save_model_file
from ..classes import IGNORE
from ..config import DataConfig, LossConfig, StarsConfig, TrainConfig
from .data import ChipDataset, SceneSpec, TrainingData, prepare_training_data
from .diagnostics import AlignmentProbe, Diagnostics, write_log
from ..files import check_outputs
from .losses import stars_loss
from ..metrics import confusion_matrix, metrics_from_confusion
from ..models import build_model
from .. import threads
from ..devices import TrainingPrecision, resolve_device
from ..errors import Cancelled, InputError, TrainingError

ProgressFn = Callable[[int, int, dict], None]
CancelFn = Callable[[], bool]


@dataclass
class TrainResult:
    path: Path
    steps_done: int
    summary: dict


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up from warmup_start_lr to lr over warmup_steps, then cosine decay to 0."""
    if step < cfg.warmup_steps:
        return cfg.warmup_start_lr + (cfg.lr - cfg.warmup_start_lr) * step / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def validate(model: torch.nn.Module, loader, num_classes: int, device: torch.device, precision: TrainingPrecision,
             names: Sequence[str], paired: bool, probe: AlignmentProbe | None = None) -> dict:
    """Metrics of the missing-modality output (model(x1), key "m1") and, when `paired`, of the
    output with both modalities (key "fused"); `probe` collects the shared features on the way."""
    was_training = model.training
    model.eval()
    cms = {"m1": np.zeros((num_classes, num_classes), np.int64)}
    if paired:
        cms["fused"] = cms["m1"].copy()
    for x1, x2, y in loader:
        x1, x2 = (precision.memory(x.to(device, non_blocking=True)) for x in (x1, x2))
        with precision.autocast(device):
            cms["m1"] += confusion_matrix(model(x1).argmax(1), y, num_classes, IGNORE)
            if paired:
                out = model(x1, x2)
                cms["fused"] += confusion_matrix(out.fused.argmax(1), y, num_classes, IGNORE)
                if probe is not None:
                    probe.add(out, y)
    model.train(was_training)
    return {k: metrics_from_confusion(cm, names) for k, cm in cms.items()}


def train(
    scenes: Sequence[SceneSpec],
    out: str | os.PathLike,
    model_cfg: StarsConfig | None = None,
    loss_cfg: LossConfig | None = None,
    train_cfg: TrainConfig | None = None,
    data_cfg: DataConfig | None = None,
    *,
    resume: str | os.PathLike | None = None,
    pretrained: str | os.PathLike | None = None,
    pretrained_m1: str | os.PathLike | None = None,
    pretrained_m2: str | os.PathLike | None = None,
    modalities: tuple[str, str] = ("SAR", "optical"),
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    log: Callable[[str], None] = print,
    diagnostics: str | os.PathLike | None = None,
    similarity_steps: Sequence[int] = (),
    recalibrate_chips: int = 0,
    init_from: str | os.PathLike | None = None,
    freeze: str = "none",
) -> TrainResult:
    """Train a STARS model (or a baseline) and write the model file `out`.

    `model_cfg.in_channels` and `num_classes` are taken from the data. `pretrained` (every encoder)
    and `pretrained_m1`/`pretrained_m2` (per modality) are local ResNet weights (`build_model`).
    With `resume`, every setting, the class table, statistics, weights, optimiser, schedule position
    and random state come from that model file; a `train_cfg` given with it sets only the total
    number of steps and the machine settings (device, amp, workers).
    `diagnostics`: folder for the PNGs (similarity matrices before training, at `similarity_steps`
    and at the end; curves; confusion). `recalibrate_chips` > 0: at the end, re-estimate the shared
    encoder's per-modality BatchNorm statistics from that many training chips per modality
    (`stars recalibrate`), in eval mode. `init_from`: fine-tune, a new run starting from the weights
    of that model file, with `freeze` "none", "encoders" or "shared" (`finetune`); the architecture
    is the source's. A cancel writes a resumable model file, then raises `Cancelled`; a NaN loss
    keeps the last good file and raises `TrainingError`.
    """
    out = Path(out)
    world, rank, local_rank = _dist_info()
    say = log if rank == 0 else (lambda *_: None)
    resumed = read_resume(resume) if resume is not None else None
    if resumed is not None:
        model_cfg, loss_cfg, train_cfg, data_cfg, modalities = _resumed_settings(
            resumed, (model_cfg, loss_cfg, train_cfg, data_cfg), modalities, say)
    model_cfg, loss_cfg = model_cfg or StarsConfig(), loss_cfg or LossConfig()
    train_cfg, data_cfg = train_cfg or TrainConfig(), data_cfg or DataConfig()
    if loss_cfg.ignore_index != IGNORE:
        raise InputError(f"loss ignore_index must be {IGNORE} (the pipeline's no-data index)")
    weights = {k: v for k, v in (("all", pretrained), ("m1", pretrained_m1), ("m2", pretrained_m2)) if v}
    source = None
    if freeze != "none" and init_from is None and resumed is None:
        raise InputError(f"--freeze {freeze} freezes weights taken from another model: give --init-from MODEL too "
                         f"(training from scratch freezes nothing)")
    if init_from is not None:
        source, model_cfg = _fine_tuning(init_from, freeze, resumed, weights, model_cfg, say)
    if resumed is None:  # registry names (`stars weights list`) fetched into the cache, once
        weights = _fetch_weights(weights, world, say)
    _check_paths(scenes, out, data_cfg, resume, weights, diagnostics, init_from)
    device = _start_process(world, local_rank, train_cfg.device)
    if world > 1:
        say(f"{world} processes x batch {train_cfg.batch_size} = global batch {world * train_cfg.batch_size}")

    cache = out.with_name(out.stem + ".scan.npz")  # a repeated or resumed run reads no raster twice
    had_cache = cache.exists()
    try:
        return _train(scenes, out, str(cache), model_cfg, loss_cfg, train_cfg, data_cfg, modalities, resumed, weights,
                      source, freeze, device, world, rank, say, diagnostics, similarity_steps, recalibrate_chips,
                      progress, cancel)
    except BaseException:
        if not had_cache and not out.exists():  # no model to resume or repeat: the scan cache serves nothing
            cache.unlink(missing_ok=True)
        raise


def _train(scenes, out: Path, cache: str, model_cfg, loss_cfg, train_cfg, data_cfg, modalities, resumed, weights,
           source, freeze, device, world, rank, say, diagnostics, similarity_steps, recalibrate_chips, progress,
           cancel) -> TrainResult:
    data = prepare_training_data(scenes, dataclasses.replace(data_cfg, scan_cache=cache), train_cfg.seed, log=say)
    if resumed is not None:
        _check_resumed_scenes(resumed[2].scenes, scenes, say)
    meta = _model_meta(data, model_cfg, loss_cfg, train_cfg, data_cfg, modalities, resumed, weights, say,
                       fine_tuning=source is not None)
    if source is not None:
        from .finetune import record

        if tuple(meta.model.in_channels) != tuple(source.meta.model.in_channels):
            raise InputError(f"the source model takes {source.meta.model.in_channels[0]} + "
                             f"{source.meta.model.in_channels[1]} bands, these rasters give {meta.model.in_channels[0]} "
                             f"+ {meta.model.in_channels[1]}: fine-tune on rasters of the same bands")
        meta = dataclasses.replace(meta, init_from=record(source, freeze, meta.classes))
        said = meta.init_from
        say(f"classes: {len(said['classes_kept'])} keep the source's classifier rows ({', '.join(said['classes_kept'])})"
            + (f"; new, from scratch: {', '.join(said['classes_new'])}" if said["classes_new"] else "")
            + (f"; dropped: {', '.join(said['classes_dropped'])}" if said["classes_dropped"] else ""))
    model, optimizer, psa_gen, start, history = _build(meta, weights, resumed, device, rank, world, say, source)
    precision = TrainingPrecision.choose(device, meta.train.amp, meta.train.cpu_bf16)
    say(f"precision: {precision.why}")
    model = precision.memory(model)  # in place: the optimiser keeps its parameters
    run = _Run(out, meta, data, model, _distributed(model, meta, device) if world > 1 else model, optimizer,
               psa_gen, device, world, rank, history, _scene_files(scenes), precision=precision)
    if resumed is not None:
        run.best = resumed[2].best  # the best so far goes on being compared
    check = _Validation.create(data, meta, device, precision, diagnostics, similarity_steps, resumed is not None, say) \
        if rank == 0 else None
    if check is not None and check.diag is not None and start == 0:  # the similarity matrix before training
        check.run(model, 0, {"step": 0}, history)
    try:
        step = run.loop(_train_loader(data, train_cfg, start, world, rank, device), start, resumed is not None,
                        check, progress, cancel)
        if recalibrate_chips > 0 and rank == 0 and step >= train_cfg.steps and meta.model.mode == "stars":
            _recalibrate(model, data, recalibrate_chips, train_cfg.batch_size, device, say)
            run.last_saved = None
        if run.last_saved != step:
            run.save(step)
        _barrier(world)
        return TrainResult(out, step, run.clock.summary(step, device, world, history, data))
    finally:
        for scene in data.scenes:  # files closed now, not whenever an exception's frames are freed
            scene.close()


@dataclass
class _Run:
    """A training run in progress: the model and its optimiser, where to save, and the loop."""

    out: Path
    meta: ModelMeta
    data: TrainingData
    model: torch.nn.Module
    net: torch.nn.Module  # the model, wrapped by DistributedDataParallel under torchrun
    optimizer: torch.optim.Optimizer
    psa_gen: torch.Generator
    device: torch.device
    world: int
    rank: int
    history: list[dict]
    scenes: list[list[str | None]]
    last_saved: int | None = None
    clock: "_Clock" = dataclasses.field(default_factory=lambda: _Clock())
    best: dict | None = None  # {state_dict, step, val_m1_miou} with keep_best
    precision: TrainingPrecision = TrainingPrecision(False, False, "fp32")

    def save(self, step: int) -> None:
        """The model file (resumable until the last step) and its log, by rank 0."""
        finished = step >= self.meta.train.steps
        state = None if finished else ResumeState(step, self.optimizer.state_dict(),
                                                  _rng_states(self.psa_gen, self.world), [], self.scenes)
        if self.rank == 0:
            summary = self.clock.summary(step, self.device, self.world, self.history, self.data)
            save_model_file(self.out, self.meta, self.model.state_dict(), summary, self.history, state, self.best)
            write_log(self.history, self.out)
        self.last_saved = step

    def keep_if_best(self, step: int, row: dict) -> None:
        """With keep_best: a copy of the weights when modality 1 alone validates best so far."""
        score = row.get("val_m1_miou")
        if not self.meta.train.keep_best or score is None:
            return
        if self.best is None or score > self.best["val_m1_miou"]:
            state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            self.best = {"state_dict": state, "step": step, "val_m1_miou": float(score)}

    def loop(self, loader, start: int, resuming: bool, check, progress, cancel) -> int:
        """Train from `start` to the last step: validate, report and save on schedule; a cancel
        saves a resumable file and raises Cancelled. Returns the last step done."""
        cfg, meta = self.meta.train, self.meta
        psa_exclude = self.data.table.indices(meta.loss.psa_exclude, "--psa-exclude")
        self.model.train()
        self.clock = _Clock()
        step, self.last_saved = start, (start if resuming else None)
        for batch in self.clock.batches(loader):
            threads.adapt()  # as many threads as there are idle cores (stars_core.threads)
            try:
                row = _step(self.net, self.model, self.optimizer, batch, step, meta, self.psa_gen, psa_exclude,
                            self.device, self.world, self.precision)
            except TrainingError as exc:
                raise TrainingError(f"{exc}; {_kept(self.out, self.last_saved)}. Lower --lr, check the inputs for "
                                    f"extreme values, or resume from the last model file") from None
            step += 1
            stop = _any_rank(bool(cancel and cancel()), self.world, self.device)
            last = step == cfg.steps
            if check is not None and (step % cfg.val_every == 0 or last or stop or step in check.steps):
                check.run(self.model, step, row, self.history, final=last)
                self.keep_if_best(step, row)
            self.history.append(row)
            if progress is not None and self.rank == 0:
                progress(step, cfg.steps, row)
            if step % cfg.checkpoint_every == 0 or last or stop:
                self.save(step)
            if stop:
                _barrier(self.world)
                raise Cancelled(f"training cancelled at step {step}; {self.out} holds the model and can be resumed "
                                f"with --resume (QGIS: 'Resume from model file')")
        return step


# -- set-up ------------------------------------------------------------------------------------
def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def _start_process(world: int, local_rank: int, device_name: str) -> torch.device:
    """The device of this process; joins the process group under torchrun."""
    device = resolve_device(device_name, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def _check_paths(scenes: Sequence[SceneSpec], out: Path, data_cfg: DataConfig, resume, weights: dict,
                 diagnostics, init_from=None) -> None:
    """Before any work: the model file, its log and curves and the diagnostics folder must not
    overwrite an input (resuming into the file resumed from is the normal case)."""
    inputs = {"--resume model file": resume, "--init-from model file": init_from, "class table": data_cfg.class_table,
              "AOI": data_cfg.aoi,
              **{f"pretrained weights ({k})": v for k, v in weights.items()}}
    for i, s in enumerate(scenes, start=1):
        inputs.update({f"modality-1 raster of scene {i}": s.m1, f"modality-2 raster of scene {i}": s.m2,
                       f"labels of scene {i}": s.labels})
    check_outputs(inputs, {"model file (--out)": out, "training log": out.with_name(out.stem + ".log.csv"),
                           "curves PNG": out.with_name(out.stem + ".curves.png"),
                           "scan cache": out.with_name(out.stem + ".scan.npz")},
                  {"diagnostics folder": diagnostics}, same_ok=(("model file (--out)", "--resume model file"),))


MACHINE_SETTINGS = ("device", "amp", "cpu_bf16", "num_workers")  # where a resumed run goes on (a saved bf16 stays)


def _resumed_settings(resumed, given: tuple, modalities: tuple[str, str], say: Callable[[str], None]):
    """The saved run's settings. A given train_cfg sets the total number of steps and the machine
    settings (device, amp, workers: a run saved on a GPU can go on on a CPU). Every resume says what
    it keeps; a given setting that differs from the saved one (and from the default, which a front
    end passes when the user set nothing) is named as ignored."""
    meta = resumed[0]
    model_cfg, loss_cfg, train_cfg, data_cfg = given
    steps = _resumed_steps(meta.train.steps, resumed[2].step, train_cfg, say)
    saved = meta.train
    m, d = meta.model, meta.data
    say(f"resuming keeps the saved run's settings (mode {m.mode}, {m.backbone} width {m.encoder_width}, "
        f"{d.chip_size}-px chips, batch {saved.batch_size}, lr {saved.lr:g}, seed {saved.seed}, the losses"
        f"{', bf16 on a CPU that has it' if saved.cpu_bf16 else ''}), its class table and its band statistics")
    ignored = []
    for cfg, kept, default, skip in ((model_cfg, m, StarsConfig(), {"in_channels", "num_classes"}),
                                     (loss_cfg, meta.loss, LossConfig(), set()),
                                     (data_cfg, d, DataConfig(), {"scan_cache"}),
                                     (train_cfg, saved, TrainConfig(), {"steps", "warmup_steps", "val_every",
                                                                        "checkpoint_every", *MACHINE_SETTINGS})):
        if cfg is None:
            continue
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            if f.name not in skip and value != getattr(kept, f.name) and value != getattr(default, f.name):
                ignored.append(f"{f.name} {value} (saved: {getattr(kept, f.name)})")
    if tuple(modalities) != tuple(meta.modalities) and tuple(modalities) != ("SAR", "optical"):
        ignored.append(f"modality names {', '.join(modalities)} (saved: {', '.join(meta.modalities)})")
    if ignored:
        say("ignored on resume: " + ", ".join(ignored))
    machine = {k: getattr(train_cfg, k) for k in MACHINE_SETTINGS} if train_cfg is not None else {}
    if machine:  # bf16 is what the run computes in: kept (a front end without --cpu-bf16 passes False)
        machine["cpu_bf16"] = saved.cpu_bf16 or machine["cpu_bf16"]
    train_cfg = dataclasses.replace(saved, steps=steps, warmup_steps=min(saved.warmup_steps, steps), **machine)
    return meta.model, meta.loss, train_cfg, meta.data, meta.modalities


def _scene_files(scenes: Sequence[SceneSpec]) -> list[list[str | None]]:
    return [[os.path.realpath(p) if p else None for p in (s.m1, s.m2, s.labels, s.aoi)] for s in scenes]


def _check_resumed_scenes(saved: list | None, scenes: Sequence[SceneSpec], say: Callable[[str], None]) -> None:
    """Say so when a resumed run trains on other scenes than the saved one (it keeps the saved
    class table and band statistics, which the new scenes may not match)."""
    if saved is None:
        say("the saved run does not record its scenes (a file from an earlier version): check that these are the "
            "scenes it trained on")
        return
    now = _scene_files(scenes)
    if now != [list(x) for x in saved]:
        added = [os.path.basename(x[0]) for x in now if list(x) not in [list(y) for y in saved]]
        gone = [os.path.basename(x[0]) for x in saved if list(x) not in now]
        say(f"resuming on other scenes than the saved run (new: {', '.join(added) or 'none'}; no longer given: "
            f"{', '.join(gone) or 'none'}): training goes on with the saved class table and band statistics, which "
            f"were computed on the saved scenes")


def _resumed_steps(saved: int, done: int, train_cfg: TrainConfig | None, say: Callable[[str], None]) -> int:
    """The total of a resumed run: the saved one, unless a train_cfg asks for another."""
    steps = saved if train_cfg is None else train_cfg.steps
    if steps <= done:
        raise InputError(f"the run already did {done} steps; to train longer give a total above {done} "
                         f"(--steps), or leave --steps out to finish the saved run of {saved}")
    if steps != saved:
        say(f"resuming at step {done} and training to {steps} steps instead of the saved {saved}: the "
            f"learning rate now decays over {steps} steps")
    else:
        say(f"resuming from step {done} of {steps}")
    return steps


def _model_meta(data: TrainingData, model_cfg: StarsConfig, loss_cfg: LossConfig, train_cfg: TrainConfig,
                data_cfg: DataConfig, modalities: tuple[str, str], resumed, weights: dict, say,
                fine_tuning: bool = False) -> ModelMeta:
    """What the model file will say about the model. A resumed run keeps its file's class table and
    statistics (they are what the weights expect) and must see the same band and class counts."""
    if resumed is not None:
        pretrained = resumed[0].pretrained
    else:
        pretrained = {k: _file_record(v) for k, v in weights.items()}
        _band_adaptation(pretrained, data, model_cfg.mode, say, data_cfg.band_numbering)
        if not weights and model_cfg.backbone == "resnet50" and not fine_tuning:
            say("training ResNet-50 encoders from scratch: the paper's numbers assume pretrained weights. Give "
                "local ones with --pretrained FILE (all encoders) or --pretrained-m1 / --pretrained-m2 (e.g. SAR "
                "self-supervised and ImageNet weights); see 'Pretrained encoders' on the documentation's Training page")
    bands = (len(data.scenes[0].m1_bands), len(data.scenes[0].m2_bands))  # what the rasters hold
    if resumed is not None:
        if bands != resumed[0].model.in_channels:
            raise InputError(f"the resumed model was trained on {resumed[0].model.in_channels[0]} + "
                             f"{resumed[0].model.in_channels[1]} bands, these scenes give {bands[0]} + {bands[1]}; "
                             f"resume with the scenes of the saved run")
        data.use_table_and_stats(resumed[0].classes, resumed[0].stats)
    model_cfg = dataclasses.replace(model_cfg, in_channels=bands, num_classes=len(data.table))
    if resumed is None and loss_cfg.class_weights != "none":
        from ..config import class_weight_values

        values = class_weight_values(loss_cfg.class_weights, data.plan.class_counts.tolist())
        loss_cfg = dataclasses.replace(loss_cfg, class_weight_values=values)
        say(f"class weights ({loss_cfg.class_weights}, from the training labels' pixel counts): " + ", ".join(
            f"{n} {w:.2f}" for n, w in zip(data.table.names, values)))
    return ModelMeta(model_cfg, loss_cfg, train_cfg, data_cfg, data.table, data.stats, tuple(modalities),
                     data.chip_size, tuple(data.pixel_size), data.crs, pretrained)


def _fetch_weights(weights: dict, world: int, say) -> dict:
    """Each `--pretrained*` value as a local file: registry names fetched into the cache."""
    from ..progress import download_bar
    from ..weights.download import cached, resolve
    from ..weights.registry import entry as registry_entry

    resolved = {}
    for key, value in weights.items():
        found = None if Path(value).is_file() else registry_entry(str(value))
        if found is not None and world > 1 and cached(found) is None:
            raise InputError(f"{found.name} is not in the weights cache yet; under torchrun fetch it once first: "
                             f"stars weights download {found.name}")
        with download_bar(found.name if found else str(value)) as progress:
            resolved[key] = resolve(value, progress, say)[0]
    return resolved


def _file_record(path) -> dict:
    """Name, size and SHA-256 of a weights file, and its registry entry, for the model file's record."""
    from ..files import sha256
    from ..weights.download import entry_of

    record = {"file": os.path.basename(os.fspath(path)), "bytes": os.path.getsize(path), "sha256": sha256(path)}
    found = entry_of(path)
    if found is not None:
        record.update(registry=found.name, url=found.url, bands=list(found.bands), normalisation=found.normalisation,
                      licence=found.licence)
    return record


def _band_adaptation(pretrained: dict, data: TrainingData, mode: str, say, numbering: str = "sentinel-2") -> None:
    """Record (and say) how each registry file's first-layer filters meet the rasters' bands
    (`resnet.first_conv_plan`): picked by band name (numbers read in `numbering`), the mean of the
    file's filters for a band it lacks; with no name matched and the same count, the file's order,
    with a warning that it is a guess."""
    from ..models import pretrained_plan
    from ..models.resnet import as_sentinel2, first_conv_plan, numbered
    from ..models.stars import stem_bands

    bands = (tuple(data.scenes[0].m1_bands), tuple(data.scenes[0].m2_bands))
    for part, key in pretrained_plan(mode, set(pretrained)).items():  # the parts build_model loads, and from what
        names = stem_bands(part, mode, bands)
        record = pretrained.get(key) or {}
        if names is None or not record.get("bands"):
            continue
        label = "m1" if part.endswith("_m1") or mode == "single" else "m2" if part.endswith("_m2") else "concat"
        plan, how = first_conv_plan(record["bands"], as_sentinel2(names, numbering))
        record.setdefault("adaptation", {})[label] = dict(zip(names, plan))
        record.setdefault("adaptation_by", {})[label] = how
        if numbered(names):
            record["band_numbering"] = numbering
    for record in pretrained.values():
        for label, plan in record.get("adaptation", {}).items():
            how = record.get("adaptation_by", {}).get(label, "name")
            said = ", ".join(f"{b} <- {f or 'mean of all'}" for b, f in plan.items())
            rule = {"name": "first-layer filters picked by band name",
                    "position": "no band name matched, so the file's filters were kept in its order",
                    "mean": "no band name matched: every band starts from the mean of the file's filters"}[how]
            if "band_numbering" in record:
                rule += f"; band numbers read as {record['band_numbering']}'s (--band-numbering to say otherwise)"
            say(f"{record['registry']} ({', '.join(record['bands'])}) for the {label} bands: {said} ({rule}; the file "
                f"expects {record['normalisation']}, STARS standardises each band)")
            if how == "position":
                say(f"warning: the {label} bands ({', '.join(plan)}) have no names the file's ({', '.join(record['bands'])}) "
                    f"match, so their order is a guess: name the raster's bands (GDAL band descriptions, e.g. "
                    f"{', '.join(record['bands'])}) to have the filters picked by name")
            stats = data.stats[1 if label == "m2" else 0]
            if any(b in ("VV", "VH") for b in record["bands"]) and stats.mean and min(stats.mean) > 0 \
                    and max(stats.mean) < 1.5:
                say(f"warning: {record['registry']} was trained on SAR backscatter in dB; this raster's band means "
                    f"({', '.join(f'{m:.3f}' for m in stats.mean)}) look linear: convert with 10 * log10(value)")


def _fine_tuning(init_from, freeze: str, resumed, weights: dict, model_cfg, say):
    """The source model of a fine-tuning run and the architecture the run takes from it."""
    from .finetune import read_source

    if resumed is not None:
        raise InputError("--init-from starts a new run from a trained model and --resume finishes a saved run: give "
                         "one of them")
    if weights:
        raise InputError("--init-from starts every part from the trained model: leave out --pretrained*")
    source = read_source(init_from, freeze)
    arch = source.meta.model
    say(f"fine-tuning from {Path(init_from).name} ({arch.mode} / {arch.backbone}, width {arch.encoder_width}; its "
        f"{source.weights} weights, step {source.step}), frozen: {freeze}")
    return source, dataclasses.replace(arch)


def _build(meta: ModelMeta, weights: dict, resumed, device: torch.device, rank: int, world: int, say,
           source=None):
    """Model, optimiser, PSA sampling generator, first step and history: new, or as saved."""
    torch.manual_seed(meta.train.seed)
    given = {} if resumed is not None else weights
    file_bands = {k: tuple(r["bands"]) for k, r in (meta.pretrained or {}).items() if r.get("bands")}
    from ..models.resnet import as_sentinel2

    model = build_model(meta.model, given.get("all"), pretrained_m1=given.get("m1"), pretrained_m2=given.get("m2"),
                        bands=tuple(as_sentinel2(st.names, meta.data.band_numbering) if st is not None else ()
                                    for st in meta.stats),
                        weight_bands=file_bands).to(device)
    frozen = (meta.init_from or {}).get("freeze", "none")
    if source is not None:
        from .finetune import load_source

        load_source(model, source, meta.classes)
    if frozen != "none":  # (a resumed fine-tuning run freezes the same parts again)
        from .finetune import freeze_parts

        say(f"frozen: {', '.join(freeze_parts(model, frozen))}")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=meta.train.lr, weight_decay=meta.train.weight_decay)
    psa_gen = torch.Generator().manual_seed(meta.train.seed * 1000 + rank)
    if resumed is None:
        return model, optimizer, psa_gen, 0, []
    _, weights, state = resumed
    model.load_state_dict(fit_state_dict(model, weights))
    optimizer.load_state_dict(state.optimizer)
    _set_rng_state(state.rng, psa_gen, rank, world, say)
    return model, optimizer, psa_gen, state.step, list(state.history)


def _distributed(model: torch.nn.Module, meta: ModelMeta, device: torch.device) -> torch.nn.Module:
    # Without L_ncs the translation modules get no gradient; DDP must be told.
    unused = meta.model.mode == "stars" and meta.model.use_translation and not (meta.loss.use_ncs and meta.loss.beta > 0)
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=unused)


def _train_loader(data: TrainingData, cfg: TrainConfig, start: int, world: int, rank: int, device: torch.device):
    """The chips of the steps still to run, this rank's share; chip i is fixed by (seed, i)."""
    remaining = max(0, cfg.steps - start)
    chips = ChipDataset(data.scenes, data.stats, data.chip_size, data.plan.train, remaining * cfg.batch_size,
                        seed=cfg.seed, train=True, offset=start * cfg.batch_size, stride=world, rank=rank)
    return torch.utils.data.DataLoader(
        chips, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.num_workers, drop_last=True,
        pin_memory=device.type == "cuda", generator=torch.Generator(), worker_init_fn=_ignore_interrupts,
        prefetch_factor=4 if cfg.num_workers > 0 else None, persistent_workers=False,
    )


def _ignore_interrupts(worker_id: int) -> None:
    """Data-loading workers leave Ctrl-C to the main process, which stops cleanly and saves."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


# -- validation and records ----------------------------------------------------------------------
class _Validation:
    """Validation passes on the held-out chips, adding their metrics to the step's row, and the
    diagnostics PNGs when a folder was asked for (rank 0 only)."""

    def __init__(self, loader, meta: ModelMeta, device: torch.device, precision: TrainingPrecision,
                 diag: Diagnostics | None, say):
        self.loader, self.meta, self.device, self.diag, self.say = loader, meta, device, diag, say
        self.precision = precision
        self.steps = diag.steps if diag is not None else set()

    @classmethod
    def create(cls, data: TrainingData, meta: ModelMeta, device, precision: TrainingPrecision, diagnostics,
               similarity_steps, resuming: bool, say) -> "_Validation | None":
        positions = data.plan.val[: meta.train.max_val_chips]
        if not len(positions):
            if diagnostics is not None:
                say(f"no diagnostics in {diagnostics}: there are no validation chips (raise the validation "
                    "fraction or give a larger area)")
            return None
        chips = ChipDataset(data.scenes, data.stats, data.chip_size, positions, len(positions), train=False)
        # Its own generator: iterating a loader must not draw from the global RNG (exact resume).
        loader = torch.utils.data.DataLoader(chips, batch_size=meta.train.batch_size, num_workers=0,
                                             generator=torch.Generator())
        diag = None
        if diagnostics is not None:
            diag = Diagnostics(Path(diagnostics), meta.classes.names, meta.modalities, set(similarity_steps),
                               resuming=resuming)
        return cls(loader, meta, device, precision, diag, say)

    def run(self, model, step: int, row: dict, history: list[dict], final: bool = False) -> None:
        cfg, names = self.meta.model, self.meta.classes.names
        probe = AlignmentProbe(len(names)) if cfg.mode == "stars" else None
        metrics = validate(model, self.loader, len(names), self.device, self.precision, names,
                           cfg.mode != "single", probe)
        for key, m in metrics.items():
            row[f"val_{key}_miou"], row[f"val_{key}_mf1"] = m["miou"], m["mf1"]
            row.update({f"val_{key}_iou_{n}": v["iou"] for n, v in m["per_class"].items()})
        alignment = probe.summary() if probe is not None and probe.pixels else None
        if alignment is not None:
            row.update(val_align_diagonal=alignment["diagonal"], val_align_gap=alignment["gap"],
                       val_spread=alignment["spread"])
        if self.diag is not None:
            self.diag.write(step, metrics["m1"], alignment, history + [row], final=final)
        if step > 0:
            self.say(f"step {step}: validation mIoU {metrics['m1']['miou']:.4f} from {self.meta.modalities[0]} "
                     f"alone" + (f", {metrics['fused']['miou']:.4f} with both" if "fused" in metrics else ""))


class _Clock:
    """Wall time and the time spent waiting for data, for the summary."""

    def __init__(self):
        self.t0, self.wait = time.perf_counter(), 0.0

    def batches(self, loader):
        it = iter(loader)
        while True:
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            self.wait += time.perf_counter() - t
            yield batch

    def summary(self, step: int, device, world: int, history: list[dict], data: TrainingData) -> dict:
        wall = time.perf_counter() - self.t0
        last_val = next((h for h in reversed(history) if "val_m1_miou" in h), {})
        return {
            "steps": step, "device": str(device), "world_size": world, "seconds": round(wall, 1),
            "data_wait_fraction": round(self.wait / wall, 4) if wall > 0 else None,
            "last": {k: v for k, v in (history[-1] if history else {}).items() if not k.startswith("val_")},
            "validation": {k: v for k, v in last_val.items() if k == "step" or k.startswith("val_")},
            "class_pixels": data.plan.class_counts.tolist(),
            "scenes": len(data.scenes), "skipped_scenes": data.skipped,
        }


def _step(net, model, optimizer, batch, step: int, meta: ModelMeta, psa_gen, psa_exclude, device, world: int,
          precision: TrainingPrecision) -> dict:
    """One optimisation step at the scheduled learning rate; the row of logged values. Every rank
    stops together on a NaN or infinite loss (TrainingError)."""
    cfg = meta.train
    lr = get_lr(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    x1, x2, y = (t.to(device, non_blocking=True) for t in batch)
    x1, x2 = precision.memory(x1), precision.memory(x2)
    with precision.autocast(device):
        loss, terms = stars_loss(net(x1, x2), y, meta.loss, psa_gen, psa_exclude)
    if _any_rank(not bool(torch.isfinite(loss)), world, device):
        values = {k: round(float(v), 4) for k, v in terms.items()}
        where = f"the loss became {loss.item()}" if not torch.isfinite(loss) or world == 1 else \
            "the loss became NaN or infinite in another process"
        raise TrainingError(f"{where} at step {step + 1} (terms {values})")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return {"step": step + 1, "lr": lr, "grad_norm": float(grad_norm), **{k: float(v) for k, v in terms.items()}}


def _recalibrate(model, data: TrainingData, chips: int, batch: int, device, say) -> None:
    """Per-modality statistics of the shared encoder from `chips` training chips (no augmentation)."""
    from .recalibrate import recalibrate_model

    positions = data.plan.train[np.random.default_rng(0).permutation(len(data.plan.train))[:chips]]
    loader = torch.utils.data.DataLoader(
        ChipDataset(data.scenes, data.stats, data.chip_size, positions, len(positions), train=False),
        batch_size=batch, num_workers=0, generator=torch.Generator())
    batches = ((m, x.to(device)) for x1, x2, _ in loader for m, x in ((1, x1), (2, x2)))
    seen = recalibrate_model(model, batches)
    say(f"shared-encoder statistics re-estimated from {seen.get(1, 0)} chips per modality")
    model.train()


def _kept(out: Path, last_saved: int | None) -> str:
    return f"the last good model file {out} (step {last_saved}) is kept" if last_saved is not None \
        else "no model file was written"


# -- processes and random state ------------------------------------------------------------------
def _any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """True on every rank when it is true on one (a NaN or a cancel stops all ranks together)."""
    if world == 1:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def _rng_state(gen: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "psa": gen.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # this process's GPU only: resumable on fewer GPUs
    return state


def _rng_states(gen: torch.Generator, world: int) -> dict:
    """This process's random state, and under torchrun every rank's (gathered on all ranks)."""
    mine = _rng_state(gen)
    if world == 1:
        return mine
    ranks: list = [None] * world
    dist.all_gather_object(ranks, mine)
    return {**mine, "ranks": ranks}


def _set_rng_state(state: dict, gen: torch.Generator, rank: int, world: int, say) -> None:
    ranks = state.get("ranks")
    if ranks is not None and len(ranks) == world:
        state = ranks[rank]
    elif ranks is not None or world > 1:
        say(f"the run was saved with {len(ranks) if ranks else 1} process(es) and resumes with {world}: "
            f"chips stay exact; random state restored on the first process only")
        if rank > 0:
            return
    torch.set_rng_state(state["torch"])
    gen.set_state(state["psa"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if isinstance(cuda, (list, tuple)):  # files before: every GPU's state
            cuda = cuda[torch.cuda.current_device()] if torch.cuda.current_device() < len(cuda) else None
        if cuda is not None:
            torch.cuda.set_rng_state(cuda)
