"""The settings of `stars distill` (no PyTorch import: the command line reads its defaults)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import InputError

STUDENT_WIDTH = 32  # the student's default encoder width and decoder channels, when the teacher is wider
STUDENT_DECODER = 128


@dataclass(frozen=True)
class DistillConfig:
    """The student's architecture and the distillation recipe."""

    backbone: str = "resnet18"
    encoder_width: int | None = None  # None: 32, at most the teacher's (a student never wider than its teacher)
    decoder_channels: int | None = None  # the FPN's pyramid channels; None: 128, at most the teacher's; head: half
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
        if self.decoder_channels is not None and (self.decoder_channels < 16 or self.decoder_channels % 16):
            raise InputError(f"decoder channels must be a multiple of 16 (at least 16), got {self.decoder_channels}")
        if self.encoder_width is not None and (self.encoder_width < 8 or self.encoder_width % 8):
            raise InputError(f"the student's encoder width must be a multiple of 8 (at least 8), got {self.encoder_width}")

    def for_teacher(self, teacher) -> "DistillConfig":
        """The recipe with the student's width and decoder channels that were not given sized from the
        teacher's `StarsConfig`: the defaults (32 and 128), or the teacher's own where it is narrower."""
        decoder = max(16, min(STUDENT_DECODER, teacher.pyramid_channels) // 16 * 16)
        return replace(self, encoder_width=self.encoder_width or min(STUDENT_WIDTH, teacher.encoder_width),
                       decoder_channels=self.decoder_channels or decoder)
