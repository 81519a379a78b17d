"""Outputs that appear whole or not at all: write to temporary names beside the targets, rename
when everything succeeded, remove the temporaries on any error (cancel included)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# Files GDAL may write beside a raster; they travel with it.
SIDECARS = (".aux.xml",)


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")


@contextmanager
def atomic_outputs(*paths: str | os.PathLike | None) -> Iterator[list[Path | None]]:
    """Yield one temporary path per target (None stays None). On success each temporary (and any
    GDAL sidecar of it) replaces its target, the first target last, so the main output appears only
    once its companions are in place; on error every temporary is removed and targets are untouched."""
    targets = [Path(p) if p is not None else None for p in paths]
    temps = [temporary_name(p) if p is not None else None for p in targets]
    for t in targets:
        if t is not None:
            t.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield temps
        for target, temp in reversed(list(zip(targets, temps))):
            if target is None:
                continue
            for suffix in SIDECARS:
                side, old = Path(str(temp) + suffix), Path(str(target) + suffix)
                if side.exists():
                    os.replace(side, old)
                elif old.exists():
                    old.unlink()  # a stale sidecar would describe the previous file
            os.replace(temp, target)
    finally:
        for temp in temps:
            if temp is None:
                continue
            for p in (temp, *(Path(str(temp) + s) for s in SIDECARS)):
                if p.exists():
                    p.unlink()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """One output: `with atomic_path(out) as tmp: write(tmp)`."""
    with atomic_outputs(path) as (tmp,):
        yield tmp
