"""Where the SelectiveScan custom-op library lives, and how to build it.

ONNX Runtime needs ``libmamba_export_ops.so`` registered in its session options
before it can run a graph with our ``SelectiveScan`` node. This module finds the
built library (or says exactly where it looked and how to build it) and drives the
CMake build through ``scripts/build_custom_ops.sh``. Importing it does nothing:
no file system access, no onnxruntime import.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mamba_export.errors import BuildError, CustomOpsNotFoundError

LIBRARY_NAME = "libmamba_export_ops.so"
ENV_VAR = "MAMBA_EXPORT_OPS_LIBRARY"
BUILD_COMMAND = "mamba-export build-ops"
# Lines of the build log quoted in a BuildError.
LOG_TAIL_LINES = 40


def repo_root() -> Path:
    """The source tree this package was installed from (editable installs)."""
    return Path(__file__).resolve().parents[2]


def default_build_dir() -> Path:
    return repo_root() / "build" / "custom_ops"


def packaged_library() -> Path:
    """Where a wheel would carry a prebuilt library."""
    return Path(__file__).resolve().parents[1] / "_lib" / LIBRARY_NAME


def get_library_path() -> str:
    """The path of the built custom-op library.

    Looks at ``$MAMBA_EXPORT_OPS_LIBRARY`` (which, when set, must name an existing
    file), then ``<repo>/build/custom_ops/``, then ``mamba_export/_lib/``. Raises
    :class:`CustomOpsNotFoundError` listing the places and the build command.
    """
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_file():
            raise CustomOpsNotFoundError(
                f"{ENV_VAR} is {from_env!r}, which is not a file; unset it or point it at a built "
                f"{LIBRARY_NAME} (build one with `{BUILD_COMMAND}`)")
        return str(path.resolve())
    candidates = [default_build_dir() / LIBRARY_NAME, packaged_library()]
    for path in candidates:
        if path.is_file():
            return str(path)
    looked = ", ".join(str(path) for path in candidates)
    raise CustomOpsNotFoundError(
        f"the SelectiveScan custom-op library {LIBRARY_NAME} is not built: looked in ${ENV_VAR} "
        f"(unset), {looked}; build it with `{BUILD_COMMAND}` (or `{BUILD_COMMAND} --cuda` for GPUs)")


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
    ``build_dir`` defaults to ``<repo>/build/custom_ops``. Raises
    :class:`BuildError` with the tail of the build log on failure.
    """
    root = repo_root()
    if not (root / "custom_ops" / "CMakeLists.txt").is_file():
        raise BuildError(f"the custom-op sources are not here ({root / 'custom_ops'}); building needs "
                         "a source checkout of mamba-export")
    if include_dir is not None and not (Path(include_dir).expanduser() / "onnxruntime_c_api.h").is_file():
        raise BuildError(f"include_dir {include_dir} has no onnxruntime_c_api.h; give the folder that "
                         "holds the ONNX Runtime headers")
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
