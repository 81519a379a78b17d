"""Fetching a named weights file into the cache, once.

The cache is `files.user_cache_dir()/weights` (XDG on Linux, the platform's cache folder elsewhere,
the QGIS profile inside QGIS, or $STARS_CACHE_DIR). A file in the cache is never fetched again. A
download goes to `<file>.partial` and resumes from there (an HTTP Range request) after an
interruption; the SHA-256 prefix its publisher put in the file name is checked on the whole file
(as torch.hub does), and only a file that matches is renamed into place, atomically. A mismatch
deletes the partial file and caches nothing. A file found in the cache (put there by hand, or cut
short by a full disk) is checked the same way once, before it is trusted; a note beside it
(`<file>.checked`: its size, time and digest) remembers the check, and a file that fails it is
removed and fetched again. A weights file anywhere else is recognised by its digest, so a path to a
downloaded registry file keeps its registry entry (band names, licence). $STARS_WEIGHTS_MIRROR (a
base URL) fetches every file by its name from a mirror instead of its publisher: an institute's
copy, or a test's server.
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from ..files import user_cache_dir
from ..errors import InputError
from .registry import REGISTRY, WeightsEntry

CHUNK = 1 << 20
TIMEOUT = 30  # seconds without data before a download counts as interrupted


def weights_dir() -> Path:
    return user_cache_dir() / "weights"


def cached(entry: WeightsEntry) -> Path | None:
    """The cached file of `entry` if it is there and its digest matches (checked once, remembered)."""
    path = weights_dir() / entry.filename
    return path if path.is_file() and file_digest(path).startswith(entry.hash_prefix) else None


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, remembered in `<file>.checked` beside it (where writable) for as long as
    its size and modification time stay the same."""
    from ..files import sha256

    path = Path(path)
    st = path.stat()
    stamp = f"{st.st_size} {st.st_mtime_ns}"
    note = path.with_name(path.name + ".checked")
    try:
        size_time, digest = note.read_text().strip().rsplit(" ", 1)
        if size_time == stamp:
            return digest
    except (OSError, ValueError):
        pass
    digest = sha256(path)
    try:
        note.write_text(f"{stamp} {digest}\n")
    except OSError:  # a read-only folder: checked again next time
        pass
    return digest


def entry_of(path: str | os.PathLike) -> WeightsEntry | None:
    """The registry entry whose file `path` is, recognised by its SHA-256 (wherever it lies), or None
    for any other file."""
    digest = file_digest(path)
    return next((e for e in REGISTRY.values() if e.hash_prefix and digest.startswith(e.hash_prefix)), None)


def source_url(entry: WeightsEntry) -> str:
    mirror = os.environ.get("STARS_WEIGHTS_MIRROR", "").strip()
    if mirror and not mirror.lower().startswith(("http://", "https://", "file://")):
        raise InputError(f"STARS_WEIGHTS_MIRROR={mirror!r} is not a URL: give the mirror's base URL with its scheme, "
                         f"e.g. http://{mirror.split('://')[-1]}, or unset it to fetch from the publisher")
    return f"{mirror.rstrip('/')}/{entry.filename}" if mirror else entry.url


def fetch(entry: WeightsEntry, progress: Callable[[int, int | None], None] | None = None,
          log: Callable[[str], None] = print) -> Path:
    """The cached file of `entry`, downloaded first if it is not there yet."""
    target = weights_dir() / entry.filename
    if target.is_file():
        if cached(entry) is not None:
            return target
        log(f"{target} does not match the SHA-256 {entry.hash_prefix} its publisher names (cut short or changed): "
            f"removed, fetching it again")
        target.unlink()
        target.with_name(target.name + ".checked").unlink(missing_ok=True)
    if not entry.hash_prefix:
        raise InputError(f"the registry entry {entry.name} names no hash; it cannot be checked, so it is not fetched")
    url = source_url(entry)
    partial = target.with_name(target.name + ".partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(target.parent, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise InputError(f"the weights cache {target.parent} cannot be written ({exc.strerror or exc}); set "
                         f"STARS_CACHE_DIR to a writable folder") from None
    have = partial.stat().st_size if partial.is_file() else 0
    log(f"downloading {entry.name} from {url}" + (f" (resuming after {have / 1e6:.1f} MB)" if have else ""))
    try:
        response = _open(url, have)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is not a prefix of this file: start again
            partial.unlink()
            return fetch(entry, progress, log)
        raise InputError(_offline(entry, target, f"HTTP {exc.code} {exc.reason}")) from None
    except (urllib.error.URLError, OSError) as exc:
        raise InputError(_offline(entry, target, str(getattr(exc, "reason", exc)))) from None
    digest = hashlib.sha256()
    with response:
        if have and response.status != 206:  # the server sent the whole file: start again
            have = 0
        if have:
            with open(partial, "rb") as f:
                for block in iter(lambda: f.read(CHUNK), b""):
                    digest.update(block)
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        done = have
        try:
            out = open(partial, "ab" if have else "wb")
        except OSError as exc:
            raise InputError(_unwritable(target, exc)) from None
        with out:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, ValueError) as exc:  # timeouts, resets, a short read
                    raise InputError(f"the download of {entry.name} stopped after {done / 1e6:.1f} MB ({exc}); run the "
                                     f"same command again to resume it") from None
                if not block:
                    break
                try:
                    out.write(block)
                except OSError as exc:
                    raise InputError(_unwritable(target, exc)) from None
                digest.update(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
    if total is not None and done < total:
        raise InputError(f"the download of {entry.name} stopped after {done / 1e6:.1f} of {total / 1e6:.1f} MB; run "
                         f"the same command again to resume it")
    hexdigest = digest.hexdigest()
    if not hexdigest.startswith(entry.hash_prefix):
        partial.unlink(missing_ok=True)
        raise InputError(f"{entry.filename} from {url} has SHA-256 {hexdigest[:16]}..., not the {entry.hash_prefix} its "
                         f"publisher names: refused, nothing was cached (a changed or damaged file)")
    os.replace(partial, target)
    file_digest(target)  # the check is remembered
    log(f"{entry.name}: {done / 1e6:.1f} MB, SHA-256 checked, cached at {target}")
    return target


def _open(url: str, have: int):
    headers = {"User-Agent": "stars-toolbox"}
    if have:
        headers["Range"] = f"bytes={have}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)


def _offline(entry: WeightsEntry, target: Path, reason: str) -> str:
    return (f"cannot download {entry.name} ({reason}). Where there is internet, download {entry.url} and put it at "
            f"{target}, or give the downloaded file's path instead of the name (it is recognised by its SHA-256)")


def _unwritable(target: Path, exc: OSError) -> str:
    return (f"cannot write {target.name} into the weights cache {target.parent} ({exc.strerror or exc}); free some "
            f"space or set STARS_CACHE_DIR to another folder (the partial download resumes from there)")


def resolve(value: str | os.PathLike, progress=None, log: Callable[[str], None] = print) -> tuple[Path, str | None]:
    """A `--pretrained*` value: an existing file, or a registry name (fetched when not cached).
    Returns (path, registry name or None)."""
    path = Path(value)
    if path.is_file():
        found = entry_of(path)
        return path, None if found is None else found.name
    found = REGISTRY.get(str(value).strip().lower())
    if found is None:
        names = ", ".join(REGISTRY)
        raise InputError(f"pretrained weights {os.fspath(value)!r}: no such file, and not a registry name ({names}; "
                         f"`stars weights list` describes them)")
    return fetch(found, progress, log), found.name
