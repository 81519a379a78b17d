"""Installing STARS's Python dependencies from inside QGIS, without a terminal.

Everything goes into a private folder of the QGIS profile (`<profile>/python/stars-packages/
py3.X`), never into the system Python and never over QGIS's own packages: pip runs from the Python
QGIS uses, with `--target` into a temporary folder that replaces the private folder only when pip
succeeded (a cancel or a failure leaves nothing half-installed). numpy is held at QGIS's own version
(constraint), so nothing built against it breaks. pip reads the user's own configuration (pip.conf,
PIP_INDEX_URL, PIP_FIND_LINKS, proxies, constraints): a company mirror or a local wheel folder
works as it does on the command line.

What is installed: PyTorch (the CUDA build where an NVIDIA driver answers, else the CPU build; the
user can choose) plus onnxruntime, onnx, OpenVINO (the fast CPU engine for exported graphs), rasterio,
tqdm, and pystac-client and planetary-computer (the fetch algorithms' STAC search and URL signing,
pure Python, pinned as the `fetch` extra pins them; left out, said in a line, where pip finds no
version for this Python: pystac-client 0.9.1 needs 3.10); or, for machines that only segment exported .onnx models, onnxruntime, OpenVINO and
rasterio alone. This module imports no QGIS: the Processing algorithm
`stars:installdependencies` and the plugin menu action call it; tests run it directly.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

SUPPORTED_PYTHON = ((3, 9), (3, 13))  # the range PyTorch and ONNX Runtime wheels cover
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
FETCH = ("pystac-client==0.9.1", "planetary-computer==1.0.0")  # as pyproject.toml's `fetch` extra pins them
SETS = {
    "full": ("torch", "onnxruntime", "onnx", "openvino", "rasterio", "tqdm",  # train, export, segment
             *FETCH),  # the fetch algorithms' search and URL signing
    "onnx": ("onnxruntime", "openvino", "rasterio"),  # segment exported .onnx models only
}


# What the rest works without: installed where pip finds them, else left out with a line saying so.
# pystac-client 0.9.1 requires Python 3.10 or later (its Requires-Python), so on a QGIS with Python 3.9
# the fetch packages are left out and everything else is installed.
OPTIONAL = {"openvino": "the fast engine for exported graphs is missing: segmentation runs its int8 exports in "
                        "ONNX Runtime, about 1.1-1.5x slower",
            **{name: "the fetch algorithms' packages are left out (pystac-client 0.9.1 needs Python 3.10 or later): "
                     "\"Get Sentinel-1 and Sentinel-2 for an area\" and \"Get a Sentinel-1 series\" will say so; "
                     "everything else works" for name in FETCH}}
TOGETHER = (FETCH,)  # left out together: planetary-computer alone would pull another pystac-client


class InstallError(Exception):
    """The installation failed; the message says why in one line and what to do."""


class InstallCancelled(Exception):
    """The user cancelled; nothing was installed."""


def target_folder(profile_dir: str | os.PathLike) -> Path:
    """The private packages folder of a QGIS profile, per Python version."""
    return Path(profile_dir) / "python" / "stars-packages" / f"py{sys.version_info.major}.{sys.version_info.minor}"


def python_executable() -> str:
    """The Python interpreter behind this QGIS (inside QGIS, sys.executable is QGIS itself)."""
    candidates = [sys.executable, getattr(sys, "_base_executable", ""),
                  os.path.join(sys.exec_prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}"),
                  os.path.join(sys.exec_prefix, "bin", "python3"), os.path.join(sys.exec_prefix, "python.exe"),
                  os.path.join(sys.exec_prefix, "python3.exe")]
    for path in candidates:
        if path and os.path.isfile(path) and re.search(r"python[\d.]*(\.exe)?$", os.path.basename(path), re.I):
            return path
    raise InstallError(f"cannot find the Python interpreter of this QGIS (looked in {sys.exec_prefix}); install "
                       f"the packages by hand (see the documentation's Installing page) or set STARS_SITE_PACKAGES")


def nvidia_driver_present(run=subprocess.run) -> bool:
    """True when `nvidia-smi` answers: an NVIDIA driver is installed, so the CUDA build of PyTorch fits."""
    try:
        return run(["nvidia-smi", "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def user_sets_index(environ=os.environ, run=subprocess.run, python: str | None = None) -> bool:
    """Whether the user's pip configuration names its own index or wheel folder (then STARS adds
    no index of its own)."""
    if any(environ.get(k) for k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX")):
        return True
    try:
        out = run([python or python_executable(), "-m", "pip", "config", "list"], capture_output=True, text=True,
                  timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired, InstallError):
        return False
    return bool(re.search(r"(index-url|find-links|no-index)", out))


@dataclass
class Plan:
    """What one installation does."""

    packages: tuple[str, ...]
    build: str  # "cpu", "cuda" or "none" (no PyTorch)
    target: Path
    pip_args: list[str] = field(default_factory=list)

    def describe(self) -> str:
        cuda = "PyTorch (CUDA build)" if sys.platform.startswith("linux") else \
            "PyTorch (the build pip's index has for this platform; PyPI's Windows and macOS wheels are CPU-only)"
        torch = {"cpu": "PyTorch (CPU build)", "cuda": cuda, "none": "no PyTorch"}[self.build]
        return f"{torch}; packages {', '.join(self.packages)} into {self.target}"


IMPORT_NAMES = {"pystac-client==0.9.1": "pystac_client", "planetary-computer==1.0.0": "planetary_computer"}


def importable(name: str) -> bool:
    """Whether the package a set names (by its pip requirement) can be imported already."""
    import importlib.util

    return importlib.util.find_spec(IMPORT_NAMES.get(name, name)) is not None


def plan(profile_dir: str | os.PathLike, what: str = "full", build: str = "auto", extra_args: list[str] | None = None,
         gpu_probe: Callable[[], bool] = nvidia_driver_present, index_probe: Callable[[], bool] = user_sets_index,
         version: tuple[int, int] = sys.version_info[:2], importable: Callable[[str], bool] = importable) -> Plan:
    """The installation for this machine: the PyTorch build (auto: CUDA where an NVIDIA driver
    answers, else CPU) and pip's arguments."""
    lo, hi = SUPPORTED_PYTHON
    if not lo <= tuple(version) <= hi:
        raise InstallError(f"QGIS uses Python {version[0]}.{version[1]}; PyTorch and ONNX Runtime wheels exist for "
                           f"Python {lo[0]}.{lo[1]} to {hi[0]}.{hi[1]}: use a QGIS built with one of those")
    if what not in SETS:
        raise InstallError(f"unknown package set {what!r}; choose {', '.join(SETS)}")
    if build not in ("auto", "cpu", "cuda"):
        raise InstallError(f"PyTorch build must be auto, cpu or cuda, got {build!r}")
    # Only what QGIS's Python lacks: a second rasterio (with its own GDAL) beside QGIS's is avoided.
    packages = tuple(p for p in SETS[what] if p == "torch" and build != "auto"
                     or not importable(IMPORT_NAMES.get(p, p)))
    if not packages:
        raise InstallError("everything STARS needs is already importable in QGIS's Python; nothing to install")
    args = list(extra_args or [])
    chosen = "none"
    if "torch" in packages:
        chosen, spec, args = torch_source(build, args, gpu_probe, index_probe)
        packages = tuple(spec if p == "torch" else p for p in packages)
    return Plan(packages, chosen, target_folder(profile_dir), args)


