"""Where the SelectiveScan custom-op library lives, and how to build it.

ONNX Runtime needs ``libmamba_export_ops.so`` registered in its session options
before it can run a graph with our ``SelectiveScan`` node. This module finds the
built library (or says exactly where it looked and how to build it) and drives the
CMake build through ``scripts/build_custom_ops.sh``. Importing it does nothing:
no file system access, no onnxruntime import.

A CUDA build holds the CPU kernels as well, so it serves both providers; a CPU-only
build must never serve a CUDA session, where ONNX Runtime would quietly run our
nodes on the CPU. The library says which it is (``mamba_export_ops_has_cuda``, read
through ctypes), and :func:`check_cuda_kernels` refuses a CPU-only build.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

from mamba_export.errors import BuildError, CustomOpsNotFoundError

LIBRARY_NAME = "libmamba_export_ops.so"
ENV_VAR = "MAMBA_EXPORT_OPS_LIBRARY"
BUILD_COMMAND = "mamba-export build-ops"
CUDA_BUILD_COMMAND = "mamba-export build-ops --cuda"
# The C function a build exports to say whether it holds the CUDA kernels (custom_ops/build_info.cc).
HAS_CUDA_SYMBOL = "mamba_export_ops_has_cuda"
# Lines of the build log quoted in a BuildError.
LOG_TAIL_LINES = 40


def repo_root() -> Path:
    """The source tree this package was installed from (editable installs)."""
    return Path(__file__).resolve().parents[2]


def default_build_dir() -> Path:
    return repo_root() / "build" / "custom_ops"


def cuda_build_dir() -> Path:
    """Where ``build-ops --cuda`` builds go by convention (docs/gpu.md, scripts/gpu_round.sh)."""
    return repo_root() / "build" / "custom_ops_cuda"


def packaged_library() -> Path:
    """Where a wheel would carry a prebuilt library."""
    return Path(__file__).resolve().parents[1] / "_lib" / LIBRARY_NAME


def get_library_path(cuda: bool = False) -> str:
    """The path of the built custom-op library.

    Looks at ``$MAMBA_EXPORT_OPS_LIBRARY`` (which, when set, must name an existing
    file), then the build folders, then ``mamba_export/_lib/``. For the CPU the
    CPU build (``build/custom_ops``) comes first, then the CUDA build (it holds the
    CPU kernels too); with ``cuda=True`` the CUDA build (``build/custom_ops_cuda``)
    comes first and the library found must hold the CUDA kernels
    (:func:`check_cuda_kernels`). Raises :class:`CustomOpsNotFoundError` listing the
    places and the build command.
    """
    from_env = os.environ.get(ENV_VAR)
    command = CUDA_BUILD_COMMAND if cuda else BUILD_COMMAND
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_file():
            raise CustomOpsNotFoundError(
                f"{ENV_VAR} is {from_env!r}, which is not a file; unset it or point it at a built "
                f"{LIBRARY_NAME} (build one with `{command}`)")
        found = str(path.resolve())
    else:
        builds = [cuda_build_dir(), default_build_dir()] if cuda else [default_build_dir(), cuda_build_dir()]
        candidates = [folder / LIBRARY_NAME for folder in builds[:1]] + [packaged_library()] + \
            [folder / LIBRARY_NAME for folder in builds[1:]]
        found = next((str(path) for path in candidates if path.is_file()), None)
        if found is None:
            looked = ", ".join(str(path) for path in candidates)
            raise CustomOpsNotFoundError(
                f"the SelectiveScan custom-op library {LIBRARY_NAME} is not built: looked in ${ENV_VAR} "
                f"(unset), {looked}; build it with `{command}`"
                + ("" if cuda else f" (or `{CUDA_BUILD_COMMAND}` for GPUs)"))
    if cuda:
        check_cuda_kernels(found)
    return found


def has_cuda_kernels(path: str) -> bool:
    """Whether the library at ``path`` was built with its CUDA kernels (asks the library itself).

    Raises :class:`CustomOpsNotFoundError` when the file cannot be loaded or predates the
    question (no ``mamba_export_ops_has_cuda`` symbol).
    """
    try:
        library = ctypes.CDLL(str(path))
    except OSError as error:
        raise CustomOpsNotFoundError(f"could not load the custom-op library {path}: {error}; "
                                     f"rebuild it with `{BUILD_COMMAND}`") from error
    try:
        function = getattr(library, HAS_CUDA_SYMBOL)
    except AttributeError as error:
        raise CustomOpsNotFoundError(
            f"the custom-op library {path} does not say whether it holds CUDA kernels (no "
            f"{HAS_CUDA_SYMBOL}: an older build); rebuild it with `{CUDA_BUILD_COMMAND}`") from error
    function.restype = ctypes.c_int
    function.argtypes = []
    return bool(function())


def check_cuda_kernels(path: str) -> None:
    """Refuse a library without CUDA kernels for a CUDA session, naming the build to use."""
    if not has_cuda_kernels(path):
        raise CustomOpsNotFoundError(
            f"the custom-op library {path} was built without CUDA kernels, so a CUDA session would run "
            f"SelectiveScan on the CPU; build the CUDA library with `{CUDA_BUILD_COMMAND}` (it holds the "
            f"CPU kernels too) or point ${ENV_VAR} / RuntimeOptions.library_path at one")


def build_command(cuda: bool = False, include_dir: str | None = None,
                  build_dir: str | None = None) -> list[str]:
    """The scripts/build_custom_ops.sh call that build_library runs."""
    command = ["bash", str(repo_root() / "scripts" / "build_custom_ops.sh")]
    if cuda:
        command.append("--cuda")
    if include_dir is not None:
        command += ["--include-dir", str(Path(include_dir).expanduser().resolve())]
    if build_dir is not None:
        command += ["--build-dir", str(Path(build_dir).expanduser().resolve())]
    return command


def build_library(cuda: bool = False, include_dir: str | None = None, build_dir: str | None = None) -> str:
    """Build the library with CMake (incrementally) and return its path.

    ``cuda`` adds the CUDA kernels (needs nvcc); ``include_dir`` is a folder with
    the ONNX Runtime headers (fetched into ``<repo>/.ort_headers`` when omitted);
    ``build_dir`` defaults to ``<repo>/build/custom_ops`` (``<repo>/build/custom_ops_cuda``
    with ``cuda``, where :func:`get_library_path` looks first for CUDA). Raises
    :class:`BuildError` with the tail of the build log on failure.
    """
    root = repo_root()
    if not (root / "custom_ops" / "CMakeLists.txt").is_file():
        raise BuildError(f"the custom-op sources are not here ({root / 'custom_ops'}); building needs "
                         "a source checkout of mamba-export")
    if include_dir is not None and not (Path(include_dir).expanduser() / "onnxruntime_c_api.h").is_file():
        raise BuildError(f"include_dir {include_dir} has no onnxruntime_c_api.h; give the folder that "
                         "holds the ONNX Runtime headers")
    if cuda and build_dir is None:
        build_dir = str(cuda_build_dir())
    command = build_command(cuda, include_dir, build_dir)
    try:
        result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    except OSError as error:
        raise BuildError(f"could not run {' '.join(command)}: {error}") from error
    log = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        tail = "\n".join(log.splitlines()[-LOG_TAIL_LINES:])
        raise BuildError(f"building the custom-op library failed (exit code {result.returncode}) "
                         f"running {' '.join(command)}:\n{tail}")
    built = Path(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else None
    if built is None or not built.is_file():
        raise BuildError(f"the build reported success but no library was found; output:\n{log}")
    return str(built)
