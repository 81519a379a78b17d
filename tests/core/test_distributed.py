"""Multi-process training with DistributedDataParallel: two CPU processes on the gloo backend."""
import os
import subprocess
import sys

import torch

from stars_core.checkpoint import read_model_file


def test_torchrun_two_cpu_processes(demo_scene, tmp_path):
    out = tmp_path / "ddp.stars"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "stars_core.cli", "train", "--m1", str(demo_scene["sar"]), "--m2", str(demo_scene["optical"]),
           "--labels", str(demo_scene["labels"]), "--class-table", str(demo_scene["classes"]),
           "--out", str(out), "--backbone", "resnet18", "--encoder-width", "16", "--steps", "3",
           "--batch-size", "2", "--chip-size", "64", "--workers", "0", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    payload = read_model_file(out)
    assert payload["summary"]["world_size"] == 2 and payload["summary"]["steps"] == 3
    # Both ranks stepped in lockstep: the weights are finite and were updated by averaged gradients.
    assert all(torch.isfinite(v).all() for v in payload["state_dict"].values() if v.is_floating_point())
