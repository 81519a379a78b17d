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


MAX_MB = 10  # the plugin repository's limit is 25 MB; ours is far below


def build_site(out: Path) -> Path:
    """The documentation site (mkdocs.yml, strict), which the algorithms' Help buttons open offline."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(out)], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit("package refused: the documentation site does not build (make docs says why):\n"
                         + (done.stderr or done.stdout)[-2000:])
    return out


def check(zip_path: Path) -> list[str]:
    """What the QGIS plugin repository's usual checks would object to (empty when fine)."""
    problems = []
    with zipfile.ZipFile(zip_path) as z:
        names = z.namelist()
    tops = {n.split("/")[0] for n in names}
    if tops != {NAME}:
        problems.append(f"the ZIP must hold one folder {NAME}/, found {sorted(tops)}")
    for required in ("metadata.txt", "__init__.py", "LICENSE"):
        if f"{NAME}/{required}" not in names:
            problems.append(f"{required} missing")
    compiled = [n for n in names if n.endswith((".pyc", ".pyo", ".so")) or "__pycache__" in n]
    if compiled:
        problems.append(f"compiled files: {compiled[:3]}")
    tests = [n for n in names if "/tests/" in n or n.split("/")[-1].startswith("test_")]
    if tests:
        problems.append(f"test files: {tests[:3]}")
    if zip_path.stat().st_size > MAX_MB * 2**20:
        problems.append(f"{zip_path.stat().st_size / 2**20:.1f} MB is more than {MAX_MB} MB")
    meta = configparser.RawConfigParser()
    with zipfile.ZipFile(zip_path) as z:
        meta.read_string(z.read(f"{NAME}/metadata.txt").decode())
    needed = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository",
              "tracker", "homepage", "icon", "tags", "changelog", "experimental")
    lacking = [k for k in needed if not meta.has_option("general", k)]
    if lacking:
        problems.append(f"metadata.txt lacks {', '.join(lacking)}")
    return problems


def package(out: Path) -> Path:
    """dist/stars_qgis.zip: the plugin, the core it needs, resources, licence, metadata and the help site."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tempfile.TemporaryDirectory() as site:
        build_site(Path(site))
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for src, dest in ((ROOT / NAME, NAME), (ROOT / "stars_core", f"{NAME}/stars_core"),
                              (ROOT / "resources", f"{NAME}/resources"), (Path(site), f"{NAME}/help")):
                for path in _files(src):
                    z.write(path, f"{dest}/{path.relative_to(src).as_posix()}")
            z.write(ROOT / "metadata.txt", f"{NAME}/metadata.txt")
            z.write(ROOT / "LICENSE", f"{NAME}/LICENSE")
    problems = check(tmp)
    if problems:
        tmp.unlink()
        raise SystemExit("package refused: " + "; ".join(problems))
    os.replace(tmp, out)
    return out


def config_root() -> Path:
    return Path(os.environ.get("QGIS_CUSTOM_CONFIG_PATH") or Path.home() / ".local/share/QGIS/QGIS3")


def install(zip_path: Path, profile: str = "default", pin: bool = True) -> Path:
    plugins = config_root() / "profiles" / profile / "python" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    target = plugins / NAME
    with tempfile.TemporaryDirectory(dir=plugins) as tmp:
        zipfile.ZipFile(zip_path).extractall(tmp)
        if pin:  # tell the plugin where this environment's packages (PyTorch) live
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
    i.add_argument("--no-pin", action="store_true", help="do not point the plugin at this environment's packages "
                   "(as a user installing the ZIP: the in-QGIS installer provides them)")
    args = ap.parse_args()
    if args.cmd == "package":
        print(f"wrote {package(args.out)}")
    else:
        if not args.zip.exists():
            package(args.zip)
        target = install(args.zip, args.profile, pin=not args.no_pin)
        print(f"installed and enabled {target}\n(PyTorch from {sysconfig.get_paths()['purelib']}); restart QGIS "
              f"or run: qgis_process.bin run stars:segmentmissingmodality -- INPUT=... MODEL=... OUTPUT=...")


if __name__ == "__main__":
    sys.exit(main())
