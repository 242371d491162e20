"""The model classes a user holds: an exported folder behind a transformers-like call.

``ORTMambaForCausalLM`` returns logits and generates; ``ORTMambaModel`` returns
the last hidden state. Both take ``(input_ids, attention_mask=None, states=None)``
and return the states after the last token, which the next call takes to go on
with the same sequences (a long prompt in chunks, or decoding).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mamba_export import graph_io
from mamba_export.errors import ExportFolderError, MambaExportError
from mamba_export.options import RuntimeOptions
from mamba_export.runtime.folder import ExportFolder, load_export_folder
from mamba_export.runtime.inputs import check_attention_mask, check_input_ids
from mamba_export.runtime.runner import GraphRunner, state_spec
from mamba_export.runtime.session import graph_run_options, open_session, providers_for
from mamba_export.runtime.states import MambaStates, check_states

log = logging.getLogger(__name__)


@dataclass
class MambaModelOutput:
    """last_hidden_state: (batch, sequence, hidden) in the export dtype; states after the last token."""

    last_hidden_state: np.ndarray
    states: MambaStates


@dataclass
class MambaCausalLMOutput:
    """logits: (batch, sequence, vocab) in the export dtype ((batch, 1, vocab) for exports with
    logits="last"); states after the last token."""

    logits: np.ndarray
    states: MambaStates


def resolve_options(provider: str | None, options: RuntimeOptions | None) -> RuntimeOptions:
    """``options`` with ``provider`` applied; a provider that contradicts ``options`` is an error."""
    if options is None:
        return RuntimeOptions(provider=provider or "cpu")
    if provider is not None and provider != options.provider:
        raise MambaExportError(f"provider={provider!r} contradicts options.provider={options.provider!r}; "
                               "give one of them")
    return options


class ORTMambaModel:
    """An exported base model (``MambaModel``, ``FalconMambaModel``) on ONNX Runtime: the
    embedding/feature path, returning ``last_hidden_state`` (see :meth:`from_pretrained`)."""

    head_output = graph_io.LAST_HIDDEN_STATE
    output_class = MambaModelOutput

    def __init__(self, folder: ExportFolder, options: RuntimeOptions):
        if folder.head_output != self.head_output:
            right = "ORTMambaForCausalLM" if folder.is_causal_lm else "ORTMambaModel"
            raise ExportFolderError(f"{folder.path} holds a graph that outputs {folder.head_output}, not "
                                    f"{self.head_output}; load it with {right}")
        self.folder = folder
        self.options, self.session = open_session(folder, options)
        self.state_spec = state_spec(folder, self.session)
        self.runner = GraphRunner(self.session, folder, self.state_spec, graph_run_options(self.options))
        # Device buffers (and captured CUDA graphs) per batch size, kept across generate() calls;
        # one generate() at a time may use them.
        self.decode_cache: dict = {}
        # The same per batch size for the serving scheduler's running batch (serve/device_batch.py),
        # with graph ids of its own; one scheduler at a time may use them.
        self.batch_cache: dict = {}
        self._decode_lock = threading.Lock()
        self._token_head = None

    @classmethod
    def from_pretrained(cls, path, provider: str | None = None, options: RuntimeOptions | None = None):
        """Load the folder written by ``mamba-export export``.

        provider: "cpu" (default) or "cuda"; ``options`` (RuntimeOptions) sets the rest.
        Raises ExportFolderError (incomplete folder), CustomOpsNotFoundError (library not
        built) or BackendUnavailableError (CUDA requested but not usable).
        """
        return cls(load_export_folder(path), resolve_options(provider, options))

    @property
    def token_head(self):
        """The small session that picks tokens next to the logits (token_head.py), built on first use."""
        if self._token_head is None:
            from mamba_export.runtime.token_head import TokenHead

            self._token_head = TokenHead(self.runner.head_dtype, providers_for(self.options, head=True))
        return self._token_head

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def config(self) -> dict:
        """The model's config.json."""
        return self.folder.config

    @property
    def info(self) -> dict:
        """The folder's export_info.json."""
        return self.folder.info

    @property
    def provider(self) -> str:
        return self.options.provider

    def zero_states(self, batch: int) -> MambaStates:
        """The states of a fresh prompt for ``batch`` rows."""
        return MambaStates.zeros(self.state_spec, batch)

    def feeds(self, input_ids, attention_mask=None, states=None) -> dict:
        """Checked graph inputs: int64 ids and mask, and the past states (zeros when None)."""
        ids = check_input_ids(input_ids, int(self.info["vocab_size"]) if self.folder.is_causal_lm else None)
        mask = check_attention_mask(attention_mask, ids.shape)
        batch = ids.shape[0]
        checked = self.zero_states(batch) if states is None else check_states(states, self.state_spec, batch)
        return {graph_io.INPUT_IDS: ids, graph_io.ATTENTION_MASK: mask, **checked.as_pasts()}

    def __call__(self, input_ids, attention_mask=None, states=None):
        """Run the graph once.

        input_ids: (batch, sequence) integers; attention_mask: (batch, sequence) of 0/1
        (ones when None); states: the ``.states`` of an earlier call on the same rows
        (zeros when None). Raises InputShapeError for inputs that break these shapes.
        """
        outputs = self.runner.run(self.feeds(input_ids, attention_mask, states))
        states_out = MambaStates.from_presents(outputs, self.state_spec.num_layers)
        return self.output_class(outputs[self.runner.head_output], states_out)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, backend={self.info['backend']!r}, "
                f"dtype={self.info['dtype']!r}, provider={self.provider!r})")


