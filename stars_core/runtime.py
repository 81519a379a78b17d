"""The bottom of stars_core: the errors every front end translates, and the device choice.

Everything else may import this module; it imports nothing of stars_core. Torch is imported only
inside the device helpers, so the errors can be caught by code that never loads PyTorch.

Errors, and how the command line and QGIS report them (each once, in one place):
    InputError     bad input or settings; the message names the problem and the fix (exit 2);
    TrainingError  training could not go on (e.g. the loss became NaN); the message says which
                   model file is kept (exit 1);
    Cancelled      the user cancelled (Ctrl-C, SIGTERM, QGIS's cancel button); the message says
                   what was kept (exit 130).
InputError is a ValueError, so code that catches ValueError keeps working.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")  # cuda:N is accepted too


class StarsError(Exception):
    """Base of the errors a front end shows as one line."""


class InputError(StarsError, ValueError):
    """An input or a setting is wrong; nothing was written."""


class TrainingError(StarsError, RuntimeError):
    """Training cannot go on; the last good model file is kept."""


class Cancelled(StarsError):
    """The user cancelled; no partial output is left (a training run keeps a resumable model)."""


def check_device(name: str) -> str:
    """`name` if it is a device the toolbox understands, else an InputError naming the choices."""
    if name in DEVICES or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise InputError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")


def resolve_device(name: str, local_rank: int = 0) -> "torch.device":
    """The torch device for `name` (auto: the process's GPU when CUDA is there, else the CPU)."""
    import torch

    check_device(name)
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {name!r} was asked for but PyTorch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name if name != "cuda" else f"cuda:{local_rank}")


def autocast(device: "torch.device", enabled: bool):
    """bf16 autocast on CUDA; a no-op elsewhere (fp32 is the fast path on CPU)."""
    import torch

    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled)
