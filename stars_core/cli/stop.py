"""Ctrl-C and SIGTERM for the `stars` commands: one `Stop` the commands poll."""
from __future__ import annotations

import signal
import sys
import threading


class Stop:
    """Ctrl-C and SIGTERM (sent by `timeout`, batch schedulers, a closing terminal). For commands that
    poll it (train, segment, evaluate) the first signal asks the job to stop cleanly: training writes
    a resumable model file, segmentation and evaluation leave no partial output. A second signal, or
    any signal during other commands, interrupts at once (temporary files are still removed)."""

    def __init__(self):
        self.requested = False
        self.polled = False

    def __call__(self) -> bool:
        return self.requested

    def handle(self, signum, frame) -> None:
        if self.requested or not self.polled:
            raise KeyboardInterrupt
        self.requested = True
        print(f"stars: {signal.Signals(signum).name} received, stopping cleanly (send it again to stop at once)",
              file=sys.stderr)

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.handle)


STOP = Stop()
