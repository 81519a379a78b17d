#!/usr/bin/env bash
# `make test-core PY=python3.12`: the core suite (tests/core) on another Python, with PyPI wheels in
# build/venv-<python>. QGIS 4 ships Python 3.12 (3.13 on Windows and macOS); pyenv has both here.
# Not part of `make test`: it downloads several GB (PyPI's Linux torch is the CUDA build) and builds
# GDAL's Python bindings against the system's libgdal (Debian: apt-get install libgdal-dev).
set -euo pipefail
py="${1:-python3.12}"
root="$(cd "$(dirname "$0")/.." && pwd)"
if ! "$py" -c "" 2>/dev/null && command -v pyenv >/dev/null; then  # a pyenv shim of a version not selected
    found="$(ls -d "$(pyenv root)"/versions/*/bin/"$py" 2>/dev/null | sort -V | tail -1)"
    [ -n "$found" ] && py="$found"
fi
"$py" -c "" 2>/dev/null || { echo "test-core: $py not found (pyenv install 3.12, or give PY=/path/to/python3.12)" >&2; exit 2; }
venv="$root/build/venv-$(basename "$py")"
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
"$venv/bin/pip" install -q "numpy<2" "torch==2.13.0" rasterio scipy matplotlib shapely onnx onnxruntime tqdm pytest
if ! "$venv/bin/python" -c "import osgeo" 2>/dev/null; then
    command -v gdal-config >/dev/null || { echo "test-core: GDAL's Python bindings are built against the system GDAL: install its headers (Debian: apt-get install libgdal-dev), then run this again" >&2; exit 2; }
    "$venv/bin/pip" install -q setuptools wheel
    "$venv/bin/pip" install -q --no-build-isolation "GDAL==$(gdal-config --version)"
fi
"$venv/bin/pip" install -q --no-deps -e "$root"  # the `stars` command and subprocesses import stars_core
"$venv/bin/python" -c "import sys, numpy, torch, rasterio, onnxruntime; print(f'test-core: Python {sys.version.split()[0]}, numpy {numpy.__version__}, torch {torch.__version__}, rasterio {rasterio.__version__}, onnxruntime {onnxruntime.__version__}')"
cd "$root"
QT_QPA_PLATFORM=offscreen "$venv/bin/python" -m pytest -q tests/core
