"""How many CPU threads PyTorch uses, adapted to what else runs on the machine.

PyTorch's CPU build runs its intra-op threads on GNU OpenMP, whose threads spin while they wait for
each other. Alone on its cores that is the fast path; beside another busy process every parallel
region waits for a descheduled thread, and a forward pass runs 10-40x slower (bench/RESULTS.md).
No single OpenMP setting wins both cases, so the toolbox adapts the thread count instead: it uses
as many threads as there are idle cores, re-checked every few seconds between training steps and
segmentation batches (`adapt()`), and drops to one thread (nothing left to spin for) while another
process keeps a core busy. Measured: the default collapses to 0.10-0.28x of its idle speed beside
one busy process, the adaptive count keeps 0.58-0.71x and costs 1-4% when idle.

The user wins: with OMP_NUM_THREADS set, or a fixed `--threads N` / QGIS setting, the count stays
fixed; OMP_WAIT_POLICY and GOMP_SPINCOUNT are never overridden. The count must leave room for
DataLoader worker processes: their CPU time counts as other load, so the count makes room for them. Linux only (it reads /proc); elsewhere the count is fixed.
Import this module before torch where possible; it does not import torch itself.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Callable

INTERVAL = 2.0  # seconds between load checks
MARGIN = 0.3  # cores of other load tolerated as noise (a desktop is never fully idle)


def available_cores() -> int:
    cpus = _affinity()
    return len(cpus) if cpus else (os.cpu_count() or 1)


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _machine_jiffies(cpus: set[int] | None = None) -> tuple[int, int] | None:
    """(busy, total) CPU time, in clock ticks, of the CPUs this process may run on (`cpus`; all of
    them when None), or None off Linux. On a shared node only the allotted CPUs count."""
    busy = total = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if not name.startswith("cpu") or name == "cpu":
                    continue
                if cpus is not None and int(name[3:]) not in cpus:
                    continue
                values = [int(v) for v in fields]
                idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
                all_ = sum(values[:8])  # guest time is already counted in user
                busy, total = busy + all_ - idle, total + all_
    except (OSError, ValueError):
        return None
    return (busy, total) if total else None


def _own_jiffies() -> int | None:
    """CPU time of this process (all its threads, spinning included), in clock ticks."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


@dataclass
class Load:
    """Cores kept busy by other processes over the last interval."""

    others: float
    machine_cores: int


class LoadProbe:
    """Measures other processes' CPU use between two calls: busy time of the CPUs this process may
    use minus its own (its DataLoader workers are other processes, so they count as load)."""

    def __init__(self):
        self.cpus = _affinity()
        self.machine_cores = available_cores()
        self._last = (_machine_jiffies(self.cpus), _own_jiffies())
        self.since = time.monotonic()  # when the interval the next sample measures began

    def sample(self) -> Load | None:
        machine, own = _machine_jiffies(self.cpus), _own_jiffies()
        last_machine, last_own = self._last
        self._last, self.since = (machine, own), time.monotonic()
        if None in (machine, own, last_machine, last_own):
            return None
        busy, total = machine[0] - last_machine[0], machine[1] - last_machine[1]
        if total <= 0:
            return None
        elapsed_cores = total / self.machine_cores  # ticks per core over the interval
        others = max(0.0, (busy - (own - last_own)) / elapsed_cores)
        return Load(others, self.machine_cores)


def threads_for(load: Load | None, cores: int, reserve: int = 0) -> int:
    """Threads to use on `cores` when other processes keep `load.others` cores busy and `reserve`
    cores go to our own helper processes (DataLoader workers)."""
    idle = cores - reserve - (0.0 if load is None else load.others)
    return max(1, min(cores, int(idle + MARGIN)))


class ThreadPolicy:
    """The process's thread count: fixed, or adapted to the load (`adapt()` between units of work)."""

    def __init__(self, fixed: int | None = None, reserve: int = 0, interval: float = INTERVAL):
        self.cores = available_cores()
        self.fixed, self.reserve, self.interval = fixed, reserve, interval
        self.probe = LoadProbe() if fixed is None else None
        self.current: int | None = None
        self._checked = 0.0
        self.changes = 0

    @property
    def adaptive(self) -> bool:
        return self.probe is not None

    def decide(self) -> int:
        if self.fixed is not None:
            return self.fixed
        return threads_for(self.probe.sample(), self.cores, self.reserve)

    def adapt(self, force: bool = False) -> int:
        """Set torch's intra-op thread count if it should change; checks the load at most every
        `interval` seconds (a cheap read of /proc). Returns the count in force."""
        now = time.monotonic()
        if self.current is None or force or now - self._checked >= self.interval:
            self._checked = now
            wanted = self.decide()
            if wanted != self.current:
                self.changes += self.current is not None
                self.current, self._told = wanted, False
        self._tell_torch()
        return self.current

    def _tell_torch(self) -> None:
        """Set torch's count once torch is loaded (this module never imports it: ONNX Runtime
        segmentation runs without PyTorch)."""
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and not getattr(self, "_told", False):
            torch.set_num_threads(self.current)
            self._told = True


