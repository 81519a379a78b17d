"""The errors every front end translates, at the bottom of stars_core: it imports nothing of
stars_core (and no PyTorch), so any module, and code that never loads PyTorch, can raise and catch them.

Errors, and how the command line and QGIS report them (each once, in one place):
    InputError     bad input or settings; the message names the problem and the fix (exit 2);
    TrainingError  training could not go on (e.g. the loss became NaN); the message says which
                   model file is kept (exit 1);
    Cancelled      the user cancelled (Ctrl-C, SIGTERM, QGIS's cancel button); the message says
                   what was kept (exit 130);
    OutputError    an output could not be written (a full disk): the message names the place (exit 2).
InputError is a ValueError, so code that catches ValueError keeps working.
"""
from __future__ import annotations


class StarsError(Exception):
    """Base of the errors a front end shows as one line."""


class InputError(StarsError, ValueError):
    """An input or a setting is wrong; nothing was written."""


class TrainingError(StarsError, RuntimeError):
    """Training cannot go on; the last good model file is kept."""


class Cancelled(StarsError):
    """The user cancelled; no partial output is left (a training run keeps a resumable model)."""


class OutputError(StarsError, OSError):
    """An output could not be written whole (e.g. the disk is full); its temporary file is removed."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()