def torch_source(build: str = "auto", args: list[str] | None = None,
                 gpu_probe: Callable[[], bool] = nvidia_driver_present,
                 index_probe: Callable[[], bool] = user_sets_index, spec: str = "torch") -> tuple[str, str, list[str]]:
    """Which PyTorch build to install and from where, the one rule of the in-QGIS installer and of
    `make setup`: (build, requirement, pip arguments). auto is CUDA where an NVIDIA driver answers,
    else CPU; a wheel of that build in the user's wheel folders is taken as it is; otherwise the CPU
    build comes from PyTorch's CPU index (PyPI's Linux torch is the CUDA build, several GB), unless
    the user's pip configuration names an index of its own."""
    if build not in ("auto", "cpu", "cuda"):
        raise InstallError(f"PyTorch build must be auto, cpu or cuda, got {build!r}")
    chosen = build if build != "auto" else ("cuda" if gpu_probe() else "cpu")
    args = list(args or [])
    local = local_torch_wheel(find_links(args), chosen)
    if local is not None:  # a wheel of the right build in the user's wheel folder: that one
        return chosen, f"torch=={local}", args
    if chosen == "cpu" and sys.platform != "darwin" and not index_probe():
        args += ["--extra-index-url", PYTORCH_CPU_INDEX]
    return chosen, spec, args




def find_links(args: list[str], environ=os.environ) -> list[Path]:
    """Local wheel folders pip will look in: --find-links arguments and PIP_FIND_LINKS."""
    folders = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--find-links", "-f")]
    folders += [a.split("=", 1)[1] for a in args if a.startswith("--find-links=")]
    folders += environ.get("PIP_FIND_LINKS", "").split()
    return [Path(f.removeprefix("file://")) for f in folders if f and not f.startswith("http")]


