"""The STARS losses: L_total = L_seg + alpha * L_psc + beta * L_ncs (paper eq. 7).

- `segmentation_loss`: mean cross-entropy of the decoder branches (eq. 6).
- `translation_loss`: L_ncs, negative cosine between translated features and stop-gradient targets
  (section 3.2.2, eq. 4); the stop-gradient is the `.detach()` in `_target`.
- `sample_balanced_pixels` + `pixel_contrastive_loss`: PSA, N pixels per valid class and a supervised
  cross-modal contrastive loss on them (section 3.3, eq. 5).
Translation and PSA act on the aligned stages (3 and 4 by default); the label is resized to each
stage's grid (nearest) and the stage losses are averaged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import LossConfig
from ..models import PairOutput


def segmentation_loss(out: PairOutput, target: torch.Tensor, ignore_index: int = 255,
                      class_weights: tuple[float, ...] = ()) -> torch.Tensor:
    """Mean cross-entropy over the branches present in `out` ("m1", "m2", "fused"), weighted by
    class where `class_weights` are given (a weighted mean over the pixels, as PyTorch takes it)."""
    logits = list(out.logits().values())
    if not logits:
        raise ValueError("the model output holds no branch logits (m1, m2 or fused)")
    weight = torch.tensor(class_weights, dtype=torch.float32, device=target.device) if class_weights else None
    losses = [F.cross_entropy(x.float() if weight is not None else x, target, weight=weight,
                              ignore_index=ignore_index) for x in logits]
    return torch.stack(losses).mean()


def _target(f: torch.Tensor, detach: bool) -> torch.Tensor:
    return f.detach() if detach else f


def translation_loss(
    p1: torch.Tensor, p2: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, detach: bool = True
) -> torch.Tensor:
    """L_ncs = -1/2 [cos(p1, stopgrad(f2)) + cos(p2, stopgrad(f1))], paper eq. 4.

    p1 = h_12(f1) and p2 = h_21(f2) are the translations; f1, f2 the shared features (B, C, h, w).
    The cosine is taken along channels at every pixel and averaged. With `detach=False` (the
    ablation) gradients also flow into the targets, which invites feature collapse.
    """
    if p1.shape != f2.shape or p2.shape != f1.shape:
        raise ValueError(
            f"translations must match their targets: p1 {tuple(p1.shape)} vs f2 {tuple(f2.shape)}, "
            f"p2 {tuple(p2.shape)} vs f1 {tuple(f1.shape)}"
        )
    sim_12 = F.cosine_similarity(p1, _target(f2, detach), dim=1).mean()
    sim_21 = F.cosine_similarity(p2, _target(f1, detach), dim=1).mean()
    return -0.5 * (sim_12 + sim_21)


def sample_balanced_pixels(
    labels: torch.Tensor, n: int, ignore_index: int = 255, generator: torch.Generator | None = None,
    exclude: tuple[int, ...] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-balanced pixel sampling of PSA (paper section 3.3.1).

    For every class present in `labels` (any shape, e.g. (B, h, w)) except `ignore_index` and the
    class indices in `exclude` (PSA exclusions, e.g. background), the
    class's flat positions are shuffled and the first `n` taken; a class with fewer than `n` pixels
    has its shuffled positions repeated until there are `n`. Returns (flat indices into
    labels.reshape(-1), their classes), both (n * n_classes,) long tensors on labels' device, classes
    in ascending order. Sampling runs on the CPU so one seeded generator reproduces it on any device.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    flat = labels.detach().reshape(-1).cpu()
    classes = [int(c) for c in torch.unique(flat) if int(c) != ignore_index and int(c) not in exclude]
    picks, owners = [], []
    for c in classes:
        positions = torch.nonzero(flat == c, as_tuple=False).squeeze(1)
        shuffled = positions[torch.randperm(len(positions), generator=generator)]
        repeats = -(-n // len(shuffled))
        picks.append(shuffled.repeat(repeats)[:n])
        owners.append(torch.full((n,), c, dtype=torch.long))
    if not picks:
        empty = torch.zeros(0, dtype=torch.long, device=labels.device)
        return empty, empty.clone()
    return torch.cat(picks).to(labels.device), torch.cat(owners).to(labels.device)


def pixel_contrastive_loss(f1: torch.Tensor, f2: torch.Tensor, classes: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """L_psc over sampled pixels (paper eq. 5), averaged over the anchors i.

    f1, f2: (M, C) features of modality 1 and 2 at the same M sampled positions; classes: (M,).
    For anchor i: -log( sum_{j: class j == class i} exp(cos(f1_i, f2_j)/tau) / sum_k exp(cos(f1_i, f2_k)/tau) ).
    The paper writes a sum over anchors; we take the mean so alpha does not scale with the number of
    classes in the batch.
    """
    if f1.shape != f2.shape or f1.ndim != 2 or classes.shape != f1.shape[:1]:
        raise ValueError(
            f"expected f1, f2 of shape (M, C) and classes (M,), got {tuple(f1.shape)}, "
            f"{tuple(f2.shape)}, {tuple(classes.shape)}"
        )
    z1 = F.normalize(f1.float(), dim=1)
    z2 = F.normalize(f2.float(), dim=1)
    logits = z1 @ z2.T / tau  # (M, M): cos(f1_i, f2_j) / tau
    positive = classes[:, None] == classes[None, :]  # (M, M), the diagonal always positive
    log_pos = torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=1)
    log_all = torch.logsumexp(logits, dim=1)
    return (log_all - log_pos).mean()


def stage_labels(target: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Label (B, H, W) resized to a stage grid (B, h, w) by nearest neighbour."""
    return F.interpolate(target[:, None].float(), size=size, mode="nearest")[:, 0].long()


