"""The in-QGIS dependency installer (stars_qgis/installer.py): plans, a real pip run from a local
wheel folder into a temporary profile, cancel and failures. No network: a tiny wheel is built here."""
import base64
import hashlib
import sys
import zipfile
from pathlib import Path

import pytest

from stars_qgis import deps, installer
from stars_qgis.installer import InstallCancelled, InstallError, Plan


def tiny_wheel(folder: Path, name: str = "starstiny", version: str = "1.0") -> Path:
    """A minimal pure-Python wheel (PEP 427), written by hand so the test needs no build tools."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n",
             f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{name}-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                  "Tag: py3-none-any\n"}
    record = []
    for arc, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{arc},sha256={digest},{len(text.encode())}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    files[f"{name}-{version}.dist-info/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(path, "w") as z:
        for arc, text in files.items():
            z.writestr(arc, text)
    return path


def _plan(tmp_path, wheels, packages=("starstiny",)):
    return Plan(packages, "none", installer.target_folder(tmp_path / "profile"),
                ["--no-index", "--find-links", str(wheels)])


def test_the_build_follows_the_driver_probe_and_the_users_index(monkeypatch):
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)  # no local wheel folder here
    args = dict(importable=lambda name: False, index_probe=lambda: False)
    cpu = installer.plan("/p", gpu_probe=lambda: False, **args)
    assert cpu.build == "cpu" and "torch" in cpu.packages
    if sys.platform != "darwin":
        assert cpu.pip_args == ["--extra-index-url", installer.PYTORCH_CPU_INDEX]
    assert installer.plan("/p", gpu_probe=lambda: True, **args).build == "cuda"
    assert installer.plan("/p", build="cpu", gpu_probe=lambda: True, **args).build == "cpu"  # the user's choice wins
    mirror = installer.plan("/p", gpu_probe=lambda: False, importable=lambda n: False, index_probe=lambda: True)
    assert mirror.pip_args == []  # the user's own index or wheel folder, untouched
    onnx = installer.plan("/p", "onnx", importable=lambda name: name == "rasterio", index_probe=lambda: False)
    assert onnx.packages == ("onnxruntime", "openvino") and onnx.build == "none"  # QGIS's rasterio is kept
    assert str(onnx.target).endswith(f"stars-packages/py{sys.version_info.major}.{sys.version_info.minor}")


def test_unsupported_python_and_nothing_to_do_are_explained():
    with pytest.raises(InstallError, match="QGIS uses Python 3.8; .* Python 3.9 to 3.13"):
        installer.plan("/p", version=(3, 8))
    with pytest.raises(InstallError, match="already importable"):
        installer.plan("/p", "onnx", importable=lambda name: True)


def test_installs_from_a_local_wheel_folder_into_the_profile_and_the_finder_finds_it(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    tiny_wheel(wheels)
    lines = []
    target = installer.install(_plan(tmp_path, wheels), progress=lines.append, python=sys.executable)
    assert (target / "starstiny" / "__init__.py").is_file()
    assert any("installing" in l for l in lines) and not list(target.parent.glob(".*"))  # no staging left
    monkeypatch.setattr(deps, "profile_dir", lambda: tmp_path / "profile")
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert deps.missing(("starstiny",)) == []  # found in the private folder, no restart
    import starstiny

    assert starstiny.VERSION == "1.0"
    # a second installation replaces the first as a whole
    tiny_wheel(wheels, version="2.0")
    (wheels / "starstiny-1.0-py3-none-any.whl").unlink()
    installer.install(_plan(tmp_path, wheels), progress=lambda *_: None, python=sys.executable)
    assert "2.0" in (target / "starstiny" / "__init__.py").read_text()


def test_cancel_leaves_nothing(tmp_path):
    wheels = tmp_path / "wheels"
    tiny_wheel(wheels)
    with pytest.raises(InstallCancelled):
        installer.install(_plan(tmp_path, wheels), progress=lambda *_: None, cancel=lambda: True, python=sys.executable)
    folder = installer.target_folder(tmp_path / "profile")
    assert not folder.exists() and list(folder.parent.iterdir()) == []


def test_a_failing_pip_gives_one_line(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with pytest.raises(InstallError, match="pip found no suitable package") as err:
        installer.install(_plan(tmp_path, wheels, ("no-such-package-stars",)), progress=lambda *_: None,
                          python=sys.executable)
    assert "\n" not in str(err.value)
    assert not installer.target_folder(tmp_path / "profile").exists()


@pytest.mark.parametrize("line,cause", [
    ("WARNING: Retrying ... Failed to establish a new connection: [Errno 111]", "cannot be reached"),
    ("ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device", "disk is full"),
    ("ERROR: something else went wrong", "pip failed: ERROR: something else went wrong"),
])
def test_failures_are_named(line, cause):
    assert cause in installer.explain_failure(["Collecting torch", line])


def test_no_pip_is_explained(tmp_path):
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(InstallError, match="has no pip: install it"):
        installer.install(_plan(tmp_path, tmp_path), progress=lambda *_: None, python=str(fake))


def test_the_driver_probe_reads_nvidia_smi():
    class Done:
        def __init__(self, code):
            self.returncode = code

    assert installer.nvidia_driver_present(lambda *a, **k: Done(0)) is True
    assert installer.nvidia_driver_present(lambda *a, **k: Done(9)) is False

    def absent(*a, **k):
        raise FileNotFoundError("nvidia-smi")

    assert installer.nvidia_driver_present(absent) is False


def test_a_local_wheel_of_the_asked_build_is_pinned(tmp_path, monkeypatch):
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for name in (f"torch-2.13.0+cpu-{tag}-{tag}-manylinux_2_28_x86_64.whl", f"torch-2.12.0+cpu-{tag}-{tag}-x.whl",
                 f"torch-2.14.0-{tag}-{tag}-manylinux_2_28_x86_64.whl"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    args = dict(importable=lambda name: False, index_probe=lambda: True)
    assert "torch==2.13.0+cpu" in installer.plan("/p", build="cpu", **args).packages
    assert "torch==2.14.0" in installer.plan("/p", build="cuda", **args).packages
    monkeypatch.delenv("PIP_FIND_LINKS")
    assert "torch" in installer.plan("/p", build="cpu", extra_args=["--find-links", str(tmp_path / "none")],
                                     **args).packages


def test_a_second_installation_keeps_what_the_first_put_there(tmp_path):
    wheels = tmp_path / "wheels"
    tiny_wheel(wheels, "starsalpha")
    tiny_wheel(wheels, "starsbeta")
    installer.install(_plan(tmp_path, wheels, ("starsalpha",)), progress=lambda *_: None, python=sys.executable)
    target = installer.install(_plan(tmp_path, wheels, ("starsbeta",)), progress=lambda *_: None,
                               python=sys.executable)
    assert (target / "starsalpha" / "__init__.py").is_file() and (target / "starsbeta" / "__init__.py").is_file()
    assert len(list(target.glob("starsalpha-*.dist-info"))) == 1


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A real pip installation of four small packages and of the one a second installation adds,
    made once; each case below copies it."""
    root = tmp_path_factory.mktemp("installed")
    wheels = root / "wheels"
    names = [f"starsold{i}" for i in range(4)] + ["starsnew"]
    for name in names:
        tiny_wheel(wheels, name)
    return installer.install(_plan(root, wheels, names), progress=lambda *_: None, python=sys.executable)


