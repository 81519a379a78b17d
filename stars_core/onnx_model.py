"""The old name of `stars_core.engines.onnx_model`, kept so scripts that import it keep working: the same
module object, so its names (and any patch of them) are shared."""
import sys

from .engines import onnx_model as _module

sys.modules[__name__] = _module
