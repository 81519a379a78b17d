"""STARS core: the model, losses, data pipeline, training and inference. Never imports QGIS.

`stars_core.config`, `stars_core.errors` and `stars_core.devices` load without PyTorch (the QGIS dialogs read their
defaults from them); the names below load their modules on first use.
"""
from __future__ import annotations

import importlib

from . import old_names

__version__ = "0.4.0"
__all__ = ["LossConfig", "StarsConfig", "build_model", "__version__"]
old_names.install()  # the import paths of 0.3, with a DeprecationWarning until 0.5
_LAZY = {"LossConfig": "config", "StarsConfig": "config", "build_model": "models"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