@pytest.mark.parametrize("position", range(10))
def test_a_swap_that_fails_at_any_move_leaves_the_earlier_folder_exactly_as_it_was(tmp_path, monkeypatch, installed,
                                                                                     position):
    """On Windows a DLL in use cannot be moved: wherever the swap stops, nothing of the earlier
    installation is lost (reproduced on Linux by refusing the n-th move). The earlier folder holds
    four packages; the second installation adds a fifth, so the swap moves 8 kept items (a folder
    and a dist-info each), then renames the old folder away and the new one in: 10 moves."""
    import shutil

    target = installer.target_folder(tmp_path / "profile")
    shutil.copytree(installed, target, ignore=shutil.ignore_patterns("starsnew*"))
    before = _tree(target)
    assert len(list(target.iterdir())) == 8

    def fake_pip(cmd, progress, cancel):  # pip's result for the second installation: starsnew alone
        staging = Path(cmd[cmd.index("--target") + 1])
        for item in installed.glob("starsnew*"):
            shutil.copytree(item, staging / item.name)
        return []

    real, calls = installer.os.replace, {"n": 0}

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] == position + 1:
            raise OSError(16, "Device or resource busy")
        return real(src, dst)

    monkeypatch.setattr(installer, "_run_pip", fake_pip)
    monkeypatch.setattr(installer.os, "replace", replace)
    with pytest.raises(InstallError, match="in use .*nothing was changed"):
        installer.install(_plan(tmp_path, tmp_path), progress=lambda *_: None, python=sys.executable)
    monkeypatch.undo()
    assert _tree(target) == before
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no staging or .old folder left
    assert calls["n"] > position  # the refused move was reached (undoing it moves items back)


def test_an_unwritable_profile_is_one_line(tmp_path):
    import os

    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "python").write_text("a file where the folder should be")
    with pytest.raises(InstallError, match="cannot write the packages folder") as err:
        installer.install(_plan(tmp_path, tmp_path), progress=lambda *_: None, python=sys.executable)
    assert "\n" not in str(err.value) and "Traceback" not in str(err.value)
    assert os.path.isfile(profile / "python")


