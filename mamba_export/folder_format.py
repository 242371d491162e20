"""The export folder format: its file names and ``export_info.json``, written, read and checked here only.

The exporter writes a folder through :func:`build_info` and :func:`write_info`; the
runtime, the CLI and the parity suite read it through :func:`read_info`, which
checks the record and brings an older one up to the current format. The record
says what the graph outputs (``head_output``: ``logits`` or ``last_hidden_state``),
never which transformers class it came from, so every architecture with or without
a language-model head reads the same way. The class name is kept in ``source`` as
provenance only.

Format versions:
    1  the head was implied by ``model_class`` ("MambaForCausalLM" or "MambaModel")
    2  ``head_output`` names the graph's first output; ``source.class`` the exported class
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from mamba_export import __version__, graph_io
from mamba_export.dtypes import STATE_DTYPE
from mamba_export.errors import ExportFolderError
from mamba_export.ops.selective_scan import DOMAIN, OP_VERSION

MODEL_FILE = "model.onnx"
EXTERNAL_DATA_FILE = "model.onnx.data"  # the weights, when they do not fit in model.onnx
CONFIG_FILE = "config.json"
INFO_FILE = "export_info.json"
GENERATION_CONFIG_FILE = "generation_config.json"
REQUIRED_FILES = (MODEL_FILE, CONFIG_FILE, INFO_FILE)

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
HEAD_OUTPUTS = (graph_io.LOGITS, graph_io.LAST_HIDDEN_STATE)
REQUIRED_KEYS = (
    "format_version", "head_output", "backend", "needs_custom_ops", "dtype", "num_layers",
    "hidden_size", "intermediate_size", "conv_kernel", "state_size", "vocab_size",
)
# Format 1 named the class; these suffixes tell which head it had.
_V1_HEAD_BY_CLASS_SUFFIX = (("ForCausalLM", graph_io.LOGITS), ("Model", graph_io.LAST_HIDDEN_STATE))


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def versions() -> dict:
    """The versions of the packages that shape the graph, as recorded in every export."""
    return {
        "mamba_export": __version__,
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "onnx": _version("onnx"),
        "onnxscript": _version("onnxscript"),
        "onnxruntime": _version("onnxruntime", "onnxruntime-gpu"),
    }


def io_description(dims, dtype_name: str, head_output: str, logits: str,
                   next_tokens: bool = False) -> tuple[list, list]:
    """Graph inputs and outputs as lists of {name, shape, dtype}; dynamic dims are named.

    dims: any object with num_layers, hidden_size, intermediate_size, state_size,
    conv_kernel and vocab_size (the exporter's ``ModelDims``).
    """
    tokens = {"shape": ["batch", "sequence"], "dtype": "int64"}
    conv = {"shape": ["batch", dims.intermediate_size, dims.conv_kernel - 1], "dtype": dtype_name}
    ssm = {"shape": ["batch", dims.intermediate_size, dims.state_size], "dtype": STATE_DTYPE.long_name}
    has_logits = head_output == graph_io.LOGITS
    length = 1 if has_logits and logits == "last" else "sequence"
    width = dims.vocab_size if has_logits else dims.hidden_size
    head = {"name": head_output, "shape": ["batch", length, width], "dtype": dtype_name}

    def states(names):
        return [{"name": name, **(conv if name.endswith("conv_state") else ssm)} for name in names]

    inputs = [{"name": graph_io.INPUT_IDS, **tokens}, {"name": graph_io.ATTENTION_MASK, **tokens}]
    inputs += states(graph_io.past_names(dims.num_layers))
    outputs = [head] + states(graph_io.present_names(dims.num_layers))
    if next_tokens:
        outputs.append({"name": graph_io.NEXT_TOKENS, "shape": list(graph_io.NEXT_TOKENS_SHAPE), "dtype": "int64"})
    return inputs, outputs


def build_info(*, architecture: str, dims, options, head_output: str, source: dict,
               external_data: str | None, quantization: dict | None = None,
               linear_products: dict | None = None) -> dict:
    """The record of one export. options: the ``ExportOptions`` it was made with."""
    if head_output not in HEAD_OUTPUTS:
        raise ValueError(f"head_output must be one of {HEAD_OUTPUTS}, got {head_output!r}")
    dtype_name = options.torch_dtype_name
    next_tokens = options.writes_next_tokens(head_output == graph_io.LOGITS)
    inputs, outputs = io_description(dims, dtype_name, head_output, options.logits, next_tokens)
    return {
        "format_version": FORMAT_VERSION,
        "head_output": head_output,
        "architecture": architecture,
        "backend": options.backend,
        "needs_custom_ops": options.backend == "custom",
        "op_domain": DOMAIN,
        "op_version": OP_VERSION,
        "dtype": options.dtype,
        "opset": options.opset,
        "logits": options.logits if head_output == graph_io.LOGITS else "all",
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
        "linear_products": linear_products,  # what export.linear_products rewrote (--linear-op), or None
        "next_tokens": next_tokens,  # the graph outputs graph_io.NEXT_TOKENS (export.next_tokens)
        "source": source,
        "options": options.to_dict(),
        "versions": versions(),
        "parity": None,
    }


def write_info(folder, info: dict) -> Path:
    path = Path(folder) / INFO_FILE
    path.write_text(json.dumps(info, indent=2, sort_keys=False) + "\n")
    return path


def read_json(folder: Path, name: str, required: bool = True) -> dict:
    """A JSON object file of an export folder ({} when optional and absent)."""
    path = Path(folder) / name
    if not path.is_file():
        if not required:
            return {}
        raise ExportFolderError(f"{folder} is not a complete export: {name} is missing "
                                f"(re-export with `mamba-export export --model MODEL {folder} --force`)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ExportFolderError(f"{path} is not readable JSON ({error}); re-export the folder") from error
    if not isinstance(data, dict):
        raise ExportFolderError(f"{path} holds a {type(data).__name__}, expected a JSON object")
    return data


def read_info(folder) -> dict:
    """``export_info.json`` of ``folder``, checked and in the current format."""
    folder = Path(folder)
    info = read_json(folder, INFO_FILE)
    version = info.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ExportFolderError(
            f"{folder / INFO_FILE} has format_version {version!r}, this version of mamba-export reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}; re-export with this version")
    if version == 1:
        info = _upgrade_v1(folder, info)
    check_info(folder, info)
    return info


def _upgrade_v1(folder: Path, info: dict) -> dict:
    """A format-1 record in format 2: the head follows from the class name it recorded."""
    model_class = info.get("model_class")
    if not isinstance(model_class, str):
        raise ExportFolderError(f"{folder / INFO_FILE} (format 1) lacks model_class; re-export the folder")
    head = next((head for suffix, head in _V1_HEAD_BY_CLASS_SUFFIX if model_class.endswith(suffix)), None)
    if head is None:
        raise ExportFolderError(f"{folder / INFO_FILE} has model_class {model_class!r}, which names no "
                                "causal LM or base model; re-export the folder")
    upgraded = {key: value for key, value in info.items() if key != "model_class"}
    upgraded["source"] = {**(info.get("source") or {}), "class": model_class}
    return {**upgraded, "format_version": FORMAT_VERSION, "head_output": head}


def check_info(folder: Path, info: dict) -> None:
    """Every key the readers rely on is present and has a value they understand."""
    missing = [key for key in REQUIRED_KEYS if info.get(key) is None]
    if missing:
        raise ExportFolderError(f"{Path(folder) / INFO_FILE} lacks the keys {missing}; re-export the folder")
    if info["head_output"] not in HEAD_OUTPUTS:
        raise ExportFolderError(f"{Path(folder) / INFO_FILE} has head_output {info['head_output']!r}, "
                                f"expected one of {', '.join(HEAD_OUTPUTS)}")
    next_tokens = info.get("next_tokens", False)  # absent before the option existed: no such output
    if next_tokens not in (True, False) or (next_tokens and info["head_output"] != graph_io.LOGITS):
        raise ExportFolderError(f"{Path(folder) / INFO_FILE} has next_tokens {next_tokens!r} with head_output "
                                f"{info['head_output']!r}; it may be true only with {graph_io.LOGITS!r}")
