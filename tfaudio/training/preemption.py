"""SIGTERM/SIGINT during training: save after the current inner loop, then return."""

from __future__ import annotations

import signal

from absl import logging


class StopSignals:
    """Records SIGTERM/SIGINT so the loop can save and return after the current inner loop
    (a Python handler cannot run inside a traced call); a second signal interrupts at once."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.received:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        logging.warning("%s: saving a checkpoint after the current loop", self.received)

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
