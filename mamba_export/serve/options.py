"""ServeOptions: how one server batches, queues and limits requests, built once by the CLI or a caller.

The same object reaches every replica (Ray pickles it), so each replica's scheduler and
request checks agree with what the command line said.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mamba_export.errors import MambaExportError
from mamba_export.options import PROVIDERS


@dataclass(frozen=True)
class ServeOptions:
    """max_batch: rows decoded together by one replica; max_waiting: requests queued beyond them before
    the server answers 503; prefill_chunk: prompt tokens read per scheduler step (a long prompt is read
    over several steps, so the running rows keep decoding); max_prompt_tokens / max_tokens: the largest
    prompt and completion a request may ask for; intra_op_threads: ONNX Runtime's threads (0: all)."""

    provider: str = "cpu"
    max_batch: int = 32
    max_waiting: int = 256
    prefill_chunk: int = 256
    max_prompt_tokens: int = 4096
    max_tokens: int = 4096
    intra_op_threads: int = 0

    def __post_init__(self):
        if self.provider not in PROVIDERS:
            raise MambaExportError(f"provider must be one of {', '.join(PROVIDERS)}, got {self.provider!r}")
        for name in ("max_batch", "prefill_chunk", "max_prompt_tokens", "max_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise MambaExportError(f"{name} must be a positive integer, got {value!r}")
        for name in ("max_waiting", "intra_op_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise MambaExportError(f"{name} must be a non-negative integer, got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)
