"""The layout a newcomer relies on (issue 35): short functions, the engines and errors where their
names say, algorithms sharing parameters through the plugin's base module, and the old import paths
of users' scripts still working."""
import ast
import importlib
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


@pytest.mark.parametrize("old,new", [
    ("stars_core.fast_runtime", "stars_core.engines.auto"),
    ("stars_core.onnx_export", "stars_core.engines.onnx_export"),
    ("stars_core.onnx_model", "stars_core.engines.onnx_model"),
    ("stars_core.torch_runner", "stars_core.engines.torch_runner"),
    ("stars_core.accuracy.cli", "stars_core.cli.accuracy"),
    ("stars_core.weights.cli", "stars_core.cli.weights"),
])
def test_a_moved_module_is_the_same_object_under_its_old_name(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_the_old_homes_of_the_errors_and_the_entry_point_still_serve():
    from stars_core import errors, runtime
    from stars_core.cli import main
    from stars_core.devices import check_device

    assert runtime.InputError is errors.InputError and runtime.Cancelled is errors.Cancelled
    assert runtime.check_device is check_device and callable(main)
    scripts = (ROOT / "pyproject.toml").read_text()
    assert 'stars = "stars_core.cli:main"' in scripts


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
