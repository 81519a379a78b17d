"""The old home of the errors and device helpers, kept so scripts that import them from here keep
working: the errors live in `stars_core.errors`, the device helpers in `stars_core.devices`."""
from .devices import DEVICES, autocast, check_device, resolve_device  # noqa: F401
from .errors import Cancelled, InputError, StarsError, TrainingError  # noqa: F401
