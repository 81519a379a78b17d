"""The thread policy: what it decides for a given load, that the command line sets it before torch
loads, that the user's own settings win, and that the load probe sees another busy process."""
import os
import subprocess
import sys
import time
from pathlib import Path

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


def _process_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or not Path("/proc/stat").is_file(),
                    reason="the probe reads /proc and the test pins processes to a CPU (Linux)")
def test_the_probe_sees_another_busy_process():
    """The probe counts what another process runs on this process's CPUs. Both are pinned to one CPU
    and the probe is compared with the busy process's own CPU time over the same interval, so what
    else the machine runs (other tests, other users) changes both sides alike."""
    mine = os.sched_getaffinity(0)
    cpu = min(mine)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(busy.pid, {cpu})
        os.sched_setaffinity(0, {cpu})
        probe = LoadProbe()  # measures the one CPU this process may now use
        start, ticks = threads._machine_jiffies({cpu}), _process_ticks(busy.pid)
        time.sleep(1.0)
        load = probe.sample()
        end, ticks = threads._machine_jiffies({cpu}), _process_ticks(busy.pid) - ticks
    finally:
        os.sched_setaffinity(0, mine)
        busy.kill()
        busy.wait()
    share = ticks / max(1, end[1] - start[1])  # of that CPU, as the busy process itself counted it
    if share < 0.15:
        pytest.skip(f"other work left the busy process only {share:.2f} of CPU {cpu}: nothing to see")
    assert probe.machine_cores == 1 and load is not None
    assert share - 0.05 < load.others < 1.05, (load.others, share)  # at least the busy process, at most the CPU


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


def test_hold_keeps_the_count_through_a_block_and_restores_the_policy(monkeypatch):
    """While held, the load going up and down changes nothing; after the block the policy adapts again."""
    if threads.available_cores() < 2:
        pytest.skip("needs 2 cores to show a change of count")
    wanted = iter([2] + [1] * 5)  # the load: idle at first, then one core busy
    monkeypatch.setattr(threads, "threads_for", lambda load, cores, reserve=0: next(wanted))
    policy = threads.configure("auto", settle=0)
    policy.interval = 0.0
    try:
        assert threads.current() == 2
        with threads.hold() as count:
            assert count == 2
            assert [threads.adapt() for _ in range(2)] == [2, 2]  # held at 2 although a core is busy now
        assert threads.adapt() == 1  # adapting to the load again after the block
    finally:
        monkeypatch.undo()
        threads.configure("auto", settle=0)


def test_a_second_configure_measures_the_load_since_the_last_check_and_waits_only_what_that_lacks(monkeypatch):
    """A second command in one process (or a second algorithm run in QGIS) shortly after the last
    load check measures the load since that check, over `settle` seconds at least; a check older than
    the policy's interval is not reused: a new measurement, the whole `settle` waited."""
    slept, clock = [], [threads.time.monotonic() + 1e6]  # far past any earlier check of the session

    def sleep(seconds: float) -> None:  # the test's own clock: only a sleep moves it, whatever the machine's load
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.time, "sleep", sleep)
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock[0])
    try:
        first = threads.configure("auto", settle=0.2)
        assert first.adaptive and slept[-1] == pytest.approx(0.2, abs=0.05)
        first.probe.since -= 0.15  # the last check was 0.15 s ago
        second = threads.configure("auto", settle=0.2)
        assert second.probe is first.probe and slept[-1] == pytest.approx(0.05, abs=0.04)
        second.probe.since -= 1.0  # a second ago: the measurement already spans `settle`
        assert threads.configure("auto", settle=0.2).probe is first.probe and slept[-1] == 0.0
        first.probe.since -= 2 * first.interval  # too old to stand for the load now
        third = threads.configure("auto", settle=0.2)
        assert third.probe is not first.probe and slept[-1] == pytest.approx(0.2, abs=0.05)
    finally:
        monkeypatch.undo()
        threads.configure("auto", settle=0)
