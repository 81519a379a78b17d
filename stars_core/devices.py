"""The device a job runs on: the names the toolbox accepts, the torch device they resolve to, and
bf16 autocast where it pays. PyTorch is imported only inside the functions, so the names can be
checked by code that never loads it."""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")  # cuda:N is accepted too


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
