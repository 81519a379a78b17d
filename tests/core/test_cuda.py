"""CUDA paths, run only where PyTorch sees a GPU (bench/gpu_check.sh runs them on a lent GPU).

bf16 against fp32 maps, training with AMP, DDP over NCCL, resume and CUDA against CPU maps.
cuDNN kernels are not deterministic by default, so resumed losses are compared with a tolerance.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch

from stars_core.config import SegmentConfig
from stars_core.training.data import SceneSpec
from stars_core.segmentation.infer import segment
from stars_core.errors import Cancelled
from stars_core.training.train import train
from tests.core.helpers import TINY_MODEL, tiny_train

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _spec(scene):
    return [SceneSpec(str(scene["sar"]), str(scene["optical"]), str(scene["labels"]))]


def _agreement(a, b) -> float:
    with rasterio.open(a) as x, rasterio.open(b) as y:
        return float((x.read(1) == y.read(1)).mean())


def test_bf16_map_agrees_with_the_fp32_map(trained_model, demo_scene, tmp_path):
    cfg = dict(tile_size=128, overlap=32, device="cuda")
    segment(trained_model, demo_scene["sar"], tmp_path / "bf16.tif", SegmentConfig(amp=True, **cfg))
    segment(trained_model, demo_scene["sar"], tmp_path / "fp32.tif", SegmentConfig(amp=False, **cfg))
    assert _agreement(tmp_path / "bf16.tif", tmp_path / "fp32.tif") >= 0.99


def test_cuda_map_equals_the_cpu_map(trained_model, demo_scene, tmp_path):
    cfg = dict(tile_size=128, overlap=32, amp=False)
    segment(trained_model, demo_scene["sar"], tmp_path / "gpu.tif", SegmentConfig(device="cuda", **cfg))
    segment(trained_model, demo_scene["sar"], tmp_path / "cpu.tif", SegmentConfig(device="cpu", **cfg))
    assert _agreement(tmp_path / "gpu.tif", tmp_path / "cpu.tif") >= 0.995


def test_fifty_amp_steps_stay_finite_and_lower_the_loss(demo_scene, tmp_path):
    rows = []
    cfg = tiny_train(steps=50, warmup_steps=5, lr=2e-3, batch_size=4, device="cuda",
                     class_table=str(demo_scene["classes"]))
    train(_spec(demo_scene), tmp_path / "m.stars", TINY_MODEL, **cfg, progress=lambda s, n, r: rows.append(r),
          log=lambda *_: None)
    totals = [r["total"] for r in rows]
    assert len(totals) == 50 and np.isfinite(totals).all()
    assert np.mean([r["seg"] for r in rows[-10:]]) < 0.8 * np.mean([r["seg"] for r in rows[:10]])


def test_resume_on_cuda_continues_with_the_same_losses(demo_scene, tmp_path):
    kw = dict(**tiny_train(steps=8, device="cuda", class_table=str(demo_scene["classes"])), log=lambda *_: None)
    full = []
    train(_spec(demo_scene), tmp_path / "full.stars", TINY_MODEL, progress=lambda s, n, r: full.append(r), **kw)
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        train(_spec(demo_scene), tmp_path / "part.stars", TINY_MODEL, cancel=lambda: next(calls) == 3, **kw)
    rest = []
    train(_spec(demo_scene), tmp_path / "part.stars", resume=tmp_path / "part.stars",
          progress=lambda s, n, r: rest.append(r), log=lambda *_: None)
    np.testing.assert_allclose([r["total"] for r in rest], [r["total"] for r in full[4:]], rtol=0.05, atol=0.02)


def test_ddp_over_nccl_with_one_process(demo_scene, tmp_path):
    out = tmp_path / "ddp.stars"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "-m", "stars_core.cli", "train",
           "--m1", str(demo_scene["sar"]), "--m2", str(demo_scene["optical"]), "--labels", str(demo_scene["labels"]),
           "--class-table", str(demo_scene["classes"]), "--out", str(out), "--backbone", "resnet18",
           "--encoder-width", "16", "--steps", "3", "--batch-size", "2", "--chip-size", "64", "--workers", "0",
           "--device", "cuda"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    payload = torch.load(out, weights_only=True)
    assert payload["summary"]["world_size"] == 1 and payload["summary"]["device"].startswith("cuda")