def local_torch_wheel(folders: list[Path], build: str) -> str | None:
    """The highest version of a torch wheel for this Python in the folders, of the asked build
    (`+cpu` local versions for the CPU build, others for CUDA), or None."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    found = []
    for folder in folders:
        for wheel in folder.glob(f"torch-*-{tag}-*.whl") if folder.is_dir() else []:
            version = wheel.name.split("-")[1]
            if ("+cpu" in version) == (build == "cpu"):
                found.append(version)
    if not found:
        return None

    def key(v: str):
        return tuple(int(x) if x.isdigit() else 0 for x in re.split(r"[.+]", v.split("+")[0]))

    return max(found, key=key)


def qgis_numpy_constraint() -> str | None:
    """`numpy==X` for the numpy QGIS itself uses (never replaced), or None without numpy."""
    try:
        import numpy
    except ImportError:
        return None
    return f"numpy=={numpy.__version__}"


def install(p: Plan, progress: Callable[[str], None] = print, cancel: Callable[[], bool] | None = None,
            python: str | None = None) -> Path:
    """Run pip for `p` into a temporary folder beside the target, then swap it in. Returns the
    target. Raises InstallError (one line: the cause and the fix) or InstallCancelled."""
    python = python or python_executable()
    if subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        raise InstallError(f"the Python of this QGIS ({python}) has no pip: install it (Debian/Ubuntu: apt install "
                           f"python3-pip; elsewhere: {python} -m ensurepip --user), then run this again")
    try:
        p.target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{p.target.name}.installing-", dir=p.target.parent))
    except OSError as exc:
        raise InstallError(f"cannot write the packages folder {p.target.parent} ({exc.strerror}): give your user "
                           f"write access to the QGIS profile folder, or start QGIS with a profile you own") from None
    try:
        constraint = qgis_numpy_constraint()
        cmd = [python, "-m", "pip", "install", "--target", str(staging), "--no-warn-script-location",
               "--disable-pip-version-check", "--progress-bar", "off", *p.pip_args]
        if constraint:
            constraints = staging.parent / f"{staging.name}.constraints.txt"
            constraints.write_text(constraint + "\n")
            cmd += ["-c", str(constraints)]
        progress(f"installing {p.describe()}")
        try:
            _run_pip(cmd + list(p.packages), progress, cancel)
        except InstallError as exc:
            optional = [q for q in p.packages if q in OPTIONAL and _no_distribution(str(exc), q)]
            if not optional:
                raise
            optional += [q for group in TOGETHER if set(group) & set(optional) for q in group
                         if q in p.packages and q not in optional]
            for q in optional:
                progress(f"{q} is not available from pip's index here ({OPTIONAL[q]}); installing the rest")
            _run_pip(cmd + [q for q in p.packages if q not in optional], progress, cancel)
        _drop_qgis_packages(staging, constraint)
        _swap_in(staging, p.target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        for leftover in p.target.parent.glob(f"{staging.name}.constraints.txt"):
            leftover.unlink(missing_ok=True)
    versions = _installed_versions(p.target)
    progress("installed: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if k in
                                       ("torch", "onnxruntime", "rasterio", "numpy", "tqdm")))
    return p.target


def pip_arguments(text: str | None) -> list[str]:
    """The "Extra pip arguments" field split as a shell would, or one line naming the field."""
    import shlex

    try:
        if os.name != "nt":
            return shlex.split(text or "")
        # Windows: backslashes are path separators, not escapes; quotes only group
        return [a[1:-1] if len(a) > 1 and a[0] == a[-1] and a[0] in "\"'" else a
                for a in shlex.split(text or "", posix=False)]
    except ValueError as exc:
        raise InstallError(f"Extra pip arguments: {exc} in {text!r}; close the quote or remove it") from None


def _run_pip(cmd: list[str], progress: Callable[[str], None], cancel) -> list[str]:
    # pip in a process group of its own: a cancel stops pip and whatever it started (a build backend
    # compiling a package), not pip alone.
    group = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else {"start_new_session": True}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, **group)
    lines: list[str] = []
    watcher = None
    if cancel is not None:
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.2):
                if cancel():
                    _kill_group(proc)
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
    for line in proc.stdout:
        line = line.rstrip()
        lines.append(line)
        if line.startswith(("Collecting", "Downloading", "Installing", "Successfully", "Looking in", "Processing")):
            progress(line)
    code = proc.wait()
    if watcher is not None:
        stop.set()
    if cancel is not None and cancel():
        raise InstallCancelled("installation cancelled; nothing was installed")
    if code != 0:
        raise InstallError(explain_failure(lines))
    return lines


def _no_distribution(message: str, package: str) -> bool:
    return bool(re.search(rf"(No matching distribution found|Could not find a version that satisfies the "
                          rf"requirement) (for )?{re.escape(package)}\b", message, re.I))


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop a process and every process it started."""
    if os.name == "nt":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True)
    else:
        import signal

        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.kill()


