"""The old home of `stars weights`' command line, now `stars_core.cli.weights`: the same module object,
kept so scripts that import it keep working."""
import sys

from ..cli import weights as _module

sys.modules[__name__] = _module
