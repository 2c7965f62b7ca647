"""Stop requests from Ctrl-C (SIGINT) and SIGTERM, raised where the study can stop.

Python runs a signal handler between two bytecodes of the main thread. When
that moment falls inside a weakref callback or a `__del__` method, the
KeyboardInterrupt the handler raises is printed as "Exception ignored" and
lost, and the run goes on. The handler therefore records the request before
raising, and `raise_if_requested` raises it again at the next training batch
(through a Keras callback) or stage boundary.
"""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager

_requested: int | None = None


class StopRequested(KeyboardInterrupt):
    """The user or a scheduler asked the study to stop (`signum` is the signal number)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handle(signum, frame):
    global _requested
    _requested = signum
    raise StopRequested(signum)


def raise_if_requested() -> None:
    """Raise StopRequested if a stop signal arrived and its first raise was lost."""
    if _requested is not None:
        raise StopRequested(_requested)


@contextmanager
def stop_on_signals():
    """Turn SIGINT and SIGTERM into StopRequested while the block runs."""
    global _requested
    _requested = None
    previous = {signum: signal.signal(signum, _handle)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    previous_hook = sys.unraisablehook

    def quiet_lost_stop(unraisable):
        # A StopRequested lost in a weakref callback is raised again later,
        # so its "Exception ignored" traceback would only alarm the user.
        if not isinstance(unraisable.exc_value, StopRequested):
            previous_hook(unraisable)

    sys.unraisablehook = quiet_lost_stop
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = previous_hook
        _requested = None
