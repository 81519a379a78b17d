"""Import paths of 0.3 and earlier, still served in 0.4 with a DeprecationWarning and removed in 0.5.

A module moved by the regrouping is imported under its old name as the very same module object (so
its names, and any patch of them, are shared); `stars_core.runtime` gathers the errors and device
helpers it used to hold. The project's own code, tests, benches and docs use the new names only.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

REMOVED_IN = "0.5.0"
MOVED = {
    **{f"stars_core.{m}": f"stars_core.training.{m}"
       for m in ("train", "data", "chips", "losses", "finetune", "recalibrate", "diagnostics")},
    "stars_core.infer": "stars_core.segmentation.infer",
    "stars_core.sheets": "stars_core.segmentation.sheets",
    "stars_core.fast_runtime": "stars_core.engines.auto",
    "stars_core.onnx_export": "stars_core.engines.onnx_export",
    "stars_core.onnx_model": "stars_core.engines.onnx_model",
    "stars_core.torch_runner": "stars_core.engines.torch_runner",
    "stars_core.accuracy.cli": "stars_core.cli.accuracy",
    "stars_core.weights.cli": "stars_core.cli.weights",
}
GATHERED = {"stars_core.runtime": {"stars_core.errors": ("Cancelled", "InputError", "StarsError", "TrainingError"),
                                   "stars_core.devices": ("DEVICES", "autocast", "check_device", "resolve_device")}}


class OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names, warns once per name, and hands back the module's new home."""

    def find_spec(self, name, path=None, target=None):
        if name in MOVED or name in GATHERED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        new = MOVED.get(spec.name) or " and ".join(GATHERED[spec.name])
        warnings.warn(f"{spec.name} is now {new}; the old name is removed in {REMOVED_IN}", DeprecationWarning,
                      stacklevel=_caller_level())
        if spec.name in MOVED:
            return importlib.import_module(MOVED[spec.name])
        module = types.ModuleType(spec.name, f"The old home of names now in {new}.")
        for home, names in GATHERED[spec.name].items():
            source = importlib.import_module(home)
            for name in names:
                setattr(module, name, getattr(source, name))
        return module

    def exec_module(self, module) -> None:
        """Nothing to run: the module was imported under its new name."""


def _caller_level() -> int:
    """The stack level of the first frame outside the import machinery (the user's import line)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_code.co_filename.startswith("<frozen") or frame.f_globals.get("__name__") == __name__):
        frame, level = frame.f_back, level + 1
    return level


def install() -> None:
    if not any(isinstance(f, OldNames) for f in sys.meta_path):
        sys.meta_path.append(OldNames())
