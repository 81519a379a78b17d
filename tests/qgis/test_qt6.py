"""Qt5 and Qt6 alike (QGIS 3.22 here, QGIS 4 for new installs): every Qt and QGIS enum value in the
plugin is written in its scoped form (`Qt.BrushStyle.NoBrush`, `QgsProcessing.SourceType.TypeRaster`),
which PyQt5 and PyQt6 both accept; PyQt6 drops the unscoped one (`Qt.NoBrush`). The walk resolves each
`Class.Name` of the plugin against the PyQt5 bindings here, so a regression is caught on 3.22.
QGIS's own migration script (`make lint-qt6`) checks the same with PyQt6."""
import ast
import enum
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "stars_qgis"
MODULES = ("qgis.core", "qgis.gui", "qgis.PyQt.QtCore", "qgis.PyQt.QtGui", "qgis.PyQt.QtWidgets")


def _namespace() -> dict:
    import importlib

    names = {}
    for module in MODULES:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        names.update({k: v for k, v in vars(mod).items() if k.startswith("Q")})
    return names


def _is_unscoped_member(owner, attr: str) -> str | None:
    """`Owner.Enum.attr` when `Owner.attr` is a member of an enum (the scoped form: an enum class on
    Owner holding it, under its own name or an alias; QGIS 3.40 moved many to `Qgis`, e.g.
    `QgsProcessing.TypeRaster` is a `Qgis.ProcessingSourceType` there, aliased as
    `QgsProcessing.SourceType`), else None."""
    value = getattr(owner, attr, None)
    if value is None or isinstance(value, type) or callable(value) and not isinstance(value, (int, enum.Enum)):
        return None
    kind = type(value)
    if not (isinstance(value, (int, enum.Enum)) and kind not in (int, bool)):
        return None
    name = kind.__name__
    if name == attr:
        return None
    if getattr(owner, name, None) is kind:
        return f"{owner.__name__}.{name}.{attr}"
    alias = next((a for a in dir(owner) if not a.startswith("_") and getattr(owner, a, None) is kind), None)
    if alias is not None:
        return f"{owner.__name__}.{alias}.{attr}"
    import qgis.core

    if getattr(getattr(qgis.core, "Qgis", None), name, None) is kind:
        return f"Qgis.{name}.{attr}"
    return f"{kind.__qualname__}.{attr}"  # an enum member reached through a class that is not its scope


def unscoped_enums(paths) -> list[str]:
    names = _namespace()
    found = []
    for path in paths:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names:
                scoped = _is_unscoped_member(names[node.value.id], node.attr)
                if scoped:
                    found.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr} -> {scoped}")
    return found


def test_the_walk_finds_an_unscoped_enum_and_accepts_the_scoped_form(tmp_path):
    pytest.importorskip("qgis.core")
    sample = tmp_path / "sample.py"
    sample.write_text("from qgis.PyQt.QtCore import Qt\nfrom qgis.core import QgsProcessing\n"
                      "a = Qt.NoBrush\nb = Qt.BrushStyle.NoBrush\nc = QgsProcessing.TypeRaster\n"
                      "d = QgsProcessing.SourceType.TypeRaster\n")
    found = [f.split(": ", 1)[1] for f in unscoped_enums([sample])]
    assert found == ["Qt.NoBrush -> Qt.BrushStyle.NoBrush",
                     "QgsProcessing.TypeRaster -> QgsProcessing.SourceType.TypeRaster"]


def test_the_plugin_writes_every_enum_in_its_scoped_form():
    pytest.importorskip("qgis.core")
    found = unscoped_enums(sorted(PLUGIN.rglob("*.py")))
    assert found == [], "unscoped enums (PyQt6 refuses them):\n" + "\n".join(found)


def test_the_plugin_avoids_other_pyqt5_only_forms():
    for path in sorted(PLUGIN.rglob("*.py")):
        text = path.read_text()
        assert "PyQt5" not in text, f"{path}: import Qt through qgis.PyQt"
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                assert node.attr != "exec_", f"{path}:{node.lineno}: exec_ is gone in PyQt6; use exec"


def test_metadata_declares_qgis_4():
    import configparser

    meta = configparser.ConfigParser()
    meta.read(ROOT / "metadata.txt")
    general = meta["general"]
    assert general["qgisMaximumVersion"] == "4.99"
    assert general["supportsQt6"].lower() in ("true", "yes")
