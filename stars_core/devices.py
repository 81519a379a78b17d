"""The device a job runs on: the names the toolbox accepts, the torch device they resolve to, and
bf16 autocast where it pays. PyTorch is imported only inside the functions, so the names can be
checked by code that never loads it."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
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


def cpu_bf16() -> str | None:
    """What this CPU has for bf16 arithmetic ("AMX", "AVX-512 BF16"), or None: asked of the CPU
    (the kernel's CPU flags, else PyTorch's own probes), never assumed."""
    import torch

    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        flags = set()

    def probed(name: str) -> bool:
        try:
            return bool(getattr(torch.cpu, name)())
        except Exception:  # a private probe that moved or changed: no answer from it
            return False

    for name, flag, probe in (("AMX", "amx_bf16", "_is_amx_tile_supported"),
                              ("AVX-512 BF16", "avx512_bf16", "_is_avx512_bf16_supported")):
        if flag in flags or probed(probe):
            return name
    return None


@dataclass(frozen=True)
class TrainingPrecision:
    """How training computes on a device: bf16 autocast and the memory format of activations.

    CUDA: bf16 autocast unless turned off (as before). A CPU with native bf16 (AMX or AVX-512 BF16):
    channels-last memory in fp32 (1.25x the demo recipe's steps/s at the same validation mIoU), or
    with `want_bf16` (`--cpu-bf16`) bf16 autocast too (2.0x, 0.4 points lower at equal steps: bench/RESULTS.md).
    Other CPUs: fp32 as before (neither was measured there; bf16 is far slower without them)."""

    bf16: bool
    channels_last: bool
    why: str

    @classmethod
    def choose(cls, device: "torch.device", amp: bool, want_bf16: bool = False,
               offer_bf16: bool = True) -> "TrainingPrecision":
        """`offer_bf16`: whether the caller has a --cpu-bf16 to suggest where the CPU could use it."""
        if device.type == "cuda":
            return cls(amp, False, "bf16 autocast on CUDA" if amp else "fp32 (--no-amp)")
        if not amp:
            return cls(False, False, "fp32 on the CPU (--no-amp)")
        found = cpu_bf16()
        if found is None:
            return cls(False, False, "fp32 on the CPU (it has no AMX or AVX-512 BF16)"
                       + ("; --cpu-bf16 needs them" if want_bf16 else ""))
        if want_bf16:
            return cls(True, True, f"bf16 autocast with channels-last memory on the CPU (it has {found}; --cpu-bf16)")
        return cls(False, True, f"fp32 with channels-last memory on the CPU (it has {found}"
                                + (": --cpu-bf16 trains about 1.6x faster again in bf16, a little less accurate)"
                                   if offer_bf16 else ")"))

    def autocast(self, device: "torch.device"):
        import torch

        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def memory(self, tensor_or_module):
        """A module or 4-d tensor in this precision's memory format."""
        import torch

        if not self.channels_last:
            return tensor_or_module
        if isinstance(tensor_or_module, torch.Tensor):
            return tensor_or_module.contiguous(memory_format=torch.channels_last) if tensor_or_module.dim() == 4 \
                else tensor_or_module
        return tensor_or_module.to(memory_format=torch.channels_last)
