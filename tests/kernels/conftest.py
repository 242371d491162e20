"""Run the Triton kernels in Triton's interpreter when there is no CUDA GPU.

Triton decides at decoration time (when ``mamba_export.kernels.*`` is first
imported) whether a kernel is compiled or interpreted, so TRITON_INTERPRET must
be set before the kernel modules are imported; this conftest is loaded before
the test modules of this folder. os.environ is process-wide, so it is set only
when no GPU exists (nothing could be compiled for one anyway) and only if the
variable is not already set, which leaves an explicit choice untouched. Other
test folders do not launch Triton kernels on CPU, so the variable does not
change what they test. Should a test elsewhere have imported the kernel modules
first, they are reloaded so that their kernels are decorated again, interpreted.
"""

import importlib
import os
import sys

import torch

_KERNEL_MODULES = ("mamba_export.kernels._common", "mamba_export.kernels.triton_scan",
                   "mamba_export.kernels.triton_state_update")

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    for _name in _KERNEL_MODULES:
        if _name in sys.modules:
            importlib.reload(sys.modules[_name])