def test_an_unbalanced_quote_in_the_extra_arguments_names_the_field():
    with pytest.raises(InstallError, match="Extra pip arguments: No closing quotation"):
        installer.pip_arguments('--find-links "/my wheels')
    assert installer.pip_arguments('--find-links "/my wheels" --no-index') == ["--find-links", "/my wheels",
                                                                                "--no-index"]


def test_cancel_stops_pip_and_the_processes_it_started(tmp_path):
    """pip may run a build backend in a child process: a cancel must stop it too."""
    import time

    pid_file = tmp_path / "child.pid"
    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
              f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
              "print('Collecting a package that builds for a while', flush=True)\n"
              "time.sleep(120)\n"
              f"open({str(tmp_path / 'finished')!r}, 'w')\n")  # only if the cancel let pip run to its end
    with pytest.raises(InstallCancelled):
        installer._run_pip([sys.executable, "-c", script], lambda *_: None,
                           cancel=lambda: pid_file.exists() and pid_file.read_text() != "")
    child = int(pid_file.read_text())
    deadline = time.time() + 60  # a bound on a hang, not a timing: the loop ends once the child is gone
    while time.time() < deadline:
        try:
            state = Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            state = "gone"
        if state in ("gone", "Z", "X"):
            break
        time.sleep(0.1)
    assert state in ("gone", "Z", "X"), f"the child pip started is still running ({state})"
    assert not (tmp_path / "finished").exists(), "pip ran to its end: the cancel did not stop it"


def test_a_missing_optional_speed_up_installs_the_rest_and_says_what_it_costs(tmp_path):
    wheels = tmp_path / "wheels"
    tiny_wheel(wheels)  # the folder has no openvino, as a company mirror might not
    lines = []
    target = installer.install(_plan(tmp_path, wheels, ("starstiny", "openvino")), progress=lines.append,
                               python=sys.executable)
    assert (target / "starstiny" / "__init__.py").is_file()
    assert any("openvino is not available" in l and "ONNX Runtime" in l for l in lines), lines
    with pytest.raises(InstallError, match="no suitable package"):  # a required package missing still fails
        installer.install(_plan(tmp_path, wheels, ("starstiny", "notthere")), progress=lambda m: None,
                          python=sys.executable)


def test_fetch_packages_pip_cannot_find_for_this_python_are_left_out_together(tmp_path):
    """pystac-client 0.9.1 needs Python 3.10: on a 3.9 QGIS pip finds no version of it. The rest is
    installed, planetary-computer left out with it (alone it would pull another pystac-client), said."""
    wheels = tmp_path / "wheels"
    tiny_wheel(wheels)
    tiny_wheel(wheels, "planetary_computer", "1.0.0")  # found: only pystac-client is missing
    assert set(installer.FETCH) <= set(installer.SETS["full"])
    lines = []
    target = installer.install(_plan(tmp_path, wheels, ("starstiny", *installer.FETCH)), progress=lines.append,
                               python=sys.executable)
    assert (target / "starstiny" / "__init__.py").is_file()
    assert not (target / "planetary_computer").exists()
    said = [line for line in lines if "is not available" in line]
    assert len(said) == 2 and all("Python 3.10" in line and "everything else works" in line for line in said)


@pytest.mark.parametrize("build,expected", [("cpu", ["cpu", "--extra-index-url", installer.PYTORCH_CPU_INDEX]),
                                            ("cuda", ["cuda"])])
def test_make_setup_asks_the_installers_rule_for_pytorch(tmp_path, build, expected):
    """scripts/setup.sh runs `installer.py torch-args SPEC`: the same rule as the in-QGIS installer."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, STARS_TORCH_BUILD=build)  # no user index, no wheel folder
    out = subprocess.run([sys.executable, installer.__file__, "torch-args", "torch==9.9"], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    if sys.platform == "darwin":
        expected = expected[:1]
    assert out == [*expected, "torch==9.9"]
    assert "installer.py torch-args" in (Path(__file__).parents[2] / "scripts" / "setup.sh").read_text()


def test_the_full_set_adds_the_fetch_packages_qgis_lacks_by_their_import_names(monkeypatch):
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    lacking = installer.plan("/p", importable=lambda name: name not in ("pystac_client", "planetary_computer"),
                             index_probe=lambda: False)
    assert lacking.packages == ("pystac-client==0.9.1", "planetary-computer==1.0.0") and lacking.build == "none"
    with pytest.raises(InstallError, match="already importable"):  # found under their import names: nothing to do
        installer.plan("/p", importable=lambda name: "-" not in name, index_probe=lambda: False)
