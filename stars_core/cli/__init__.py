"""The `stars` command line: one module per group of commands, each adding its parsers and naming
its handlers (`add_parsers`, `HANDLERS`):

    train     demo-scene, train                       distill   distill
    segment   segment, segment-sheets, make-sheets
    model     info, export, recalibrate               evaluate  evaluate, evaluate-chips
    products  clean, polygons                         change    segment-series, filter-series, change
    accuracy  sample, assess                          weights   weights list|download
    fetch     fetch pair

`stars_core.cli:main` is the entry point; `common` holds what several groups share and `stop` the
Ctrl-C/SIGTERM handling the long commands poll.
"""
from __future__ import annotations

import argparse
import errno
import sys

from ..errors import Cancelled, StarsError, TrainingError
from . import accuracy, change, distill, evaluate, fetch, model, products, segment, train, weights
from .common import threads_value
from .model import cmd_info, describe  # noqa: F401 (the documented names of the old module)
from .stop import STOP, Stop  # noqa: F401
from .train import train_settings  # noqa: F401

GROUPS = (train, distill, segment, evaluate, model, products, change, accuracy, weights, fetch)
DISK_ERRORS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EROFS, errno.EACCES)
POLLED = ("train", "segment", "evaluate", "evaluate-chips", "segment-sheets", "sample", "assess", "clean", "polygons",
          "change", "segment-series", "filter-series", "distill", "fetch")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="stars", description="STARS: land cover from SAR (or DSM) alone, "
                                 "trained on SAR + optical pairs.")
    ap.add_argument("--threads", default="auto", metavar="N|auto",
                    help="CPU threads for PyTorch (default auto: as many as there are idle cores, re-checked "
                    "every few seconds, so a busy machine does not slow training 10-40x; OMP_NUM_THREADS "
                    "fixes the count too)")
    sub = ap.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return ap


def _handlers() -> dict:
    handlers = {}
    for group in GROUPS:
        takes_cancel = group is accuracy  # sample and assess take the stop as an argument
        handlers.update({name: (lambda a, run=run: run(a, STOP)) if takes_cancel else run
                         for name, run in group.HANDLERS.items()})
    return handlers


# Commands whose positional files may also come after options (`segment-series --dates t.csv a.tif`).
INTERMIXED = {"segment-series": "rasters"}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    field = INTERMIXED.get(args.command)
    if extra and field is not None and not any(e.startswith("-") for e in extra):
        setattr(args, field, [*getattr(args, field), *extra])
        return args
    return parser.parse_args(argv)  # argparse's own message for anything else


def _disk_message(exc: OSError) -> str:
    """A full disk, a read-only place or a missing permission, in one line with what to do."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in DISK_ERRORS[:2]:
        return f"the disk is full{where}: free some space or choose another output place"
    return f"{exc.strerror or exc}{where}; choose another output place"


def main(argv: list[str] | None = None) -> int:
    from .. import threads

    threads.prepare_environment()  # before torch is imported
    args = _parse(argv)
    STOP.__init__()
    STOP.polled = args.command in POLLED
    STOP.install()
    try:
        threads.configure(threads_value(args.threads), say=lambda m: print(f"stars: {m}", file=sys.stderr))
        return _handlers()[args.command](args)
    except Cancelled as exc:
        print(f"stars {args.command}: {exc}", file=sys.stderr)
        return 130
    except TrainingError as exc:
        print(f"stars {args.command}: training failed: {exc}", file=sys.stderr)
        return 1
    except (StarsError, ValueError, FileNotFoundError) as exc:
        print(f"stars {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stars {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        print(f"stars {args.command}: error: {_disk_message(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `stars weights list | head`: the reader stopped, nothing is wrong
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
