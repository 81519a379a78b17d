"""The settings of `stars distill` (no PyTorch import: the command line reads its defaults)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class DistillConfig:
    """The student's architecture and the distillation recipe."""

    backbone: str = "resnet18"
    encoder_width: int = 32
    decoder_channels: int = 128  # the FPN's pyramid channels (the teacher's: 256); its head takes half
    steps: int = 2000
    batch_size: int = 8
    chip_size: int | None = None  # default: the teacher's training chip size
    lr: float = 1e-3
    temperature: float = 2.0
    label_weight: float = 1.0  # weight of the labels' cross-entropy, where labels are given
    ignore_values: tuple[int, ...] = ()
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # the device's fast path as in training (devices.TrainingPrecision); False: plain fp32

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise InputError(f"steps and batch size must be at least 1, got {self.steps} and {self.batch_size}")
        if self.temperature <= 0 or self.lr <= 0 or self.label_weight < 0:
            raise InputError(f"temperature and learning rate must be > 0 and the label weight >= 0, got "
                             f"{self.temperature}, {self.lr} and {self.label_weight}")
        if self.chip_size is not None and (self.chip_size < 32 or self.chip_size % 32):
            raise InputError(f"chip size must be a multiple of 32, got {self.chip_size}")
        if self.decoder_channels < 16 or self.decoder_channels % 16:
            raise InputError(f"decoder channels must be a multiple of 16 (at least 16), got {self.decoder_channels}")
