"""Finding the Python packages STARS needs (PyTorch above all) from inside QGIS.

QGIS's own Python rarely has PyTorch. When QGIS's Python lacks a required package, STARS puts in
front of QGIS's own folders, in this order, the folder named by the STARS_SITE_PACKAGES
environment variable, the folder written into `site-packages.txt` beside this file by `make
install-plugin`, and the site-packages of the default STARS environment
(~/.local/share/stars/venv, made with the command `install_command()` prints). From then on the
environment's copy of any package wins over QGIS's, except for modules QGIS has already imported
(numpy, usually). The environment must use the same Python version as QGIS.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

REQUIRED = ("numpy", "torch", "rasterio")  # training and .stars models
ONNX_REQUIRED = ("numpy", "onnxruntime", "rasterio")  # segmenting with an exported .onnx model
DEFAULT_VENV = Path.home() / ".local" / "share" / "stars" / "venv"


def _candidates() -> list[Path]:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    paths = []
    if os.environ.get("STARS_SITE_PACKAGES"):
        paths += [Path(p) for p in os.environ["STARS_SITE_PACKAGES"].split(os.pathsep) if p]
    pinned = Path(__file__).with_name("site-packages.txt")
    if pinned.is_file():
        paths += [Path(line.strip()) for line in pinned.read_text().splitlines() if line.strip()]
    paths += [DEFAULT_VENV / "lib" / version / "site-packages", DEFAULT_VENV / "Lib" / "site-packages"]
    profile = profile_dir()
    if profile is not None:  # where the in-QGIS installer puts them (stars_qgis/installer.py)
        from .installer import target_folder

        paths.insert(0, target_folder(profile))
    return paths


def profile_dir() -> Path | None:
    """The active QGIS profile folder (None outside QGIS)."""
    try:
        from qgis.core import QgsApplication

        folder = QgsApplication.qgisSettingsDirPath()
    except Exception:  # not inside QGIS
        return None
    return Path(folder) if folder else None


def missing(required: tuple[str, ...] = REQUIRED) -> list[str]:
    """Names of the required packages that cannot be imported, after adding the known folders."""
    absent = [m for m in required if importlib.util.find_spec(m) is None]
    if absent:
        # In front of QGIS's own folders: PyTorch needs its own versions of packages the system may
        # also have (Debian's sympy is too old for torch.optim, which imports torch._dynamo).
        for folder in reversed(_candidates()):
            if folder.is_dir() and str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
        importlib.invalidate_caches()
        absent = [m for m in required if importlib.util.find_spec(m) is None]
    return absent


def install_command() -> str:
    py = "python3" if os.name != "nt" else "python"
    return (f"{py} -m venv --system-site-packages {DEFAULT_VENV} && "
            f"{DEFAULT_VENV / ('Scripts' if os.name == 'nt' else 'bin') / 'pip'} install torch rasterio tqdm")


def explain(names: list[str]) -> str:
    only_onnx = "torch" not in names
    return (
        f"STARS needs the Python package(s) {', '.join(names)}, which QGIS's Python "
        f"({sys.version.split()[0]}, {sys.executable}) cannot import. Without a terminal: run "
        f"Processing > STARS > 'Install dependencies' (stars:installdependencies"
        f"{', package set: ONNX Runtime only' if only_onnx else ''}), which installs them into this QGIS "
        f"profile. With a terminal: {install_command()} (the Python that QGIS uses, version "
        f"{sys.version_info.major}.{sys.version_info.minor}), or set STARS_SITE_PACKAGES to the site-packages "
        f"folder of an environment that has them."
    )
