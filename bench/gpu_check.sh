#!/usr/bin/env bash
# The GPU check, in one command: prints everything and writes it to one results file.
#   bash bench/gpu_check.sh                 # on a CUDA machine (about 6-8 minutes on one H100)
#   bash bench/gpu_check.sh --device cpu    # small sizes: proves the script runs end to end here
# Results: $OUT/gpu_check.txt when OUT is set (the device tool's folder), else bench/gpu_check.txt.
# Steps: nvidia-smi and versions; the CUDA-marked tests; ResNet-50 STARS speed (fp32, bf16 autocast,
# channels_last, torch.compile); `stars segment` against the bare forward; training steps/s with the
# paper's recipe (ResNet-50, 512-px chips, batch 8). A failing step is reported and the next runs.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
[ "${1:-}" = "--device" ] && DEVICE="${2:-cuda}"
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
RESULTS="${OUT:-bench}/gpu_check.txt"
mkdir -p "$(dirname "$RESULTS")"
: > "$RESULTS"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" QT_QPA_PLATFORM=offscreen
status=0

step() {  # step TITLE TIMEOUT_SECONDS COMMAND...
    local title=$1 limit=$2
    shift 2
    echo -e "\n## $title\n\$ $*" | tee -a "$RESULTS"
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$RESULTS"
    local rc=${PIPESTATUS[0]}
    echo "(exit $rc, $((SECONDS - t0)) s)" | tee -a "$RESULTS"
    [ "$rc" -eq 0 ] || status=1
}

echo "# STARS GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), device $DEVICE, commit $(git rev-parse --short HEAD 2>/dev/null)" \
    | tee -a "$RESULTS"
if [ "$DEVICE" = cuda ]; then
    step "GPU" 20 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    step "versions" 60 "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
'cuDNN', torch.backends.cudnn.version(), torch.cuda.get_device_name(0))"
    step "CUDA-marked tests" 240 "$PY" -m pytest -q -m cuda tests/core/test_cuda.py
    step "model speed (ResNet-50 STARS, 512 px)" 240 "$PY" bench/model_speed.py --device cuda --batches 1 8 \
        --repeats 5 --compile
    step "segment speed (ResNet-50, 512-px tiles, 8192 px raster)" 180 "$PY" bench/segment_speed.py --device cuda \
        --size 8192 --read-threads 1 4
    step "paper recipe training (ResNet-50 width 64, 512-px chips, batch 8)" 180 "$PY" bench/train_speed.py \
        --device cuda --backbone resnet50 --width 64 --chip 512 --batch 8 --steps 40 --workers 4 --size 2048
else
    step "versions" 60 "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA available:', torch.cuda.is_available())"
    step "CUDA-marked tests (skipped without CUDA)" 120 "$PY" -m pytest -q -m cuda tests/core/test_cuda.py
    step "model speed (small)" 300 "$PY" bench/model_speed.py --device "$DEVICE" --backbone resnet18 --width 16 \
        --size 128 --batches 1 --repeats 1
    step "segment speed (small)" 300 "$PY" bench/segment_speed.py --device "$DEVICE" --backbone resnet18 --width 16 \
        --size 512 --tile 128 --overlap 32 --batch 2 --read-threads 1 2
    step "training (small)" 300 "$PY" bench/train_speed.py --device "$DEVICE" --backbone resnet18 --width 16 \
        --chip 128 --batch 2 --steps 3 --workers 0 --size 512
fi
echo -e "\nresults in $RESULTS; exit $status" | tee -a "$RESULTS"
exit $status
