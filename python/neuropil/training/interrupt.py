"""Ctrl-C during fit: the first stops training after the current batch (the callbacks'
end hooks run and the model is left usable), a second one stops at once.

The handler is installed only when fit runs in the main thread (Python delivers
signals there, and only there may handlers be set) and the previous handler is
restored when fit returns.
"""
from __future__ import annotations

import signal
import sys
import threading


class InterruptGuard:
    """Context manager: ``requested`` turns True on the first SIGINT."""

    def __init__(self, announce: bool = True):
        self.requested = False
        self._announce = announce
        self._previous = None
        self._installed = False

    def _handle(self, signum, frame):
        if self.requested:  # the second Ctrl-C: stop now, as Python would
            raise KeyboardInterrupt
        self.requested = True
        if self._announce:
            sys.stderr.write("\nneuropil.fit: interrupted; stopping after the current batch "
                             "(press Ctrl-C again to stop at once)\n")
            sys.stderr.flush()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            try:
                self._previous = signal.signal(signal.SIGINT, self._handle)
                self._installed = True
            except (ValueError, OSError):  # e.g. an embedded interpreter without signals
                self._installed = False
        return self

    def __exit__(self, *exc):
        if self._installed:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None
                          else signal.default_int_handler)
            self._installed = False
        return False
