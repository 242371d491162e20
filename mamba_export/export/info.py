"""``export_info.json``: what an export folder holds and how it was made.

The runtime reads it to know the graph's I/O, dtype and whether it needs the
custom-op library; ``mamba-export info`` shows it; the check compares against the
source it names. The keys are part of the project's interfaces (format_version 1).
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from mamba_export import __version__, graph_io
from mamba_export.dtypes import STATE_DTYPE
from mamba_export.export.architectures import ModelDims
from mamba_export.ops.selective_scan import DOMAIN, OP_VERSION
from mamba_export.options import ExportOptions

FORMAT_VERSION = 1
FILE_NAME = "export_info.json"


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def versions() -> dict:
    return {
        "mamba_export": __version__,
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "onnx": _version("onnx"),
        "onnxscript": _version("onnxscript"),
        "onnxruntime": _version("onnxruntime", "onnxruntime-gpu"),
    }


def io_description(dims: ModelDims, dtype_name: str, head_output: str, logits: str) -> tuple[list, list]:
    """Graph inputs and outputs as lists of {name, shape, dtype}; dynamic dims are named."""
    tokens = {"shape": ["batch", "sequence"], "dtype": "int64"}
    conv = {"shape": ["batch", dims.intermediate_size, dims.conv_kernel - 1], "dtype": dtype_name}
    ssm = {"shape": ["batch", dims.intermediate_size, dims.state_size], "dtype": STATE_DTYPE.long_name}
    length = "sequence" if logits == "all" else 1
    width = dims.vocab_size if head_output == graph_io.LOGITS else dims.hidden_size
    head = {"name": head_output, "shape": ["batch", length, width], "dtype": dtype_name}

    def states(names):
        return [{"name": name, **(conv if name.endswith("conv_state") else ssm)} for name in names]

    inputs = [{"name": graph_io.INPUT_IDS, **tokens}, {"name": graph_io.ATTENTION_MASK, **tokens}]
    inputs += states(graph_io.past_names(dims.num_layers))
    outputs = [head] + states(graph_io.present_names(dims.num_layers))
    return inputs, outputs


def build_info(*, model_class: str, architecture: str, dims: ModelDims, options: ExportOptions,
               head_output: str, source: dict, external_data: str | None,
               quantization: dict | None = None) -> dict:
    dtype_name = options.torch_dtype_name
    inputs, outputs = io_description(dims, dtype_name, head_output, options.logits)
    return {
        "format_version": FORMAT_VERSION,
        "model_class": model_class,
        "architecture": architecture,
        "backend": options.backend,
        "needs_custom_ops": options.backend == "custom",
        "op_domain": DOMAIN,
        "op_version": OP_VERSION,
        "dtype": options.dtype,
        "opset": options.opset,
        "logits": options.logits,
        "num_layers": dims.num_layers,
        "hidden_size": dims.hidden_size,
        "intermediate_size": dims.intermediate_size,
        "conv_kernel": dims.conv_kernel,
        "state_size": dims.state_size,
        "vocab_size": dims.vocab_size,
        "inputs": inputs,
        "outputs": outputs,
        "external_data": external_data,
        "quantization": quantization,  # what export.quantize rewrote, or None
        "source": source,
        "options": options.to_dict(),
        "versions": versions(),
        "parity": None,
    }


def write_info(folder: Path, info: dict) -> Path:
    path = Path(folder) / FILE_NAME
    path.write_text(json.dumps(info, indent=2, sort_keys=False) + "\n")
    return path


def read_info(folder: Path) -> dict:
    return json.loads((Path(folder) / FILE_NAME).read_text())
