"""Building the ONNX Runtime session of an exported folder.

One place decides the execution providers, registers the SelectiveScan library
(only when the export needs it) and turns ONNX Runtime's failures into typed
errors. There is no silent fallback: asking for CUDA where ONNX Runtime cannot
use it raises :class:`BackendUnavailableError` instead of running on the CPU.
"""

from __future__ import annotations

from pathlib import Path

from mamba_export.errors import BackendUnavailableError, CustomOpsNotFoundError, ExportFolderError
from mamba_export.options import RuntimeOptions
from mamba_export.runtime.folder import ExportFolder

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
BUILD_COMMAND = "mamba-export build-ops"
BUILD_COMMAND_CUDA = "mamba-export build-ops --cuda"


def library_path(options: RuntimeOptions) -> str:
    """The custom-op library to register: options.library_path, else the one found by library.py."""
    if options.library_path is not None:
        path = Path(options.library_path).expanduser()
        if not path.is_file():
            command = BUILD_COMMAND_CUDA if options.provider == "cuda" else BUILD_COMMAND
            raise CustomOpsNotFoundError(
                f"custom-op library {path} (RuntimeOptions.library_path) does not exist; build it with "
                f"`{command}` or leave library_path unset to use the built one")
        return str(path)
    from mamba_export.runtime.library import get_library_path

    return get_library_path()


def providers_for(options: RuntimeOptions) -> list:
    """The provider list for ONNX Runtime, raising when the requested one is not installed."""
    import onnxruntime as ort

    if options.provider == "cpu":
        return [CPU_PROVIDER]
    available = ort.get_available_providers()
    if CUDA_PROVIDER not in available:
        raise BackendUnavailableError(
            f"provider 'cuda' needs onnxruntime with {CUDA_PROVIDER}, but this onnxruntime "
            f"{ort.__version__} offers only {', '.join(available)}; install onnxruntime-gpu "
            "(pip install 'mamba-export[gpu]') or use provider='cpu'")
    # TF32 is ONNX Runtime's CUDA default for float32 MatMul; PyTorch's is off, and TF32's
    # 10-bit mantissa moves float32 logits by about 1e-3, enough to flip greedy tokens.
    cuda_options = {"use_tf32": "1" if options.allow_tf32 else "0"}
    if options.cuda_graph:
        cuda_options["enable_cuda_graph"] = "1"
    # The CPU provider stays listed for the shape arithmetic ONNX Runtime keeps on the host.
    return [(CUDA_PROVIDER, cuda_options), CPU_PROVIDER]


def session_options(folder: ExportFolder, options: RuntimeOptions):
    """SessionOptions with the custom-op library registered when the export needs it."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if options.intra_op_threads:
        so.intra_op_num_threads = int(options.intra_op_threads)
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
    return session


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
    if options.cuda_graph:
        return BackendUnavailableError(
            f"onnxruntime refused CUDA graphs for {folder.model_path}: {message}; run with cuda_graph=False")
    return ExportFolderError(f"onnxruntime cannot load {folder.model_path}: {message}")
