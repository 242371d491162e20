"""mamba-export: Mamba language models out of PyTorch and into ONNX Runtime.

Importing this package is cheap: it loads neither triton nor onnxruntime. The
public names below are resolved on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "ops_library_path": ("mamba_export.runtime.library", "get_library_path"),
    "get_library_path": ("mamba_export.runtime.library", "get_library_path"),
    "build_library": ("mamba_export.runtime.library", "build_library"),
    "export": ("mamba_export.export.convert", "export"),
    "validate": ("mamba_export.parity.validate", "validate"),
    "ExportOptions": ("mamba_export.options", "ExportOptions"),
    "RuntimeOptions": ("mamba_export.options", "RuntimeOptions"),
    "ORTMambaForCausalLM": ("mamba_export.runtime.model", "ORTMambaForCausalLM"),
    "ORTMambaModel": ("mamba_export.runtime.model", "ORTMambaModel"),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'mamba_export' has no attribute {name!r}")
