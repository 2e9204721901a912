"""SIGTERM/SIGINT during training: stop after the current step, save, exit 0.

A Python signal handler cannot run while the main thread is inside a traced call
(an inner loop can last minutes), so the C-level handler's wakeup byte is read by a
watcher thread instead: it sets `flag` (a tf.Variable the traced loop reads before
every step) at once. The first signal stops the loop after the step in progress;
a second one ends the process at once, without a save, leaving the last complete
checkpoint as it is.
"""

from __future__ import annotations

import os
import signal
import socket
import threading

import tensorflow as tf
from absl import logging

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Context manager that turns SIGTERM/SIGINT into `flag.assign(1)`.

    Args:
      flag: an int32 tf.Variable the inner loop polls (tfaudio.training.step).
    """

    def __init__(self, flag: tf.Variable):
        self.flag = flag
        self.received: str | None = None
        self._previous: dict = {}
        self._previous_fd = -1
        self._reader = self._writer = None

    def _watch(self):
        while True:
            try:
                data = self._reader.recv(1)
            except OSError:
                return
            if not data:
                return
            if data[0] not in SIGNALS:
                continue
            name = signal.Signals(data[0]).name
            if self.received:
                logging.warning("second %s: exiting at once without a checkpoint", name)
                os._exit(128 + data[0])
            self.received = name
            self.flag.assign(1)
            logging.warning("%s: stopping after the current step to save a checkpoint", name)

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self  # signals can only be caught on the main thread: leave them alone
        self._reader, self._writer = socket.socketpair()
        self._writer.setblocking(False)
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, lambda *_: None)  # the watcher thread acts
            signal.siginterrupt(sig, False)  # restart interrupted system calls in TensorFlow's threads
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        threading.Thread(target=self._watch, name="stop-signals", daemon=True).start()
        return self

    def __exit__(self, *exc):
        if self._writer is None:
            return
        signal.set_wakeup_fd(self._previous_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._writer.close()
        self._reader.shutdown(socket.SHUT_RDWR)
        self._reader.close()
