"""Package the QGIS plugin as a ZIP that "Install from ZIP" accepts, and install it into a QGIS
profile. Usage:
    python scripts/plugin.py package [--out dist/stars_qgis.zip]
    python scripts/plugin.py install [--zip dist/stars_qgis.zip] [--profile default]
The install target is $QGIS_CUSTOM_CONFIG_PATH (default ~/.local/share/QGIS/QGIS3)/profiles/<profile>/
python/plugins/stars_qgis; the plugin is enabled there and told where this environment's packages
(PyTorch) live, so QGIS and qgis_process find them.
"""
from __future__ import annotations

import argparse
import configparser
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "stars_qgis"
SKIP = {"__pycache__", ".pytest_cache"}


def _files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not SKIP & set(path.parts) and path.suffix not in (".pyc", ".stars"):
            yield path


def package(out: Path) -> Path:
    """dist/stars_qgis.zip: the plugin, the core it needs, resources and metadata in one folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for src, dest in ((ROOT / NAME, NAME), (ROOT / "stars_core", f"{NAME}/stars_core"),
                          (ROOT / "resources", f"{NAME}/resources")):
            for path in _files(src):
                z.write(path, f"{dest}/{path.relative_to(src).as_posix()}")
        z.write(ROOT / "metadata.txt", f"{NAME}/metadata.txt")
        z.write(ROOT / "LICENSE" if (ROOT / "LICENSE").exists() else ROOT / "README.md",
                f"{NAME}/{'LICENSE' if (ROOT / 'LICENSE').exists() else 'README.md'}")
    os.replace(tmp, out)
    return out


def config_root() -> Path:
    return Path(os.environ.get("QGIS_CUSTOM_CONFIG_PATH") or Path.home() / ".local/share/QGIS/QGIS3")


def install(zip_path: Path, profile: str = "default") -> Path:
    plugins = config_root() / "profiles" / profile / "python" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    target = plugins / NAME
    with tempfile.TemporaryDirectory(dir=plugins) as tmp:
        zipfile.ZipFile(zip_path).extractall(tmp)
        (Path(tmp) / NAME / "site-packages.txt").write_text(sysconfig.get_paths()["purelib"] + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(Path(tmp) / NAME, target)
    _enable(profile)
    return target


def _enable(profile: str) -> None:
    """Mark the plugin enabled in the profile's settings (what `qgis_process plugins enable` does)."""
    ini = config_root() / "profiles" / profile / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    cfg = configparser.RawConfigParser()
    cfg.optionxform = str
    if ini.exists():
        cfg.read(ini)
    if not cfg.has_section("PythonPlugins"):
        cfg.add_section("PythonPlugins")
    cfg.set("PythonPlugins", NAME, "true")
    with open(ini, "w") as f:
        cfg.write(f, space_around_delimiters=False)
    binary = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
    if binary and profile == "default":
        env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
                   QGIS_CUSTOM_CONFIG_PATH=str(config_root()))
        subprocess.run([binary, "plugins", "enable", NAME], env=env, capture_output=True, timeout=120)


def main() -> None:
    ap = argparse.ArgumentParser(description="package or install the STARS QGIS plugin")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("package")
    p.add_argument("--out", type=Path, default=ROOT / "dist" / f"{NAME}.zip")
    i = sub.add_parser("install")
    i.add_argument("--zip", type=Path, default=ROOT / "dist" / f"{NAME}.zip")
    i.add_argument("--profile", default="default")
    args = ap.parse_args()
    if args.cmd == "package":
        print(f"wrote {package(args.out)}")
    else:
        if not args.zip.exists():
            package(args.zip)
        target = install(args.zip, args.profile)
        print(f"installed and enabled {target}\n(PyTorch from {sysconfig.get_paths()['purelib']}); restart QGIS "
              f"or run: qgis_process.bin run stars:segmentmissingmodality -- INPUT=... MODEL=... OUTPUT=...")


if __name__ == "__main__":
    sys.exit(main())