class ORTMambaForCausalLM(ORTMambaModel):
    """An exported causal LM (``MambaForCausalLM``, ``FalconMambaForCausalLM``) on ONNX Runtime,
    with :meth:`generate`.

    ``generate`` takes transformers' keyword names (``max_new_tokens``, ``do_sample``,
    ``temperature``, ``top_k``, ``top_p``, ``eos_token_id``, ``pad_token_id``) plus
    ``seed``. It runs its own loop: transformers 5.x's ``GenerationMixin`` (and so
    ``pipeline("text-generation")``) wants a ``PreTrainedModel`` and drives it through a
    ``DynamicCache`` of torch tensors in transformers' own state layout, so an adapter
    would copy every layer's state between the session and torch on every token and
    depend on cache internals that change between 5.x releases.
    Differences from transformers: ``top_k`` defaults to 0 (off), sampling uses NumPy's
    generator seeded by ``seed``, and ``eos_token_id=[]`` turns stopping off.
    """

    head_output = graph_io.LOGITS
    output_class = MambaCausalLMOutput

    def __init__(self, folder: ExportFolder, options: RuntimeOptions):
        super().__init__(folder, options)
        length = self.options.warm_up_to(self.info["backend"])
        if length:
            self.warm_up(length)

    def warm_up(self, max_length: int) -> float:
        """Read one prompt of every prefill bucket length up to ``max_length``, longest first, and
        choose its token; returns the seconds taken.

        On CUDA each matrix-product shape costs milliseconds the first time it runs, and a
        prompt's shapes follow its padded length: after this, ``generate()`` meets no new shape
        for a prompt whose batch x padded length is at most ``max_length``. The load does it
        (``RuntimeOptions.warm_up_length``); call it again after raising the limit."""
        from mamba_export.runtime.generation import keeps_states_on_device, make_decoder, warm_up

        if not keeps_states_on_device(self.options):
            raise MambaExportError("warm_up() applies to provider='cuda' with io_binding=True")
        start = time.perf_counter()
        with self._decode_lock:
            lengths = warm_up(make_decoder(self), max_length)
        seconds = time.perf_counter() - start
        log.info("read %d prompts of %d to %d tokens in %.2f s (warm-up)", len(lengths), min(lengths),
                 max(lengths), seconds)
        return seconds

    def generate(self, input_ids, attention_mask=None, max_new_tokens: int = 20, do_sample: bool = False,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, eos_token_id=None,
                 pad_token_id=None, seed=None, on_tokens=None) -> np.ndarray:
        """Continue each prompt; returns (batch, prompt + new tokens) int64.

        input_ids: (batch, sequence), left-padded with attention_mask when rows differ in length.
        The prompt is read in one call, then one token per call with the states carried.
        Rows that produced an EOS token go on emitting ``pad_token_id``; generation stops
        early when every row has finished. ``eos_token_id`` / ``pad_token_id`` default to
        the folder's generation_config.json (then config.json); pass ``eos_token_id=[]``
        to never stop early. ``seed`` makes sampling reproducible. ``on_tokens``, if given, is
        called with each step's (batch,) new tokens as they are chosen, to stream them.
        """
        from mamba_export.runtime.generation import GenerationSettings, HostDecoder, generate, make_decoder

        settings = GenerationSettings.create(
            max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k,
            top_p=top_p, eos_token_id=self._default("eos_token_id", eos_token_id),
            pad_token_id=self._default("pad_token_id", pad_token_id), seed=seed)
        ids = check_input_ids(input_ids, int(self.info["vocab_size"]))
        mask = check_attention_mask(attention_mask, ids.shape)
        decoder = make_decoder(self)
        if isinstance(decoder, HostDecoder):  # its states are its own: calls may overlap
            return generate(decoder, ids, mask, settings, on_tokens)
        with self._decode_lock:
            return generate(decoder, ids, mask, settings, on_tokens)

    def _default(self, name: str, value):
        return self.folder.special_token(name) if value is None else value
