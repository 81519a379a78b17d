"""The old home of `stars sample` and `stars assess`' command line, now `stars_core.cli.accuracy`: the same module object,
kept so scripts that import it keep working."""
import sys

from ..cli import accuracy as _module

sys.modules[__name__] = _module
