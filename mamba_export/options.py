"""The options objects that flow whole from the CLI or a Python caller down.

``ExportOptions`` is built once, passed to ``export()`` and ``validate()`` and
saved in ``export_info.json``; ``RuntimeOptions`` does the same for the runtime.
Both are frozen and check their own values, so a bad value fails at once with a
message that names it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mamba_export.errors import MambaExportError

BACKENDS = ("custom", "standard")
DTYPES = ("fp32", "fp16", "bf16")
DEVICES = ("cpu", "cuda")
LOGITS_MODES = ("all", "last")
PROVIDERS = ("cpu", "cuda")
DEFAULT_OPSET = 18
TORCH_DTYPE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _choose(name: str, value, allowed) -> None:
    if value not in allowed:
        raise MambaExportError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")


@dataclass(frozen=True)
class ExportOptions:
    """How to export: backend, dtype, device, opset, checks and output handling."""

    backend: str = "custom"
    dtype: str = "fp32"
    device: str = "cpu"
    opset: int = DEFAULT_OPSET
    logits: str = "all"
    validate: bool = True
    force: bool = False
    show_progress: bool = True
    check_lengths: tuple = field(default=(1, 7, 64))
    revision: str | None = None  # hub revision (branch, tag or commit) when the model is a hub id
    adapter: str | None = None  # a PEFT LoRA adapter folder, merged into the weights before export

    def __post_init__(self):
        _choose("backend", self.backend, BACKENDS)
        _choose("dtype", self.dtype, DTYPES)
        _choose("device", self.device, DEVICES)
        _choose("logits", self.logits, LOGITS_MODES)
        if not isinstance(self.opset, int) or not 18 <= self.opset <= 27:
            raise MambaExportError(f"opset must be an integer from 18 to 27, got {self.opset!r}")

    @property
    def torch_dtype_name(self) -> str:
        return TORCH_DTYPE_NAMES[self.dtype]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run an exported folder: provider, IO binding, CUDA graph, library path."""

    provider: str = "cpu"
    io_binding: bool = True
    cuda_graph: bool = False
    library_path: str | None = None
    intra_op_threads: int = 0
    allow_tf32: bool = False  # CUDA float32 MatMul in TF32: faster, about 1e-3 off

    def __post_init__(self):
        _choose("provider", self.provider, PROVIDERS)
        if self.cuda_graph and self.provider != "cuda":
            raise MambaExportError("cuda_graph=True needs provider='cuda'")

    def to_dict(self) -> dict:
        return asdict(self)
