"""`python -m stars_core.cli ...`: the `stars` command (torchrun runs it this way)."""
import sys

from . import main

sys.exit(main())
