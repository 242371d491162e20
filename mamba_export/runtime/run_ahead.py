"""Greedy generation that reads each step's tokens while the next step runs.

ONNX Runtime returns from a run on CUDA only when the GPU has finished it (a CUDA graph
replay synchronises its stream), so whatever the host does between two decode steps is
time the GPU waits: the copy of the chosen tokens to the host, the end-of-text check,
streaming, the loop itself. At batch 32 on the H200 that was 20 to 30 us of a 0.65 ms token
(``results/gpu/2026-12-02-last-argmax/decode_ab.json``, the loop columns). An export whose
graph chooses its own tokens (``next_tokens``, bound to the buffer the next step reads)
needs nothing from the host to take the next step. So the main thread starts each step as
soon as the one before returns, and a reader thread copies and handles the previous step's
tokens meanwhile (onnxruntime releases the GIL while it runs). ``RuntimeOptions(overlap_token_reads=True)``
turns it on; it stays off by default until a GPU round has timed it against the reads between steps
(``scripts/bench_e2e.py --overlap-reads``).

Safety: the decoder's two token buffers alternate, so step k writes the buffer that step
k - 2 wrote; the main thread starts step k + 1 only after the reader is done with step
k - 1's tokens, and step k only reads the buffer the reader is copying. Rows that finish keep
being fed their own tokens on the device; their output is the pad token as before, and rows
never mix, so every other row's tokens are the same. When every row has finished, at most one
step more than needed has run.
"""

from __future__ import annotations

import queue
import threading


class _Shared:
    """What the reader tells the main thread: stop (every row finished, or an error) and the error."""

    def __init__(self):
        self.stop = False
        self.error: BaseException | None = None


def run_ahead(decoder, count: int, take) -> None:
    """Greedy decoding of ``count`` tokens a row after the decoder's prefill.

    ``decoder``: ``tokens_buffer()`` (the buffer holding the last call's tokens), ``advance()``
    (one decode step on the device's own tokens; returns the buffer of its tokens) and
    ``read(buffer)`` (a (batch,) host copy). ``take(tokens)`` gets each step's tokens in order,
    the prefill's first, on the reader thread; it returns True to stop. An exception in
    ``take`` or in a step stops the loop and is raised here once the reader has finished."""
    requests, done = queue.SimpleQueue(), queue.SimpleQueue()
    shared = _Shared()

    def reader():
        while (buffer := requests.get()) is not None:
            try:
                if not shared.stop and take(decoder.read(buffer)):
                    shared.stop = True
            except BaseException as error:  # handed to the main thread, raised there
                shared.error, shared.stop = error, True
            done.put(None)

    thread = threading.Thread(target=reader, name="mamba-export-token-reader", daemon=True)
    thread.start()
    try:
        requests.put(decoder.tokens_buffer())
        for _ in range(count - 1):
            buffer = decoder.advance()
            done.get()  # the reader is done with the previous step's tokens: their buffer may be written next
            if shared.stop:
                break
            requests.put(buffer)
    except BaseException:
        shared.stop = True  # the reads still queued are skipped
        raise
    finally:
        requests.put(None)
        thread.join()
    if shared.error is not None:
        raise shared.error
