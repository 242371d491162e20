"""``export()``: a Mamba checkpoint in, one stateful any-length ONNX graph folder out.

The steps, in order: check the destination, load, resolve the architecture, cast,
route the mixers through the SelectiveScan op, trace, apply the backend (keep the
custom node, or rewrite it into standard ops), rewrite the MatMuls when asked (the Linear
op, or int4), write the folder atomically with
its config, tokenizer and ``export_info.json``, and check it against PyTorch.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from mamba_export import folder_format, graph_io
from mamba_export.dtypes import export_dtype
from mamba_export.errors import BackendUnavailableError, UnsupportedModelError
from mamba_export.export.loading import LoadedModel, load
from mamba_export.export.patching import routed_through_op
from mamba_export.export.progress import Progress
from mamba_export.export.stateful import StatefulModel
from mamba_export.export.tracing import trace
from mamba_export.export.writing import atomic_folder, check_destination, copy_tokenizer_files
from mamba_export.options import ExportOptions

MODEL_FILE = folder_format.MODEL_FILE
# Protocol buffers cannot exceed 2 GiB; past this size the weights go to model.onnx.data.
EXTERNAL_DATA_THRESHOLD = 2 * 1024**3 - 64 * 1024**2


def export(model, output_dir, options: ExportOptions | None = None) -> Path:
    """Export ``model`` (hub id, folder, ``preset:NAME`` or a transformers model) into ``output_dir``.

    Returns the path of the written folder. Raises a ``MambaExportError`` subclass for every
    problem a user can cause; nothing is left behind when it fails.
    """
    options = options or ExportOptions()
    progress = Progress(options.show_progress)
    destination = check_destination(output_dir, options.force)
    check_provider = _check_provider(options) if options.validate else None
    loaded = _load(model, progress, options)
    prepared = _cast(loaded, options)
    dims = loaded.arch.dims(prepared.config)
    head_output = graph_io.LOGITS if loaded.arch.has_lm_head(prepared) else graph_io.LAST_HIDDEN_STATE
    if options.next_tokens is True and head_output != graph_io.LOGITS:
        raise UnsupportedModelError(f"next_tokens needs a model with a language-model head; "
                                    f"{type(prepared).__name__} outputs {head_output}")
    # ONNX Runtime's fused norms only where the graph is for ONNX Runtime (the custom op's).
    wrapper = StatefulModel(prepared, loaded.arch, options.logits, fused_norms=options.backend == "custom")
    # The standard backend's rewrite keeps dt_proj a MatMul: the projected delta is the custom op's.
    fuse_delta_proj = options.fuse_delta_proj and options.backend == "custom"
    with progress.step("Tracing the model"), routed_through_op(prepared, options.backend, loaded.arch,
                                                               fuse_delta_proj=fuse_delta_proj):
        program = trace(wrapper, dims.num_layers, dims.vocab_size, head_output, options.opset,
                        device=options.device)
    with atomic_folder(destination, options.force) as staging:
        with progress.step(f"Saving {MODEL_FILE} ({options.backend} backend)"):
            external_data = _save_graph(program, staging, options.backend, _weight_bytes(prepared))
        linear_products = _linear_products(staging, options, external_data, progress)
        quantization = _quantize(staging, options, external_data, progress)
        if options.writes_next_tokens(head_output == graph_io.LOGITS):
            from mamba_export.export.next_tokens import add_to_file

            with progress.step(f"Adding the {graph_io.NEXT_TOKENS} output"):
                # One LastArgMax node where the graph uses our op library anyway; ONNX's nodes otherwise.
                add_to_file(staging / MODEL_FILE, head_output, custom_op=options.backend == "custom")
        _write_side_files(prepared, loaded, staging)
        info = folder_format.build_info(
            architecture=loaded.arch.name, dims=dims, options=options, head_output=head_output,
            source=_source_record(loaded, type(prepared).__name__), external_data=external_data,
            quantization=quantization, linear_products=linear_products)
        folder_format.write_info(staging, info)
        if options.validate:
            _check(staging, destination, prepared, options, check_provider, info, progress)
    progress.note(f"Exported to {destination}")
    return destination


def _load(model, progress: Progress, options: ExportOptions) -> LoadedModel:
    label = model if isinstance(model, (str, Path)) else type(model).__name__
    with progress.step(f"Loading {label}"):
        loaded = load(model, revision=options.revision)
    if options.adapter is not None:
        from mamba_export.export.adapters import merge_adapter

        with progress.step(f"Merging the LoRA adapter {options.adapter}"):
            loaded = merge_adapter(loaded, options.adapter)
    if loaded.random_weights:
        progress.note(f"Note: {loaded.source} holds random weights (seed {loaded.seed}); "
                      "its text output is meaningless.")
    return loaded


def _cast(loaded: LoadedModel, options: ExportOptions):
    """The model in the export dtype on the export device (a copy if the caller owns the model)."""
    if options.device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError("device 'cuda' was asked for but torch sees no CUDA GPU")
    dtype = export_dtype(options.dtype).torch
    model = loaded.model
    first = next(model.parameters())
    if first.dtype == dtype and first.device.type == options.device:
        return model
    if loaded.local_dir is None and loaded.preset is None:
        model = copy.deepcopy(model)  # an in-memory model belongs to the caller: leave it as given
    return model.to(device=options.device, dtype=dtype).eval()


def _weight_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def _save_graph(program, staging: Path, backend: str, weight_bytes: int) -> str | None:
    """Write model.onnx (weights in model.onnx.data past 2 GB); returns the data file name or None."""
    path = staging / MODEL_FILE
    program.save(path, external_data=weight_bytes > EXTERNAL_DATA_THRESHOLD)
    if backend == "standard":
        from mamba_export.ops.onnx_standard import rewrite_file

        rewrite_file(path)
    data_files = sorted(p.name for p in staging.iterdir() if p.name != MODEL_FILE)
    return data_files[0] if data_files else None


def _linear_products(staging: Path, options: ExportOptions, external_data: str | None, progress: Progress):
    """The constant-weight MatMuls as the Linear op when ``options.uses_linear_op``; the record or None."""
    if not options.uses_linear_op:
        return None
    from mamba_export.export.linear_products import rewrite_file

    with progress.step("Rewriting the MatMuls with constant weights as the Linear op"):
        return rewrite_file(staging / MODEL_FILE, external_data)


def _quantize(staging: Path, options: ExportOptions, external_data: str | None, progress: Progress):
    """Weight-only int4 MatMuls when ``options.quantize`` asks; returns the record or None."""
    if options.quantize is None:
        return None
    from mamba_export.export.quantize import quantize_file

    with progress.step(f"Quantizing the MatMul weights to {options.quantize} (block {options.block_size})"):
        return quantize_file(staging / MODEL_FILE, options.block_size, options.accuracy_level, external_data)


def _write_side_files(model, loaded: LoadedModel, staging: Path) -> None:
    from transformers import GenerationConfig

    model.config.save_pretrained(staging)
    generation = getattr(model, "generation_config", None) or GenerationConfig.from_model_config(model.config)
    generation.save_pretrained(staging)
    copy_tokenizer_files(loaded.local_dir, staging)


def _source_record(loaded: LoadedModel, class_name: str) -> dict:
    record = {"model": loaded.source, "class": class_name, "random_weights": loaded.random_weights,
              "preset": loaded.preset}
    if loaded.seed is not None:
        record["seed"] = loaded.seed
    for key in ("revision", "adapter", "adapter_base"):
        if getattr(loaded, key) is not None:
            record[key] = getattr(loaded, key)
    return record


def _check_provider(options: ExportOptions) -> str:
    """The ONNX Runtime provider the check runs on, decided before any slow step.

    CUDA when the export was traced on CUDA and onnxruntime has it, else the CPU; a bfloat16
    graph has no CPU kernels in ONNX Runtime, so checking one needs CUDA.
    """
    import onnxruntime as ort

    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    cpu_kernels = export_dtype(options.dtype).cpu_kernels
    if not cpu_kernels and not has_cuda:
        raise BackendUnavailableError(
            "checking a bf16 export needs onnxruntime with the CUDA execution provider "
            "(ONNX Runtime has no bfloat16 CPU kernels); install onnxruntime-gpu, or export "
            "without the check (validate=False, --no-check)")
    return "cuda" if has_cuda and (options.device == "cuda" or not cpu_kernels) else "cpu"


def _check(staging: Path, destination: Path, model, options: ExportOptions, provider: str, info: dict,
           progress: Progress) -> None:
    """Run the parity suite on the staged folder, so a failing export is never put in place.

    An inconclusive check keeps the folder (the graph may well be right) and warns with
    ``ParityInconclusiveWarning``; ``export_info.json`` records ``parity.status``.
    """
    import warnings

    from mamba_export.options import RuntimeOptions
    from mamba_export.parity.report import ParityInconclusiveWarning
    from mamba_export.parity.validate import validate

    with progress.step(f"Checking the ONNX graph against PyTorch ({provider})"):
        report = validate(staging, reference=model, options=options, runtime=RuntimeOptions(provider=provider))
    parity = report.to_dict()
    if "folder" in parity:
        parity["folder"] = str(destination)  # the staged folder is renamed into place next
    info["parity"] = parity
    folder_format.write_info(staging, info)
    if options.show_progress:
        progress.note(report.format_table())
    if report.inconclusive:
        warnings.warn(f"{destination} was written but not verified: {report.inconclusive_message()}",
                      ParityInconclusiveWarning, stacklevel=3)