def flat_pixels(f: torch.Tensor) -> torch.Tensor:
    return f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])  # (B, C, h, w) -> (B*h*w, C)


def psa_loss(
    f1: torch.Tensor, f2: torch.Tensor, target: torch.Tensor, cfg: LossConfig,
    generator: torch.Generator | None = None, exclude: tuple[int, ...] = (),
) -> torch.Tensor:
    """PSA on one stage: sample N pixels per class of the resized label (class indices in `exclude`
    left out), then L_psc on them."""
    labels = stage_labels(target, f1.shape[-2:])
    idx, classes = sample_balanced_pixels(labels, cfg.n_samples, cfg.ignore_index, generator, exclude)
    if len(idx) == 0:  # nothing labelled at this stage: no alignment signal
        return f1.sum() * 0.0
    return pixel_contrastive_loss(flat_pixels(f1)[idx], flat_pixels(f2)[idx], classes, cfg.tau)


def stars_loss(
    out: PairOutput, target: torch.Tensor, cfg: LossConfig, generator: torch.Generator | None = None,
    psa_exclude: tuple[int, ...] = (),
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_total and its terms {"seg", "psc", "ncs", "total"} (terms detached, for logging).

    `psa_exclude`: class indices (not values) left out of PSA's sampling; `cfg.psa_exclude` holds
    the values, the training loop maps them. `out` is what a model returns for `model(x1, x2)`. Baseline outputs carry no shared
    features, so only L_seg applies to them. Switched-off terms are reported as 0.
    """
    seg = segmentation_loss(out, target, cfg.ignore_index, cfg.class_weight_values)
    zero = seg.new_zeros(())
    psc, ncs = zero, zero
    if out.shared_m1:
        f1s, f2s = out.shared_m1, out.shared_m2
        if cfg.use_psc and cfg.alpha > 0:
            psc = torch.stack([psa_loss(a, b, target, cfg, generator, psa_exclude)
                               for a, b in zip(f1s, f2s)]).mean()
        if cfg.use_ncs and cfg.beta > 0:
            stages = zip(out.trans_12, out.trans_21, f1s, f2s)
            ncs = torch.stack([translation_loss(p1, p2, a, b, cfg.detach) for p1, p2, a, b in stages]).mean()
    total = seg + cfg.alpha * psc + cfg.beta * ncs
    terms = {"seg": seg.detach(), "psc": psc.detach(), "ncs": ncs.detach(), "total": total.detach()}
    return total, terms
