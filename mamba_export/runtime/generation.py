"""The generation loop: read the prompt once, then one token per call.

The loop only talks to a *decoder* with three methods: ``prefill(input_ids,
attention_mask)`` reads the prompt, ``next_tokens(settings, rng)`` chooses one token
per row from the last call's logits, and ``step(tokens)`` feeds them; the decoder
keeps the states and the logits itself. :class:`HostDecoder` carries them as NumPy
arrays through :meth:`ORTMambaModel.__call__`; on CUDA with IO binding the decoder of
``io_binding.py`` keeps them on the device and picks greedy tokens there. Everything
else (settings, EOS and padding) is shared, so the CPU tests cover it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mamba_export.errors import MambaExportError
from mamba_export.runtime import sampling
from mamba_export.runtime.inputs import check_left_padded


def _token_ids(value) -> tuple:
    if value is None:
        return ()
    values = [value] if np.isscalar(value) else list(value)
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class GenerationSettings:
    """Checked generation arguments (transformers' names); eos_token_ids may be empty."""

    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_k: int
    top_p: float
    eos_token_ids: tuple
    pad_token_id: int
    seed: int | None

    @classmethod
    def create(cls, max_new_tokens=20, do_sample=False, temperature=1.0, top_k=0, top_p=1.0,
               eos_token_id=None, pad_token_id=None, seed=None) -> GenerationSettings:
        eos = _token_ids(eos_token_id)
        if pad_token_id is None:
            # As transformers does: without a pad token, finished rows repeat the EOS token.
            pad_token_id = eos[0] if eos else 0
        settings = cls(int(max_new_tokens), bool(do_sample), float(temperature), int(top_k), float(top_p),
                       eos, int(pad_token_id), seed)
        settings.check()
        return settings

    def check(self) -> None:
        if self.max_new_tokens < 0:
            raise MambaExportError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if self.do_sample and not self.temperature > 0:
            raise MambaExportError(f"temperature must be > 0 when sampling, got {self.temperature}")
        if self.top_k < 0:
            raise MambaExportError(f"top_k must be >= 0 (0 keeps every token), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise MambaExportError(f"top_p must be in (0, 1], got {self.top_p}")

    def choose(self, logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """logits: (batch, vocab) -> next tokens (batch,)."""
        if not self.do_sample:
            return sampling.greedy(np.asarray(logits, dtype=np.float32))
        return sampling.sample(logits, self.temperature, self.top_k, self.top_p, rng)


class HostDecoder:
    """Carries the states as host arrays through ``model.__call__`` (CPU, or CUDA without IO binding)."""

    def __init__(self, model):
        self.model = model
        self.states = None
        self.logits = None  # (batch, vocab) float32 of the last position

    def _keep(self, output) -> None:
        self.states = output.states
        self.logits = np.asarray(output.logits[:, -1, :], dtype=np.float32)

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> None:
        self._keep(self.model(input_ids, attention_mask, None))

    def next_tokens(self, settings: GenerationSettings, rng: np.random.Generator) -> np.ndarray:
        return settings.choose(self.logits, rng)

    def step(self, tokens: np.ndarray) -> None:
        ids = tokens.reshape(-1, 1).astype(np.int64)
        # Decode steps always see a real token (finished rows get padding ids, not masked positions).
        self._keep(self.model(ids, np.ones_like(ids), self.states))


def keeps_states_on_device(options) -> bool:
    """Whether decoding keeps the states on the device (provider "cuda" with IO binding)."""
    return options.provider == "cuda" and options.io_binding


def make_decoder(model):
    """The decoder for ``model``'s provider and options."""
    if keeps_states_on_device(model.options):
        from mamba_export.runtime.io_binding import DeviceDecoder

        return DeviceDecoder.for_model(model)
    return HostDecoder(model)


class _Tokens:
    """The chosen tokens, each step's taken in order: finished rows get the pad token, streaming
    sees each step's tokens, and the end-of-text check says when every row has finished."""

    def __init__(self, settings: GenerationSettings, batch: int, on_tokens):
        self.settings = settings
        self.on_tokens = on_tokens
        self.eos = np.asarray(settings.eos_token_ids, dtype=np.int64)
        self.finished = np.zeros(batch, dtype=bool)
        self.any_finished = False  # the per-token host work is part of each token's time on a GPU: skip what is moot
        self.chosen = []

    def take(self, tokens: np.ndarray) -> bool:
        """Records one step's (batch,) tokens; True once every row has finished."""
        if self.any_finished:
            tokens = np.where(self.finished, self.settings.pad_token_id, tokens)
        self.chosen.append(tokens)
        if self.on_tokens is not None:
            self.on_tokens(tokens)
        if self.eos.size:
            self.finished |= np.isin(tokens, self.eos)
            self.any_finished = bool(self.finished.any())
            return self.any_finished and bool(self.finished.all())
        return False


def generate(decoder, input_ids: np.ndarray, attention_mask: np.ndarray,
             settings: GenerationSettings, on_tokens=None) -> np.ndarray:
    """input_ids, attention_mask: (batch, prompt) int64, checked; returns (batch, prompt + new).

    on_tokens: called with each step's (batch,) tokens in order, as soon as the host has them
    (streaming). A decoder whose graph chooses its own greedy tokens (``read_every``, the device
    decoder's token ring) runs several steps between two reads of them: then on_tokens sees a
    step's tokens up to that many steps late, and steps run past the end of text are dropped."""
    check_left_padded(attention_mask)
    if settings.max_new_tokens == 0:
        return input_ids.copy()
    rng = np.random.default_rng(settings.seed)
    tokens = _Tokens(settings, input_ids.shape[0], on_tokens)
    decoder.prefill(input_ids, attention_mask)
    read_every = getattr(decoder, "read_every", None)
    every = read_every(settings) if read_every is not None else 1
    if every > 1:
        _read_in_groups(decoder, settings.max_new_tokens, every, tokens.take)
    else:
        for index in range(settings.max_new_tokens):
            if tokens.take(decoder.next_tokens(settings, rng)) or index == settings.max_new_tokens - 1:
                break
            decoder.step(tokens.chosen[-1])
    return np.concatenate([input_ids, np.stack(tokens.chosen, axis=1)], axis=1)


def _read_in_groups(decoder, count: int, every: int, take) -> None:
    """Greedy decoding of ``count`` tokens a row after the prefill, on a decoder that feeds the device's
    own tokens to the next step (``advance``) and reads up to ``every`` steps' tokens in one copy
    (``tokens(first, end)``). ``take`` gets each step's tokens in order and returns True to stop.
    Rows that finish keep being fed their own tokens on the device (take pads their output), and
    rows never mix, so the other rows' tokens are those of reading after every step."""
    read = 0  # steps whose tokens the host has taken (the prefill's is step 0)
    for chosen in range(1, count + 1):  # chosen: steps whose tokens are on the device
        if chosen - read == every or chosen == count:
            for row in decoder.tokens(read, chosen):
                if take(row):
                    return
            read = chosen
        if chosen < count:
            decoder.advance()


def warm_up(decoder, max_length: int) -> list:
    """Read one prompt of every multiple of ``decoder.bucket`` up to ``max_length`` (rounded up),
    longest first, and choose its token: every shape such prompts meet is then seen. Returns the
    lengths read."""
    if max_length < 1:
        raise MambaExportError(f"warm-up length must be >= 1, got {max_length}")
    settings = GenerationSettings.create(max_new_tokens=1, eos_token_id=[])
    bucket = decoder.bucket
    lengths = list(range(-(-max_length // bucket) * bucket, 0, -bucket))
    for length in lengths:
        ids = np.zeros((1, length), np.int64)
        generate(decoder, ids, np.ones_like(ids), settings)
    return lengths
