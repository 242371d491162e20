"""A small progress display on stderr for the slow steps of an export.

Loading a large checkpoint, tracing and saving take minutes on big models; each
step prints its name when it starts and its duration when it ends (with a live
elapsed-time counter on a terminal). Disabled, it prints nothing, so library
callers and tests stay quiet.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time


class Progress:
    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr

    def note(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    @contextlib.contextmanager
    def step(self, label: str):
        if not self.enabled:
            yield
            return
        start = time.monotonic()
        live = self.stream.isatty()
        stop = threading.Event()
        ticker = None
        if live:
            ticker = threading.Thread(target=self._tick, args=(label, start, stop), daemon=True)
            ticker.start()
        else:
            print(f"{label} ...", file=self.stream, flush=True)
        try:
            yield
        except BaseException:
            self._finish(label, start, stop, ticker, "failed")
            raise
        self._finish(label, start, stop, ticker, "done")

    def _finish(self, label, start, stop, ticker, outcome):
        stop.set()
        if ticker is not None:
            ticker.join()
            print("\r\033[K", end="", file=self.stream)
        print(f"{label}: {outcome} in {time.monotonic() - start:.1f}s", file=self.stream, flush=True)

    def _tick(self, label, start, stop):
        while not stop.wait(0.5):
            print(f"\r{label} ... {time.monotonic() - start:.0f}s", end="", file=self.stream, flush=True)