def explain_failure(lines: list[str]) -> str:
    """One line naming the cause of a failed pip run and what to do, from its output."""
    text = "\n".join(lines)
    tail = next((l.strip() for l in reversed(lines) if l.strip().startswith("ERROR")), lines[-1] if lines else "")
    if re.search(r"No space left on device|Errno 28", text):
        return "the disk is full: free some space (PyTorch needs about 1 GB, its CUDA build several) and try again"
    if re.search(r"Failed to establish a new connection|Temporary failure in name resolution|Could not fetch URL|"
                 r"Network is unreachable|ProxyError|timed out|Max retries exceeded", text):
        return ("the package index cannot be reached (no network, or a proxy or firewall in the way): connect, set "
                "your proxy in pip's configuration, or point pip at a local wheel folder (PIP_FIND_LINKS) and try again")
    if re.search(r"No matching distribution found|Could not find a version that satisfies", text):
        return (f"pip found no suitable package ({tail}): the index or wheel folder in pip's configuration lacks it "
                f"for Python {sys.version_info.major}.{sys.version_info.minor} on this platform")
    return f"pip failed: {tail or 'see the log above'}"


def _drop_qgis_packages(staging: Path, constraint: str | None) -> None:
    """numpy stays QGIS's own: remove any copy pip put in the private folder (it came in only as a
    dependency and must not shadow the one QGIS's extensions are built against)."""
    if constraint is None:
        return
    for path in list(staging.glob("numpy")) + list(staging.glob("numpy-*.dist-info")) + list(staging.glob("numpy.libs")):
        shutil.rmtree(path, ignore_errors=True)


def _project(name: str) -> str:
    return re.split(r"-\d", name, maxsplit=1)[0].lower().replace("_", "-")


def _swap_in(staging: Path, target: Path) -> None:
    """Replace the private folder by the staging one, keeping what an earlier installation put there
    and this one did not reinstall (new versions win). Any move that fails (Windows: a library in
    use) is undone: the earlier folder is left exactly as it was, and the error says so."""
    moved: list[str] = []  # kept items, moved from the old folder into staging
    old = None
    try:
        if target.exists():
            fresh = {_project(p.name) for p in staging.glob("*.dist-info")} | {p.name for p in staging.iterdir()}
            for item in sorted(target.iterdir()):
                project = _project(item.name) if item.name.endswith(".dist-info") else item.name
                if project not in fresh and item.name not in fresh and not item.name.startswith("."):
                    os.replace(item, staging / item.name)
                    moved.append(item.name)
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(staging, target)
    except OSError as exc:
        _undo_swap(staging, target, old, moved)
        raise InstallError(f"the private packages folder is in use ({exc.strerror}): nothing was changed; restart "
                           f"QGIS, then run the installer again before using STARS") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _undo_swap(staging: Path, target: Path, old: Path | None, moved: list[str]) -> None:
    """Put the earlier folder back as it was: its own name, and the kept items moved back."""
    if old is not None and old.exists() and not target.exists():
        os.replace(old, target)
    for name in reversed(moved):
        if (staging / name).exists():
            os.replace(staging / name, target / name)


def _installed_versions(folder: Path) -> dict[str, str]:
    versions = {}
    for info in folder.glob("*.dist-info"):
        m = re.match(r"(.+?)-(\d[^-]*)\.dist-info$", info.name)
        if m:
            versions[m.group(1).lower().replace("_", "-")] = m.group(2)
    return versions


def activate(folder: Path) -> str:
    """Put `folder` in front of sys.path so the algorithms work without restarting QGIS; returns a
    line saying whether a restart is still needed (a package imported before cannot be replaced)."""
    import importlib

    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    stale = [m for m in ("torch", "onnxruntime", "rasterio") if m in sys.modules
             and not str(getattr(sys.modules[m], "__file__", "") or "").startswith(str(folder))]
    if stale:
        return f"installed; restart QGIS to use them ({', '.join(stale)} were already loaded from elsewhere)"
    return "installed; the STARS algorithms can use them now, no restart needed"


def main(argv: list[str] | None = None) -> int:
    """`python stars_qgis/installer.py torch-args [SPEC]`, for scripts/setup.sh: prints the build
    (cpu or cuda) on the first line, then pip's arguments for installing SPEC (default torch) by
    `torch_source`'s rule, one per line. STARS_TORCH_BUILD=cpu|cuda overrides auto."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "torch-args":
        print("usage: installer.py torch-args [SPEC]", file=sys.stderr)
        return 2
    asked = argv[1] if len(argv) > 1 else "torch"
    try:
        build, local, args = torch_source(os.environ.get("STARS_TORCH_BUILD", "auto"), spec=asked)
    except InstallError as exc:
        print(f"setup: {exc}", file=sys.stderr)
        return 2
    # the asked version stays the requirement: a local wheel of that build and version is found by pip
    # in the wheel folder itself, and one of another version must not replace the pin
    print(build)
    print("\n".join([*args, asked]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
