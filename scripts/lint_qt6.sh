#!/usr/bin/env bash
# `make lint-qt6 PYQT5_TO_PYQT6=/path/to/pyqt5_to_pyqt6.py`: QGIS's own Qt5 -> Qt6 migration script
# (github.com/qgis/QGIS, scripts/pyqt5_to_pyqt6/pyqt5_to_pyqt6.py; not vendored here) run in check
# mode over a copy of stars_qgis/, in a venv with PyQt6 and without PyQt5 (with PyQt5 visible the
# script resolves Qt's enums from the wrong version). It must report nothing. Without QGIS built
# against Qt6 it checks Qt's enums, exec_ and PyQt5 imports; tests/qgis/test_qt6.py checks QGIS's enums.
set -euo pipefail
script="${1:?give the path of pyqt5_to_pyqt6.py}"
[ -f "$script" ] || { echo "lint-qt6: $script not found; take scripts/pyqt5_to_pyqt6/pyqt5_to_pyqt6.py from github.com/qgis/QGIS" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/build/qt6-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q PyQt6 PyQt6-QScintilla tokenize-rt
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$root/stars_qgis" "$work/"
(cd "$work" && QT_QPA_PLATFORM=offscreen "$venv/bin/python" "$script" --dry_run stars_qgis) 2>&1 \
    | grep -v "QGIS classes not available for introspection" > "$work/report.txt" || true
if [ -s "$work/report.txt" ]; then
    cat "$work/report.txt"
    echo "lint-qt6: the migration script reports the lines above" >&2
    exit 1
fi
echo "lint-qt6: QGIS's pyqt5_to_pyqt6.py reports nothing for stars_qgis/"
