#!/usr/bin/env bash
# Idempotent setup: Debian packages (QGIS, GDAL, rasterio, shapely) when missing, then a
# --system-site-packages venv with torch, the project (editable) and the test tools.
# The system's numpy (the one QGIS, GDAL and rasterio were built against: 1.x on Debian 12, 2.x on
# Debian 13) is pinned through a constraints file, so pip never replaces it.
# PyTorch: the CPU build unless an NVIDIA driver answers, by the in-QGIS installer's own rule
# (stars_qgis/installer.py torch_source; STARS_TORCH_BUILD=cpu|cuda overrides it).
# ONNX export and ONNX Runtime segmentation (the `onnx` extra) are optional for users, installed
# here so their tests run; checked with numpy 1.24.2: onnxruntime 1.32.0, onnx 1.23.2. OpenVINO (the `fast`
# extra: the default CPU engine for exported graphs) declares numpy >= 1.16.6; checked: openvino 2026.4.1.
# STAC search (the `fetch` extra, `stars fetch`): pystac-client 0.9.1 with pystac 1.16.1 and planetary-computer
# 1.0.0 (pydantic 2), checked with `pip install --dry-run` against the constraints file: none asks for another
# numpy, rasterio or GDAL.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
DEB_PACKAGES="qgis python3-qgis qgis-providers python3-rasterio python3-gdal python3-shapely \
python3-matplotlib python3-scipy python3-venv python3-pip gdal-bin xvfb fonts-open-sans"
# fonts-open-sans: QGIS 3.40's own default style (resources/symbology-style.xml, text format "Default")
# names Open Sans; without it QGIS tries to download the font on start and, offline, says it failed

missing=""
for pkg in $DEB_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "setup: installing Debian packages:$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV (system site packages visible: QGIS, GDAL, rasterio, numpy)"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.stars-setup"
# Re-install only when the project metadata changed since the last successful setup.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$(cat "$stamp")" != "$TORCH_SPEC" ]; then
    constraints="$VENV/constraints.txt"
    /usr/bin/python3 -c 'import numpy; print(f"numpy=={numpy.__version__}")' > "$constraints"
    mapfile -t torch_args < <(/usr/bin/python3 stars_qgis/installer.py torch-args "$TORCH_SPEC")
    echo "setup: PyTorch ${torch_args[0]} build (${torch_args[*]:1})"
    "$PY" -m pip install -q --disable-pip-version-check -c "$constraints" "${torch_args[@]:1}"
    "$PY" -m pip install -q --disable-pip-version-check -c "$constraints" -e ".[test,onnx,fast,docs,fetch]"
    echo "$TORCH_SPEC" > "$stamp"
fi

system_numpy=$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')
"$PY" - "$system_numpy" <<'PY'
import subprocess, sys

import numpy, torch

system = sys.argv[1]
if numpy.__version__ != system:
    sys.exit(f"setup: numpy {numpy.__version__} in the venv is not the system's {system}: remove it "
             f"(.venv/bin/pip uninstall numpy) so QGIS's, GDAL's and rasterio's own numpy is used")
def driver() -> bool:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0
    except OSError:  # no nvidia-smi at all
        return False


if torch.version.cuda and not driver():
    print(f"setup: warning: PyTorch's CUDA build ({torch.__version__}, several GB) was installed on a machine "
          f"without an NVIDIA driver: PyTorch's CPU index could not be reached, or your pip configuration named "
          f"another index. It runs on the CPU all the same; to get the small CPU build, put its wheel in a "
          f"folder named by PIP_FIND_LINKS and run make setup again", file=sys.stderr)
print(f"setup: ok (torch {torch.__version__}, numpy {numpy.__version__}, Python {sys.version.split()[0]})")
PY