_POLICY: ThreadPolicy | None = None
USER_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")


def prepare_environment(environ=os.environ) -> str:
    """Call before torch is imported. The toolbox sets no OpenMP variable: bounding the spinning
    (GOMP_SPINCOUNT=10000) was measured to cost 16% on an idle machine and to add nothing to the
    adaptive count beside other work (bench/RESULTS.md, "Threads on a busy machine"). What it does
    is note what applies: the user's own OMP_WAIT_POLICY / GOMP_SPINCOUNT / OMP_NUM_THREADS (kept;
    OMP_NUM_THREADS fixes the count), or PyTorch already imported by someone else (the count still
    adapts, as torch.set_num_threads works at any time). Returns that note as one line."""
    import sys

    mine = [k for k in USER_SETTINGS if k in environ]
    if mine:
        return f"thread settings from the environment ({', '.join(f'{k}={environ[k]}' for k in mine)}) are kept"
    if "torch" in sys.modules:
        return "PyTorch was imported before STARS; its thread count is adapted all the same"
    return ""


def configure(threads: int | str | None = "auto", reserve: int = 0, settle: float = 0.2,
              say: Callable[[str], None] | None = None) -> ThreadPolicy:
    """Choose the process's thread policy: "auto"/None adapts (unless OMP_NUM_THREADS is set, which
    fixes the count), an integer fixes it, capped at the cores this process may use (more threads
    than cores only make every thread wait; `say` is told). `reserve` cores are left alone (e.g. to
    QGIS's interface). Measures the load over `settle` seconds at least first: where an adaptive
    policy measured it less than its `interval` ago (a second command in one process, a second
    algorithm run in QGIS), over the time since then, waiting only for what that lacks of `settle`."""
    global _POLICY
    fixed: int | None = None
    if threads not in (None, "auto"):
        fixed = int(threads)
        if fixed < 1:
            raise ValueError(f"threads must be at least 1 or 'auto', got {threads}")
        cores = available_cores()
        if fixed > cores:
            if say is not None:
                say(f"{fixed} threads asked for, but this process may use {cores} core(s): using {cores}")
            fixed = cores
    elif os.environ.get("OMP_NUM_THREADS", "").isdigit():
        fixed = max(1, int(os.environ["OMP_NUM_THREADS"]))
    policy = ThreadPolicy(fixed, reserve)
    if policy.adaptive and _own_jiffies() is None:  # no /proc: keep what PyTorch chose
        policy = ThreadPolicy(available_cores(), reserve)
    if policy.adaptive and settle > 0:
        last = _POLICY.probe if _POLICY is not None and _POLICY.adaptive else None
        if last is not None and time.monotonic() - last.since <= policy.interval:
            policy.probe = last  # its interval goes on, no older than the policy's own checks
        time.sleep(max(0.0, settle - (time.monotonic() - policy.probe.since)))
    policy.adapt(force=True)
    _POLICY = policy
    return policy


@contextlib.contextmanager
def hold():
    """The thread count in force held for a block, then the policy restored: two runs compared bit
    for bit (a resumed training against an uninterrupted one) must not see the adaptive count change
    between them with the machine's load (a different count sums in another order)."""
    global _POLICY
    before = _POLICY
    held = ThreadPolicy(in_force())
    held.adapt(force=True)
    _POLICY = held
    try:
        yield held.current
    finally:
        _POLICY = before
        if before is not None:
            before.adapt(force=True)


def current() -> int | None:
    """The thread count in force (None until `configure`), e.g. for ONNX Runtime's session."""
    return _POLICY.current if _POLICY is not None else None


def adapt() -> int | None:
    """Re-check the load and adjust the thread count (no-op until `configure` was called)."""
    return _POLICY.adapt() if _POLICY is not None else None


def describe() -> str:
    if _POLICY is None:
        return "threads: PyTorch default"
    if not _POLICY.adaptive:
        return f"threads: {_POLICY.current} (fixed)"
    return f"threads: {_POLICY.current} of {_POLICY.cores} cores, adapted to the load every {_POLICY.interval:g} s"


def in_force() -> int:
    """The thread count in force, or every core the process may use before `configure`: for the work
    the toolbox or GDAL spreads over threads itself (the temporal filter, compression, overviews)."""
    return current() or available_cores()
