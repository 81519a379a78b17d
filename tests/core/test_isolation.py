"""The import structure: stars_core never imports QGIS or Qt (it runs in plain Python, on servers
and in CI), its modules import each other without a circle, segmentation loads no training code,
and the configurations load without PyTorch (the QGIS dialogs read their defaults from them)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import stars_core

PACKAGE = Path(stars_core.__file__).parent


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def _module_name(path: Path, root: Path = PACKAGE) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path, root: Path = PACKAGE) -> set[str]:
    """Modules of the package at `root` that `path` imports anywhere (module level or inside functions)."""
    me = _module_name(path, root)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            found |= {n for n in names if (root / Path(*n.split(".")[1:])).with_suffix(".py").exists()}
            found.add(target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.split(".")[0] == root.name and m != me and m != root.name}


@pytest.mark.parametrize("package", ["stars_core", "stars_qgis"])
def test_import_graph_of_each_package_has_no_circle(package):
    root = PACKAGE.parent / package
    graph = {_module_name(p, root): _imports(p, root) for p in root.rglob("*.py")}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    if package == "stars_core":
        assert "stars_core.errors" in graph and graph["stars_core.errors"] == set()  # the bottom: imports nothing
    else:  # the algorithms' base reads the threads setting without importing the provider
        assert "stars_qgis.settings" in graph["stars_qgis.algorithms.base"]
        assert "stars_qgis.provider" in graph["stars_qgis.plugin"]


def test_import_stars_core_pulls_no_qgis_or_qt():
    code = (
        "import sys, stars_core, stars_core.training.losses, stars_core.models, stars_core.training.train, stars_core.segmentation.infer;"
        "import stars_core.cli, stars_core.segmentation.sheets, stars_core.evaluate, stars_core.quicklook;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'qgis', 'PyQt5', 'PyQt6', 'sip'});"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = _run(code)
    assert result.returncode == 0, f"stars_core imported {result.stdout.strip()} {result.stderr}"


def test_segmentation_imports_no_training_code():
    code = ("import sys, stars_core.segmentation.infer, stars_core.segmentation.sheets;"
            "print(','.join(sorted(m for m in sys.modules if m.startswith('stars_core.'))))")
    result = _run(code)
    loaded = set(result.stdout.strip().split(","))
    assert result.returncode == 0 and "stars_core.segmentation.infer" in loaded, result.stderr
    assert not loaded & {"stars_core.training.train", "stars_core.training.data", "stars_core.training.losses", "stars_core.training.diagnostics"}


def test_configs_and_errors_load_without_torch():
    code = ("import sys; sys.modules['torch'] = None;"  # any `import torch` now fails
            "from stars_core.config import TrainConfig, DataConfig, SegmentConfig, StarsConfig;"
            "from stars_core.errors import Cancelled, InputError;"
            "import warnings; warnings.simplefilter('ignore', DeprecationWarning);"
            "from stars_core.runtime import Cancelled as C, InputError as I, check_device;"  # the old path, kept until 0.5
            "assert C is Cancelled and I is InputError;"
            "print(TrainConfig.for_steps(800).warmup_steps)")
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "10"


def test_the_map_to_numbers_chain_needs_no_torch():
    """Evaluating, sampling, estimating, cleaning and polygonizing a map run where PyTorch is not
    installed (a QGIS that only segments with ONNX, or only assesses a map made elsewhere)."""
    result = _run("import sys; sys.modules['torch'] = None\n"
                  "import stars_core.evaluate, stars_core.cli.evaluate\n"
                  "import stars_core.accuracy.assess, stars_core.accuracy.report, stars_core.cli.accuracy\n"
                  "import stars_core.product.mmu, stars_core.product.polygons\n"
                  "assert sys.modules['torch'] is None")
    assert result.returncode == 0, result.stderr[-1500:]
