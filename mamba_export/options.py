"""The options objects that flow whole from the CLI or a Python caller down.

``ExportOptions`` is built once, passed to ``export()`` and ``validate()`` and
saved in ``export_info.json``; ``RuntimeOptions`` does the same for the runtime.
Both are frozen and check their own values, so a bad value fails at once with a
message that names it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mamba_export.dtypes import DEFAULT_DTYPE, EXPORT_DTYPES
from mamba_export.errors import MambaExportError

BACKENDS = ("custom", "standard")
DTYPES = tuple(EXPORT_DTYPES)
DEVICES = ("cpu", "cuda")
LOGITS_MODES = ("all", "last")
PROVIDERS = ("cpu", "cuda")
DEFAULT_OPSET = 18
# Weight-only quantisation (mamba_export.export.quantize): the method, MatMulNBits' block
# sizes along K and its accuracy levels (0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8 compute).
QUANTIZE_METHODS = ("int4",)
QUANT_BLOCK_SIZES = (32, 64, 128)
DEFAULT_BLOCK_SIZE = 128
ACCURACY_LEVELS = (0, 1, 2, 3, 4)
DEFAULT_ACCURACY_LEVEL = 4
QUANTIZABLE_DTYPES = ("fp32", "fp16")  # MatMulNBits' float types on both providers


def _choose(name: str, value, allowed) -> None:
    if value not in allowed:
        raise MambaExportError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")


@dataclass(frozen=True)
class ExportOptions:
    """How to export: backend, dtype, device, opset, checks and output handling."""

    backend: str = "custom"
    dtype: str = DEFAULT_DTYPE
    device: str = "cpu"
    opset: int = DEFAULT_OPSET
    logits: str = "all"
    validate: bool = True
    force: bool = False
    show_progress: bool = True
    check_lengths: tuple = field(default=(1, 7, 64))
    quantize: str | None = None
    block_size: int = DEFAULT_BLOCK_SIZE
    accuracy_level: int = DEFAULT_ACCURACY_LEVEL
    revision: str | None = None  # hub revision (branch, tag or commit) when the model is a hub id
    adapter: str | None = None  # a PEFT LoRA adapter folder, merged into the weights before export
    # Custom backend: SelectiveScan projects the time step itself (delta_weight, delta_offset), so each
    # layer has no dt_proj MatMul (one node fewer). The standard backend ignores it (its graph keeps
    # the MatMul). Opt-in until measured on the GPU.
    fuse_delta_proj: bool = False
    # Custom backend: every MatMul with a constant weight becomes our Linear op (weight (N, K), the
    # CUDA kernel's own matrix-vector products for decode instead of cuBLAS's;
    # mamba_export.export.linear_products). None: on for a CUDA export of the custom backend that is
    # not quantized (a mamba-130m decode step on the H200: 0.68 -> 0.43 ms), off otherwise (the op's CPU
    # kernel is plain dot products, not timed against ONNX Runtime's MatMul). See ``uses_linear_op``.
    linear_op: bool | None = None
    # The graph also outputs next_tokens (graph_io.NEXT_TOKENS): the argmax of the last position's
    # logits, so that greedy decoding on CUDA picks each token inside the decode step's CUDA graph
    # instead of in a second session (mamba_export.export.next_tokens). True needs a language-model
    # head. None: on for a CUDA export of a model with one (mamba-130m on the H200, through generate():
    # 4 to 14 % less time a token at batch 1, 32 and 128, results/gpu/2026-12-01-conv/), off otherwise
    # (the CPU's generate() takes its tokens from the logits). See ``writes_next_tokens``.
    next_tokens: bool | None = None

    def __post_init__(self):
        _choose("backend", self.backend, BACKENDS)
        _choose("dtype", self.dtype, DTYPES)
        _choose("device", self.device, DEVICES)
        _choose("logits", self.logits, LOGITS_MODES)
        for name in ("fuse_delta_proj", "linear_op", "next_tokens"):
            value = getattr(self, name)
            optional = name in ("linear_op", "next_tokens")
            if not isinstance(value, bool) and not (optional and value is None):
                allowed = "True, False or None" if optional else "True or False"
                raise MambaExportError(f"{name} must be {allowed}, got {value!r}")
        if self.linear_op is True and self.backend != "custom":
            raise MambaExportError(f"linear_op=True needs backend='custom' (the Linear op is a custom op), "
                                   f"got backend={self.backend!r}")
        if self.linear_op is True and self.quantize is not None:
            raise MambaExportError(f"linear_op=True and quantize={self.quantize!r} both rewrite the MatMuls; "
                                   "choose one")
        if not isinstance(self.opset, int) or not 18 <= self.opset <= 27:
            raise MambaExportError(f"opset must be an integer from 18 to 27, got {self.opset!r}")
        if self.quantize is not None:
            _choose("quantize", self.quantize, QUANTIZE_METHODS)
            _choose("block_size", self.block_size, QUANT_BLOCK_SIZES)
            _choose("accuracy_level", self.accuracy_level, ACCURACY_LEVELS)
            if self.dtype not in QUANTIZABLE_DTYPES:
                raise MambaExportError(f"quantize={self.quantize!r} needs dtype "
                                       f"{' or '.join(QUANTIZABLE_DTYPES)}, got {self.dtype!r}")

    @property
    def uses_linear_op(self) -> bool:
        """Whether the export writes the Linear op: ``linear_op`` as given, or by default for a CUDA
        export of the custom backend that is not quantized."""
        if self.linear_op is not None:
            return self.linear_op
        return self.device == "cuda" and self.backend == "custom" and self.quantize is None

    def writes_next_tokens(self, has_lm_head: bool) -> bool:
        """Whether the export's graph outputs next_tokens: ``next_tokens`` as given, or by default for
        a CUDA export of a model with a language-model head."""
        if self.next_tokens is not None:
            return self.next_tokens
        return self.device == "cuda" and has_lm_head

    @property
    def torch_dtype_name(self) -> str:
        return EXPORT_DTYPES[self.dtype].long_name

    def to_dict(self) -> dict:
        return asdict(self)


# CUDA provider options RuntimeOptions sets through its own fields, never through cuda_options.
RESERVED_CUDA_OPTIONS = {"enable_cuda_graph": "cuda_graph", "use_tf32": "allow_tf32"}


def _cuda_option_pairs(value) -> tuple:
    """cuda_options as sorted (name, value) string pairs: hashable, and what ONNX Runtime takes."""
    try:
        items = dict(value).items()
    except (TypeError, ValueError) as error:
        raise MambaExportError(f"cuda_options must be a dict of CUDA provider options, got {value!r}") from error
    for name in dict(value):
        if name in RESERVED_CUDA_OPTIONS:
            raise MambaExportError(f"cuda_options may not set {name!r}; use RuntimeOptions."
                                   f"{RESERVED_CUDA_OPTIONS[name]} instead")
    return tuple(sorted((str(name), str(option)) for name, option in items))


# generate() on CUDA pads prompts so that batch x length is a multiple of this (RuntimeOptions.prefill_bucket).
DEFAULT_PREFILL_BUCKET = 64
# ... and reads one prompt of each such length up to this one at load (RuntimeOptions.warm_up_length).
DEFAULT_WARM_UP_LENGTH = 2048
# ... and, where the graph chooses greedy tokens, reads them back once every this many steps
# (RuntimeOptions.read_tokens_every).
DEFAULT_READ_TOKENS_EVERY = 16


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run an exported folder: provider, IO binding, CUDA graphs, provider options, library path.

    cuda_graph: capture each decode step of ``generate()`` in a CUDA graph, one per batch
        size (provider "cuda" with io_binding). None (the default) means on for CUDA where
        the export allows it (not the standard backend, whose Scan ONNX Runtime cannot
        capture; a refused capture is logged and the model's options say False); False
        opts out; True on the CPU or without io_binding is an error.
    cuda_options: CUDA provider options laid over the runtime's defaults (documented in
        ``runtime/session.py``, ``CUDA_DEFAULTS``), e.g. ``{"device_id": 1}``.
    allow_tf32: CUDA float32 MatMul in TF32: faster, about 1e-3 off.
    spin: ONNX Runtime's intra-op threads spin while waiting for work (its default, fastest on
        an idle machine); False lets them sleep, leaving the cores to other work in the process
        (a server's HTTP and scheduling threads) between calls.
    prefill_bucket: on CUDA with IO binding, ``generate()`` left-pads each prompt (masked, so
        the answer does not change) with the fewest positions that make batch x padded length a
        multiple of this many tokens. ONNX Runtime's CUDA provider spends milliseconds on every
        matrix-product shape it has not seen (the first layer's products and the head, 5 to 19
        ms at a new prompt length for mamba-130m), and a product's shape is (batch x padded
        length, width): with buckets, prompts of nearby lengths share one. One row pads to a
        multiple of the bucket; 128 rows of 64-token buckets pad nothing. None: 64 there
        (``DEFAULT_PREFILL_BUCKET``); 1 turns it off.
    warm_up_length: on CUDA with IO binding, the model reads one prompt of every bucket length
        up to this one when it loads (longest first, so memory grows once), so that no later
        prompt whose batch x padded length is within it meets a new shape. None: 2048
        (``DEFAULT_WARM_UP_LENGTH``) for the custom backend, 0 (none) for the standard one,
        whose Scan reads long prompts slowly.
    read_tokens_every: on CUDA with IO binding, greedy ``generate()`` on an export whose graph
        chooses its own tokens (``next_tokens``, the CUDA default) copies them to the host once
        every this many decode steps rather than after each (``runtime/token_ring.py``): a
        CUDA-graph replay returns only when the GPU has finished, so each read is time the GPU
        waits. Streaming (``on_tokens``) still gets every step's tokens in order, up to this many
        steps late, and the end-of-text check runs on each group, so up to this many - 1 steps run
        past the last row's end and are dropped: the output is the same. None: 16 there
        (``DEFAULT_READ_TOKENS_EVERY``); 1 reads after every step.
    """

    provider: str = "cpu"
    io_binding: bool = True
    cuda_graph: bool | None = None
    library_path: str | None = None
    intra_op_threads: int = 0
    allow_tf32: bool = False
    cuda_options: tuple = ()
    spin: bool = True
    prefill_bucket: int | None = None
    warm_up_length: int | None = None
    read_tokens_every: int | None = None

    def __post_init__(self):
        _choose("provider", self.provider, PROVIDERS)
        if self.cuda_graph and self.provider != "cuda":
            raise MambaExportError("cuda_graph=True needs provider='cuda'")
        if self.cuda_graph and not self.io_binding:
            raise MambaExportError("cuda_graph=True needs io_binding=True (the graph replays fixed device buffers)")
        object.__setattr__(self, "cuda_options", _cuda_option_pairs(self.cuda_options))
        if self.cuda_options and self.provider != "cuda":
            raise MambaExportError(f"cuda_options apply to provider='cuda', not {self.provider!r}")
        for name, least in (("prefill_bucket", 1), ("warm_up_length", 0), ("read_tokens_every", 1)):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise MambaExportError(f"{name} must be an integer >= {least} or None, got {value!r}")
            if not (self.provider == "cuda" and self.io_binding) and value != least:
                raise MambaExportError(f"{name}={value} applies to provider='cuda' with io_binding=True "
                                       f"(the device decoder), not provider={self.provider!r} with "
                                       f"io_binding={self.io_binding}")
        if self.warm_up_length and self.prefill_bucket == 1:
            raise MambaExportError(f"warm_up_length={self.warm_up_length} needs prefill buckets: with "
                                   "prefill_bucket=1 every prompt length is a shape of its own")

    @property
    def use_cuda_graph(self) -> bool:
        """Whether generate() captures its decode steps (the default for CUDA with IO binding)."""
        return self.provider == "cuda" and self.io_binding and self.cuda_graph is not False

    @property
    def prefill_multiple(self) -> int:
        """The bucket generate()'s prompts are padded to: batch x length a multiple of it (1: no padding)."""
        if self.prefill_bucket is not None:
            return self.prefill_bucket
        return DEFAULT_PREFILL_BUCKET if self.provider == "cuda" and self.io_binding else 1

    @property
    def token_read_interval(self) -> int:
        """Greedy steps between two reads of in-graph tokens in generate() (1: a read after each)."""
        if self.read_tokens_every is not None:
            return self.read_tokens_every
        return DEFAULT_READ_TOKENS_EVERY if self.provider == "cuda" and self.io_binding else 1

    def warm_up_to(self, backend: str) -> int:
        """The longest prompt read at load for an export of ``backend`` (0: none)."""
        if self.warm_up_length is not None:
            return self.warm_up_length
        if self.prefill_multiple > 1 and backend != "standard":
            return DEFAULT_WARM_UP_LENGTH
        return 0

    def to_dict(self) -> dict:
        return dict(asdict(self), cuda_options=dict(self.cuda_options))
