"""Ctrl-C and SIGTERM during a run: the first stops it at the end of the step (it saves), a second quits at once.

Shared by the CLI and the app's training process (`worker`)."""

from __future__ import annotations

import signal
import sys
import threading


class StopOnSignal:
    """The first Ctrl-C or SIGTERM stops at the end of the step and saves; a second one quits at once."""

    def __init__(self, stop: threading.Event):
        self.stop, self.signum = stop, 0

    def __enter__(self):
        self.previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, signum, frame) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.signum = signum
        self.stop.set()
        print(
            f"\n{signal.Signals(signum).name}: stopping after this step and saving "
            "(press Ctrl-C again to quit at once).",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
