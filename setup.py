"""Build steps pyproject.toml cannot declare: the wheel carries the compiled op library.

``pip wheel .`` runs scripts/build_custom_ops.sh (CMake; the ONNX Runtime headers
come from custom_ops/cmake/OrtHeaders.cmake's usual places) and puts
``libmamba_export_ops.so`` in the wheel at ``mamba_export/_lib/``, where
``mamba_export.runtime.library`` finds it once installed. The wheel is then
platform-tagged: ``py3-none-<platform>``, since the library depends on the machine
and on no Python ABI.

Environment:
  MAMBA_EXPORT_WITH_CUDA=1            also compile the CUDA kernels (needs nvcc)
  MAMBA_EXPORT_ORT_INCLUDE_DIR=DIR    ONNX Runtime headers to build against
                                      (default: <repo>/.ort_headers, fetched if missing)

Editable installs (``pip install -e .``) build nothing: development builds the
library with ``mamba-export build-ops`` into build/custom_ops/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
# The library's name and build command have one owner; importing it loads nothing heavy.
from mamba_export.runtime.library import LIBRARY_NAME, build_command  # noqa: E402

TRUE = {"1", "on", "true", "yes"}


def _with_cuda() -> bool:
    return os.environ.get("MAMBA_EXPORT_WITH_CUDA", "").strip().lower() in TRUE


def build_library() -> Path:
    """Run scripts/build_custom_ops.sh into its own build folder and return the library's path."""
    cuda = _with_cuda()
    command = build_command(cuda=cuda, include_dir=os.environ.get("MAMBA_EXPORT_ORT_INCLUDE_DIR") or None,
                            build_dir=str(ROOT / "build" / ("wheel_ops_cuda" if cuda else "wheel_ops")))
    result = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"building {LIBRARY_NAME} for the wheel failed: {' '.join(command)} "
                         f"exited with {result.returncode} (its log is above)")
    return Path(result.stdout.strip().splitlines()[-1])


class BuildPyWithLibrary(build_py):
    """build_py, plus the op library copied into the build tree at mamba_export/_lib/."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "mamba_export" / "_lib"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(build_library(), target / LIBRARY_NAME)


class WithNativeCode(Distribution):
    """Tells setuptools the package holds native code, so it installs to platlib and the wheel is not pure."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """A wheel for this platform and any Python 3: the library is native code without Python ABI."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(distclass=WithNativeCode, cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel})
