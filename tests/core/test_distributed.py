"""Multi-process training with DistributedDataParallel: two CPU processes on the gloo backend."""
import os
import subprocess
import sys

import torch

from stars_core.checkpoint import read_model_file


def _torchrun_train(scene, out, steps: int, *extra: str) -> list[str]:
    """`stars train` of a tiny model in two CPU processes (gloo)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "stars_core.cli", "train", "--m1", str(scene["sar"]), "--m2", str(scene["optical"]),
            "--labels", str(scene["labels"]), "--class-table", str(scene["classes"]),
            "--out", str(out), "--backbone", "resnet18", "--encoder-width", "16", "--steps", str(steps),
            "--batch-size", "2", "--chip-size", "64", "--workers", "0", "--device", "cpu", *extra]


def test_torchrun_two_cpu_processes(demo_scene, tmp_path):
    out = tmp_path / "ddp.stars"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(_torchrun_train(demo_scene, out, 3), capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    payload = read_model_file(out)
    assert payload["summary"]["world_size"] == 2 and payload["summary"]["steps"] == 3
    # Both ranks stepped in lockstep: the weights are finite and were updated by averaged gradients.
    assert all(torch.isfinite(v).all() for v in payload["state_dict"].values() if v.is_floating_point())


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except OSError:
                continue
    return kids


def _local_rank(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    except OSError:
        return None
    return env.get(b"LOCAL_RANK", b"").decode() or None


def test_a_cancel_on_one_rank_stops_every_rank_with_a_resumable_model(demo_scene, tmp_path):
    import signal
    import time

    out = tmp_path / "ddp.stars"
    proc = subprocess.Popen(_torchrun_train(demo_scene, out, 400, "--checkpoint-every", "1000"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "STARS_PROGRESS_INTERVAL": "0"})
    seen, deadline = "", time.time() + 240
    while "/400" not in seen and time.time() < deadline and proc.poll() is None:  # the first step is done
        seen += proc.stdout.read(1)
    second = [p for p in _children(proc.pid) if _local_rank(p) == "1"]
    assert second, seen[-2000:]
    os.kill(second[0], signal.SIGINT)  # Ctrl-C reaches rank 1 only
    rest = proc.communicate(timeout=240)[0]
    assert "training cancelled at step" in seen + rest, (seen + rest)[-3000:]
    payload = read_model_file(out)  # rank 0 saved although the cancel came from rank 1, and nothing hung
    assert 1 <= payload["resume"]["step"] < 400 and payload["summary"]["world_size"] == 2
    ranks = payload["resume"]["rng"]["ranks"]  # each rank's own random state, for an exact resume
    assert len(ranks) == 2 and not torch.equal(ranks[0]["psa"], ranks[1]["psa"])
