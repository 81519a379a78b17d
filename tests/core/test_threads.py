"""The thread policy: what it decides for a given load, that the command line sets it before torch
loads, that the user's own settings win, and that the load probe sees another busy process."""
import subprocess
import sys
import time

import pytest
import torch

from stars_core import threads
from stars_core.threads import Load, LoadProbe, ThreadPolicy, threads_for


@pytest.mark.parametrize("others,reserve,expected", [
    (0.0, 0, 4), (0.2, 0, 4),  # a little background noise keeps every core
    (0.7, 0, 3), (1.0, 0, 3), (2.9, 0, 1), (8.0, 0, 1),  # never below one thread
    (0.0, 1, 3), (1.0, 2, 1),  # DataLoader workers and the QGIS interface get their cores
])
def test_threads_follow_the_idle_cores(others, reserve, expected):
    assert threads_for(Load(others, 4), 4, reserve) == expected


def test_the_policy_drops_to_one_thread_beside_a_busy_core_and_comes_back():
    before = torch.get_num_threads()
    policy = ThreadPolicy(interval=0.0)
    policy.cores = 2
    loads = iter([Load(0.9, 2), Load(1.0, 2), Load(0.0, 2)])
    policy.probe.sample = lambda: next(loads)
    try:
        assert policy.adapt() == 1 and torch.get_num_threads() == 1
        assert policy.adapt() == 1
        assert policy.adapt() == 2 and torch.get_num_threads() == 2 and policy.changes == 1
    finally:
        torch.set_num_threads(before)


def test_a_fixed_count_never_changes():
    before = torch.get_num_threads()
    policy = ThreadPolicy(fixed=1, interval=0.0)
    try:
        assert not policy.adaptive and policy.adapt() == 1 and policy.adapt() == 1
    finally:
        torch.set_num_threads(before)


def test_the_probe_sees_another_busy_process():
    probe = LoadProbe()
    time.sleep(0.5)
    before = probe.sample()  # whatever else the machine runs now
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        probe.sample()
        time.sleep(1.0)
        during = probe.sample()
    finally:
        busy.kill()
        busy.wait()
    assert before is not None and during is not None
    assert during.others > before.others + 0.4 and during.others < 1.6 + before.others  # about one more core


SPY = """
import os, sys
import stars_core.cli as cli

def spy(args):
    import torch
    from stars_core import threads
    threads.adapt()  # what training and segmentation do between steps and tiles
    print(os.environ.get("GOMP_SPINCOUNT"), torch.get_num_threads(), file=sys.stderr)
    return 0

cli.model.HANDLERS["info"] = spy  # the handler `stars info` dispatches to
assert "torch" not in sys.modules, "stars_core.cli imported torch"
sys.exit(cli.main(sys.argv[1:]))
"""


def _cli_env(extra_env, *args):
    import os

    env = {k: v for k, v in os.environ.items() if k not in threads.USER_SETTINGS}
    env.update(extra_env)
    out = subprocess.run([sys.executable, "-c", SPY, *args, "info", "x.stars"], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    spin, count = out.stderr.strip().splitlines()[-1].split()
    return spin, int(count)


def test_the_command_line_sets_the_policy_before_torch_is_used():
    spin, count = _cli_env({})
    assert spin == "None" and 1 <= count <= threads.available_cores()  # adapts the count, sets no OpenMP variable


def test_the_users_own_settings_win():
    assert _cli_env({"GOMP_SPINCOUNT": "500"})[0] == "500"  # kept as given
    assert _cli_env({"OMP_NUM_THREADS": "1"}) == ("None", 1)
    assert _cli_env({}, "--threads", "1")[1] == 1
