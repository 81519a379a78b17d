#!/usr/bin/env bash
# `make check-install`: the no-terminal path, headless, on a fresh QGIS profile.
# The plugin ZIP alone is installed (not pointed at this project's environment) and PyTorch is not
# visible to QGIS's Python; stars:installdependencies then installs it into the profile with pip
# (pip's own configuration: on this machine PIP_FIND_LINKS names the local wheel folder), and
# stars:segmentmissingmodality segments the demo scene with a model trained here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
QP=$(command -v qgis_process.bin || true)
[ -n "$QP" ] || { echo "check-install: qgis_process.bin not found (apt install qgis)"; exit 1; }
WORK=$(mktemp -d /tmp/stars-check-install.XXXX)
trap 'rm -rf "$WORK"' EXIT
export QT_QPA_PLATFORM=offscreen QGIS_CUSTOM_CONFIG_PATH="$WORK/profile"
unset PYTHONPATH STARS_SITE_PACKAGES
t0=$SECONDS
"$PY" scripts/plugin.py package --out "$WORK/stars_qgis.zip" >/dev/null
"$PY" scripts/plugin.py install --zip "$WORK/stars_qgis.zip" --no-pin >/dev/null
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    echo "check-install: QGIS's Python already imports torch; this check needs a machine where it does not"; exit 1
fi
echo "[1/3] fresh profile $WORK/profile with the ZIP only; QGIS's Python has no torch"
"$PY" -m stars_core.cli demo-scene --out "$WORK/scene" --size 256 >/dev/null
"$PY" -m stars_core.cli train --m1 "$WORK/scene/sar.tif" --m2 "$WORK/scene/optical.tif" \
    --labels "$WORK/scene/labels.tif" --class-table "$WORK/scene/classes.csv" --ignore-value 0 \
    --out "$WORK/model.stars" --backbone resnet18 --encoder-width 16 --steps 2 --batch-size 2 --chip-size 64 \
    --workers 0 --device cpu >/dev/null 2>&1
echo "      before: $("$QP" run stars:segmentmissingmodality -- INPUT="$WORK/scene/sar.tif" \
    MODEL="$WORK/model.stars" OUTPUT="$WORK/before.tif" 2>&1 | grep -o 'STARS needs the Python package(s) [a-z, ]*' | head -1)"
echo "[2/3] stars:installdependencies (CPU build) through qgis_process"
t1=$SECONDS
"$QP" run stars:installdependencies -- PACKAGES=0 BUILD=1 2>&1 | grep -E "^(installing|installed|Successfully)" || true
echo "      $((SECONDS - t1)) s; private folder: $(ls -d "$WORK"/profile/profiles/default/python/stars-packages/py* 2>/dev/null)"
echo "[3/3] stars:segmentmissingmodality with the installed PyTorch"
"$QP" run stars:segmentmissingmodality -- INPUT="$WORK/scene/sar.tif" MODEL="$WORK/model.stars" \
    OUTPUT="$WORK/map.tif" TILE_SIZE=128 DEVICE=1 >"$WORK/segment.log" 2>&1 || { tail -20 "$WORK/segment.log"; exit 1; }
"$PY" -c "import rasterio, sys; d = rasterio.open(sys.argv[1]).read(1); print(f'      map {d.shape[1]} x {d.shape[0]}, ' \
    f'{(d != 255).mean():.0%} classified, {len(set(d.ravel()) - {255})} classes')" "$WORK/map.tif"
echo "check-install: passed in $((SECONDS - t0)) s"
