"""The layout a newcomer relies on (issue 35): short functions, the engines and errors where their
names say, algorithms sharing parameters through the plugin's base module, and the old import paths
of users' scripts still working."""
import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 80


def test_no_function_is_longer_than_80_lines():
    long = []
    for package in ("stars_core", "stars_qgis"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == [], "split these functions:\n" + "\n".join(long)


@pytest.mark.parametrize("old,new", sorted(__import__("stars_core.old_names").old_names.MOVED.items()))
def test_a_moved_module_is_the_same_object_under_its_old_name_with_a_warning(old, new):
    with pytest.warns(DeprecationWarning, match=rf"{old} is now {new}; the old name is removed in 0\.5"):
        module = _fresh_import(old)
    assert module is importlib.import_module(new)


def _fresh_import(name: str):
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def test_the_old_home_of_the_errors_still_serves_with_a_warning():
    from stars_core import errors
    from stars_core.cli import main
    from stars_core.devices import check_device

    with pytest.warns(DeprecationWarning, match="stars_core.runtime is now"):
        runtime = _fresh_import("stars_core.runtime")
    assert runtime.InputError is errors.InputError and runtime.Cancelled is errors.Cancelled
    assert runtime.check_device is check_device and callable(main)
    scripts = (ROOT / "pyproject.toml").read_text()
    assert 'stars = "stars_core.cli:main"' in scripts


def test_the_project_uses_no_old_import_path():
    """Its own code, tests, benches, scripts and docs name the new modules only."""
    from stars_core.old_names import GATHERED, MOVED

    old = sorted(MOVED) + sorted(GATHERED)
    pattern = re.compile(r"\b(" + "|".join(re.escape(o) for o in old) + r")\b(?![./\w])")
    found = []
    for folder in ("stars_core", "stars_qgis", "tests", "bench", "scripts", "docs"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in {".py", ".md", ".sh"} or path.name in {"old_names.py", "test_layout.py", "develop.md"}:  # these name the move
                continue
            for k, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line) and "the old path" not in line:
                    found.append(f"{path.relative_to(ROOT)}:{k}: {line.strip()}")
    assert found == []


def test_the_version_is_one_everywhere():
    import stars_core

    assert f'version = "{stars_core.__version__}"' in (ROOT / "pyproject.toml").read_text()
    assert f"version={stars_core.__version__}" in (ROOT / "metadata.txt").read_text().splitlines()


def test_algorithms_share_parameters_through_the_base_module_not_each_other():
    folder = ROOT / "stars_qgis" / "algorithms"
    algorithms = {p.stem for p in folder.glob("*.py")} - {"__init__", "base"}
    crossing = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module in algorithms:
                crossing.append(f"{path.name} imports .{node.module}")
    assert crossing == []


def test_the_export_help_says_the_graph_has_a_fixed_tile(capsys):
    from stars_core.cli import _parser

    with pytest.raises(SystemExit):
        _parser().parse_args(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "any multiple of 32" not in text and "the graph's input size, fixed" in text


# The house: each floor imports only from its own floor or below. Small shared modules are the
# foundation; a concern of several modules is a sub-package on its floor; the command line on top.
FLOORS = [
    {"errors"},
    {"__init__", "old_names", "classes", "classmap", "config", "devices", "files", "progress", "threads", "bands",
     "raster", "metrics", "plots", "style", "tiling", "evaluate", "quicklook", "demo_scene"},
    {"models/", "weights/", "product/"},
    {"checkpoint"},
    {"engines/"},
    {"segmentation/"},
    {"fetch/"},
    {"training/"},
    {"change/", "distill/"},
    {"accuracy/"},
    {"cli/"},
    {"__main__"},
]


def _room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1] + "/" if (ROOT / "stars_core" / parts[1]).is_dir() else parts[1]


def test_no_import_runs_back_up_the_house():
    from test_isolation import _imports, _module_name

    floor = {room: k for k, rooms in enumerate(FLOORS) for room in rooms}
    package = ROOT / "stars_core"
    rooms = {_room(_module_name(p, package)) for p in package.rglob("*.py")}
    assert rooms - set(floor) == set(), "give these modules a floor in FLOORS"
    up = []
    for path in sorted(package.rglob("*.py")):
        me = _module_name(path, package)
        for target in sorted(_imports(path, package)):
            if floor[_room(target)] > floor[_room(me)]:
                up.append(f"{me} -> {target}")
    assert up == [], "imports running back up:\n" + "\n".join(up)


def test_no_private_name_is_imported_from_another_module():
    """A leading underscore means 'this module only': what another module needs gets a public name."""
    crossing = []
    for package in ("stars_core", "stars_qgis"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                    private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                    if private:
                        crossing.append(f"{path.relative_to(ROOT)}: from {'.' * node.level}{node.module} import "
                                        f"{', '.join(private)}")
    assert crossing == []


def test_the_plugin_calls_the_core_not_its_command_line():
    found = [f"{p.relative_to(ROOT)}" for p in sorted((ROOT / "stars_qgis").rglob("*.py"))
             if re.search(r"\bstars_core\.cli\b", p.read_text())]
    assert found == []


@pytest.mark.parametrize("folder", ["scripts", "bench"])
def test_scripts_and_benches_have_no_function_over_80_lines(folder):
    long = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_LINES:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert long == []


def test_each_command_module_says_which_commands_it_holds():
    missing = []
    for path in sorted((ROOT / "stars_core" / "cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        doc = " ".join((ast.get_docstring(tree) or "").split())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_parser" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                name = node.args[0].value
                if not re.search(rf"\b{re.escape(name)}\b", doc):
                    missing.append(f"{path.name}: {name}")
    assert missing == []


@pytest.mark.parametrize("base,expected", [
    ("SegmentingAlgorithm", ["SegmentMapSheets", "SegmentMissingModality", "SegmentTimeSeries"]),
    ("FetchingAlgorithm", ["GetSentinelPair", "GetSentinelSeries"]),
])
def test_algorithms_of_one_kind_take_their_shared_parameters_from_the_base(base, expected):
    """Keys several algorithms share (model, engine, tiling, minimum mapping unit; area, dates,
    catalogue, network) are declared once, on their base class in base.py."""
    tree = ast.parse((ROOT / "stars_qgis" / "algorithms" / "base.py").read_text())
    definition = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == base)
    shared = {t.id for n in definition.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert shared
    found, again = [], []
    for path in sorted((ROOT / "stars_qgis" / "algorithms").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", "") == base for b in node.bases):
                found.append(node.name)
                again += [f"{node.name}.{t.id}" for n in node.body if isinstance(n, ast.Assign)
                          for t in n.targets if isinstance(t, ast.Name) and t.id in shared]
                again += [f"{node.name}.{n.name}" for n in node.body
                          if isinstance(n, ast.FunctionDef) and n.name == "required"]
    assert sorted(found) == expected
    assert again == []
