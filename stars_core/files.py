"""Outputs that appear whole or not at all: write to temporary names beside the targets, rename
when everything succeeded, remove the temporaries on any error (cancel included)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import InputError

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


def check_outputs(inputs: dict[str, object], outputs: dict[str, object], folders: dict[str, object] | None = None,
                  same_ok: tuple[tuple[str, str], ...] = ()) -> None:
    """Refuse, before any work, an output that would destroy an input or cannot be written: an
    output (file or folder) that resolves (symlinks followed) to an input of the same run, an output
    file that is an existing folder, a folder output that is an existing file, and a location that
    cannot be written. `same_ok` lists (output, input) names allowed to coincide (resume in place).
    Names are what the user calls them ("--out", "input raster"); None entries are skipped. `inputs`
    are every file the run reads, not only those it was given: an input may be a list of paths
    under one name (the maps a change map was made from, a series' dates)."""
    real = [(name, os.path.realpath(os.fspath(q))) for name, p in inputs.items() if p is not None
            for q in (p if isinstance(p, (list, tuple)) else [p]) if q is not None]
    wanted = [(name, p, False) for name, p in outputs.items() if p is not None]
    wanted += [(name, p, True) for name, p in (folders or {}).items() if p is not None]
    seen: dict[str, str] = {}
    for name, path, is_folder in wanted:
        path = os.fspath(path)
        target = os.path.realpath(path)
        for in_name, in_real in real:
            if target == in_real and (name, in_name) not in same_ok:
                raise InputError(f"{name} {path!r} is the {in_name}; writing it would destroy the input. "
                                 f"Choose another name")
        if target in seen:
            raise InputError(f"{name} and {seen[target]} are the same file {path!r}; give each its own name")
        seen[target] = name
        if not is_folder and os.path.isdir(target):
            raise InputError(f"{name} {path!r} is a folder; give a file name")
        if is_folder and os.path.exists(target) and not os.path.isdir(target):
            raise InputError(f"{name} {path!r} is a file; give a folder")
        _check_writable(name, target if is_folder else os.path.dirname(target) or ".")


def _check_writable(name: str, folder: str) -> None:
    """The folder, or the nearest existing folder above it (which will hold the new ones), must be writable."""
    probe = folder
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise InputError(f"{name}: {probe!r} is a file, so the folder {folder!r} cannot be made there")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{name}: the folder {probe!r} cannot be written (permissions); choose another place")


def unwritten(path: str | os.PathLike, cause: object = None) -> Exception:
    """The error for an output that a library failed to write (GDAL leaves a file it cannot reopen,
    PyTorch says "unexpected pos"): a full disk when the place has (almost) no room left, said as
    such in one line (`OutputError`); otherwise the cause, which is not ours to name."""
    import errno
    import shutil

    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < FULL_BELOW:
        from .errors import OutputError

        return OutputError(errno.ENOSPC, f"the disk holding {folder!r} is full ({free / 1e6:.1f} MB free), so "
                           f"{Path(path).name.split('.tmp-')[0].lstrip('.')!r} could not be written; free some "
                           f"space or choose another place")
    return cause if isinstance(cause, Exception) else OSError(f"{os.fspath(path)!r} could not be written: {cause}")


FULL_BELOW = 32 << 20  # bytes: less room than this where a write failed means the disk is full


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def user_cache_dir() -> Path:
    """STARS's cache folder: $STARS_CACHE_DIR (the QGIS plugin points it into the QGIS profile), else
    the platform's: %LOCALAPPDATA%\\stars\\cache on Windows, ~/Library/Caches/stars on macOS,
    $XDG_CACHE_HOME/stars (default ~/.cache/stars) elsewhere."""
    import sys

    if os.environ.get("STARS_CACHE_DIR"):
        return Path(os.environ["STARS_CACHE_DIR"])
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "stars" / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "stars"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stars"
