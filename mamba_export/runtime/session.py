"""Building the ONNX Runtime session of an exported folder.

One place decides the execution providers and their options, registers the
SelectiveScan library (only when the export needs it) and turns ONNX Runtime's
failures into typed errors. There is no silent fallback: asking for CUDA where ONNX
Runtime cannot use it raises :class:`BackendUnavailableError` instead of running on
the CPU, a CUDA session only takes a library built with CUDA kernels, and
:mod:`mamba_export.runtime.placement` checks where our nodes landed.

One session serves prefill and decode. With CUDA graphs on, ONNX Runtime captures a
run only when its ``gpu_graph_id`` run option names a graph; every other run passes
``-1`` (:func:`run_options`), which runs it normally at any shape.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from mamba_export.errors import BackendUnavailableError, CustomOpsNotFoundError, ExportFolderError, MambaExportError
from mamba_export.options import RuntimeOptions
from mamba_export.runtime.folder import ExportFolder
from mamba_export.runtime.library import BUILD_COMMAND, CUDA_BUILD_COMMAND

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
# ONNX Runtime's run option that picks a CUDA graph; -1 runs without capture or replay.
GRAPH_ID_KEY = "gpu_graph_id"
NO_GRAPH = -1

# What ONNX Runtime's refusal of a session with CUDA graphs says ("... cannot use the graph
# capture feature ...").
GRAPH_CAPTURE_WORDS = "graph capture"
# Backends whose graphs hold control flow (an ONNX Scan for the recurrence).
SCAN_BACKENDS = ("standard",)

# The CUDA provider options a session gets unless RuntimeOptions.cuda_options says otherwise.
CUDA_DEFAULTS = {
    # Exports of this package hold no Conv node (the custom backend's CausalConv op, the standard
    # backend's shifted Slices), but a graph that does (an older export, or the caller's own) has
    # its depthwise conv as a 2-D Conv that cuDNN plans again for every new input shape.
    # EXHAUSTIVE (ONNX Runtime's default) benchmarks candidate plans each time: 4 to 5 s at
    # every new prompt length for mamba-130m on an H200. HEURISTIC takes cuDNN's first
    # choice (hundreds of ms per new length); DEFAULT is cuDNN's fallback engine, which
    # ONNX Runtime warns "may be extremely slow".
    "cudnn_conv_algo_search": "HEURISTIC",
}


def library_path(options: RuntimeOptions) -> str:
    """The custom-op library to register: options.library_path, else the one found by library.py.

    For provider "cuda" the library must hold the CUDA kernels (library.check_cuda_kernels).
    """
    from mamba_export.runtime.library import check_cuda_kernels, get_library_path

    cuda = options.provider == "cuda"
    if options.library_path is None:
        return get_library_path(cuda=cuda)
    path = Path(options.library_path).expanduser()
    if not path.is_file():
        command = CUDA_BUILD_COMMAND if cuda else BUILD_COMMAND
        raise CustomOpsNotFoundError(
            f"custom-op library {path} (RuntimeOptions.library_path) does not exist; build it with "
            f"`{command}` or leave library_path unset to use the built one")
    if cuda:
        check_cuda_kernels(str(path))
    return str(path)


def cuda_provider_options(options: RuntimeOptions, graphs: bool = True) -> dict:
    """CUDA_DEFAULTS, then RuntimeOptions' own fields, then options.cuda_options (all strings).

    ``graphs=False`` leaves CUDA graphs off whatever the options say (the token head's session).
    """
    # TF32 is ONNX Runtime's CUDA default for float32 MatMul; PyTorch's is off, and TF32's
    # 10-bit mantissa moves float32 logits by about 1e-3, enough to flip greedy tokens.
    chosen = dict(CUDA_DEFAULTS, use_tf32="1" if options.allow_tf32 else "0")
    if options.use_cuda_graph and graphs:
        chosen["enable_cuda_graph"] = "1"
    chosen.update(dict(options.cuda_options))
    return chosen


def cuda_device_id(options: RuntimeOptions) -> int:
    """The GPU the session runs on (CUDA provider option device_id, 0 by default)."""
    value = dict(options.cuda_options).get("device_id", "0")
    try:
        return int(value)
    except ValueError as error:
        raise MambaExportError(f"cuda_options device_id must be an integer, got {value!r}") from error


def providers_for(options: RuntimeOptions, head: bool = False) -> list:
    """The provider list for ONNX Runtime, raising when the requested one is not installed.

    ``head=True``: for the token head's session (token_head.py), which captures no graphs.
    """
    import onnxruntime as ort

    if options.provider == "cpu":
        return [CPU_PROVIDER]
    available = ort.get_available_providers()
    if CUDA_PROVIDER not in available:
        raise BackendUnavailableError(
            f"provider 'cuda' needs onnxruntime with {CUDA_PROVIDER}, but this onnxruntime "
            f"{ort.__version__} offers only {', '.join(available)}; install onnxruntime-gpu "
            "(pip install 'mamba-export[gpu]') or use provider='cpu'")
    cuda_device_id(options)
    # The CPU provider stays listed for the shape arithmetic ONNX Runtime keeps on the host.
    return [(CUDA_PROVIDER, cuda_provider_options(options, graphs=not head)), CPU_PROVIDER]


def run_options(graph_id: int | None = None):
    """RunOptions naming the CUDA graph of a run (None: ONNX Runtime's default run options)."""
    import onnxruntime as ort

    chosen = ort.RunOptions()
    if graph_id is not None:
        chosen.add_run_config_entry(GRAPH_ID_KEY, str(graph_id))
    return chosen


def options_for_folder(folder: ExportFolder, options: RuntimeOptions) -> RuntimeOptions:
    """``options`` with the CUDA-graph default settled for this export.

    ONNX Runtime captures no graph that holds control flow, and the standard backend's
    SelectiveScan is an ONNX ``Scan``: for it the default (cuda_graph=None) becomes False,
    logged and visible in ``model.options``. An explicit cuda_graph=True is left for ONNX
    Runtime to refuse (:func:`create_session` turns that into BackendUnavailableError).
    """
    if options.cuda_graph is None and options.use_cuda_graph and folder.info.get("backend") in SCAN_BACKENDS:
        logging.getLogger(__name__).info(
            "%s: no CUDA graphs for the %s backend (its ONNX Scan is control flow, which ONNX Runtime "
            "cannot capture)", folder.path, folder.info["backend"])
        return dataclasses.replace(options, cuda_graph=False)
    return options


def checks_placement(folder: ExportFolder, options: RuntimeOptions) -> bool:
    """Whether the session is checked for custom nodes on the CPU (CUDA sessions with our ops)."""
    return options.provider == "cuda" and bool(folder.info.get("needs_custom_ops"))


def session_options(folder: ExportFolder, options: RuntimeOptions):
    """SessionOptions with the custom-op library registered when the export needs it, and
    profiling on for the placement probe of a CUDA session (placement.py)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if checks_placement(folder, options):
        from mamba_export.runtime.placement import profile_prefix

        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix()
    if options.intra_op_threads:
        so.intra_op_num_threads = int(options.intra_op_threads)
    if not options.spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if folder.info.get("needs_custom_ops"):
        path = library_path(options)
        try:
            so.register_custom_ops_library(path)
        except Exception as error:  # ONNX Runtime raises a bare RuntimeError/Fail
            raise CustomOpsNotFoundError(
                f"onnxruntime could not load the custom-op library {path}: {error}; rebuild it with "
                f"`{BUILD_COMMAND}` against this onnxruntime") from error
    return so


def _check_providers(session, options: RuntimeOptions) -> None:
    if options.provider == "cuda" and CUDA_PROVIDER not in session.get_providers():
        raise BackendUnavailableError(
            f"onnxruntime did not enable {CUDA_PROVIDER} for this session (it runs on "
            f"{', '.join(session.get_providers())}); check the CUDA and cuDNN libraries onnxruntime-gpu "
            "needs, or use provider='cpu'")


def create_session(folder: ExportFolder, options: RuntimeOptions):
    """An ``onnxruntime.InferenceSession`` for ``folder`` with ``options``."""
    import onnxruntime as ort

    so = session_options(folder, options)
    providers = providers_for(options)
    try:
        session = ort.InferenceSession(str(folder.model_path), sess_options=so, providers=providers)
    except Exception as error:  # onnxruntime raises its own untyped exceptions
        raise _session_error(str(error), folder, options) from error
    _check_providers(session, options)
    if checks_placement(folder, options):
        from mamba_export.runtime.placement import check_custom_nodes_on_cuda

        check_custom_nodes_on_cuda(session, folder.model_path, folder.state_shapes(1), graph_run_options(options))
    return session


def open_session(folder: ExportFolder, options: RuntimeOptions) -> tuple:
    """(options, session) for ``folder``: :func:`options_for_folder`, then :func:`create_session`.

    With the CUDA-graph default (cuda_graph=None), a graph ONNX Runtime refuses to capture
    (control flow, or nodes it keeps on the CPU behind copies) gets a session without
    graphs; a warning names the reason and the returned options say cuda_graph=False.
    An explicit cuda_graph=True keeps the refusal as an error.
    """
    options = options_for_folder(folder, options)
    try:
        return options, create_session(folder, options)
    except BackendUnavailableError as error:
        if options.cuda_graph is not None or not _graphs_refused(error):
            raise
        logging.getLogger(__name__).warning("%s; decoding without CUDA graphs", error)
    options = dataclasses.replace(options, cuda_graph=False)
    return options, create_session(folder, options)


def _graphs_refused(error: Exception) -> bool:
    """Whether ONNX Runtime refused the session because it cannot capture the graph."""
    return GRAPH_CAPTURE_WORDS in str(error.__cause__ or "")


def graph_run_options(options: RuntimeOptions):
    """The run options of every run outside generate()'s decode steps: no CUDA graph when graphs are on."""
    return run_options(NO_GRAPH) if options.use_cuda_graph else None


def _session_error(message: str, folder: ExportFolder, options: RuntimeOptions) -> Exception:
    """The typed error for a session onnxruntime refused to build."""
    if "Could not find an implementation" in message:
        # e.g. bfloat16 graphs on the CPU provider, which has no bfloat16 arithmetic kernels.
        return BackendUnavailableError(
            f"onnxruntime's {options.provider} provider cannot run this {folder.dtype} export "
            f"({folder.model_path}): {message}; use another provider or export another dtype")
    if "SelectiveScan" in message or folder.info.get("op_domain", "mamba_export") in message:
        return CustomOpsNotFoundError(
            f"onnxruntime cannot run the SelectiveScan node of {folder.model_path}: {message}; "
            f"build the custom-op library with `{BUILD_COMMAND}`")
    if options.use_cuda_graph and GRAPH_CAPTURE_WORDS in message:
        return BackendUnavailableError(
            f"onnxruntime refused CUDA graphs for {folder.model_path}: {message}; run with "
            "RuntimeOptions(provider='cuda', cuda_graph=False)")
    return ExportFolderError(f"onnxruntime cannot load {folder.model_path}: {message}")
