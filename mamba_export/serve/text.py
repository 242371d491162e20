"""Turning a request's tokens into text as they arrive, and stopping at a stop string.

Decoding token by token is wrong for byte-level tokenizers (one character can span
tokens), so the whole completion is decoded each time and only the new suffix is
released; text that ends in an incomplete character, or that could still become a stop
string, is held back until the next token settles it. Without a tokenizer the text
stays empty and clients read ``token_ids``.
"""

from __future__ import annotations

REPLACEMENT = "\ufffd"  # what a decoder prints for an incomplete UTF-8 sequence


class CompletionText:
    """Feed tokens with :meth:`add`; read the released text deltas and whether a stop string was met."""

    def __init__(self, tokenizer, stop: tuple = ()):
        self.tokenizer = tokenizer
        self.stop = stop
        self.token_ids: list = []
        self.released = ""  # text already handed out
        self.stopped = False

    def _decoded(self) -> str:
        return self.tokenizer.decode(self.token_ids) if self.tokenizer is not None else ""

    def add(self, token: int) -> str:
        """Take one token; returns the text it releases (may be empty)."""
        self.token_ids.append(token)
        text = self._decoded()
        for stop in self.stop:
            at = text.find(stop)
            if at >= 0:
                self.stopped = True
                return self._release(text[:at])
        if text.endswith(REPLACEMENT):
            return ""
        hold = max((n for s in self.stop for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
        return self._release(text[:len(text) - hold])

    def finish(self) -> str:
        """The text still held back once no more tokens come (not after a stop string)."""
        return "" if self.stopped else self._release(self._decoded())

    def _release(self, text: str) -> str:
        if not text.startswith(self.released):  # the decoder changed earlier text: release nothing new
            return ""
        delta, self.released = text[len(self.released):], text
        return delta
