import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "terramind"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def seed():
    torch.manual_seed(0)
    return 0


@pytest.fixture(scope="session")
def demo_scene(tmp_path_factory):
    """One generated 256 x 256 demo scene for the whole session (tests must not modify it)."""
    from stars_core.demo_scene import make_demo_scene

    return make_demo_scene(tmp_path_factory.mktemp("demo"), size=256, seed=1, sheets=(2, 2))
