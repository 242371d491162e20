// Whether our CUDA kernels are launched as programmatic dependents of the kernel before
// them (Hopper's programmatic dependent launch). A decode step is about 170 short kernels
// in a CUDA graph, and each waits for the one before it to finish, drain and hand over
// before its own blocks start: a dependent launch lets our kernels' blocks be scheduled
// while the previous kernel's last blocks finish, and each waits (griddepcontrol.wait,
// common/cuda_launch.cuh) before it reads any input. The results are the same bits.
//
// A process-wide switch, so that one process can time both: mamba_export_ops_set_dependent_launch
// (build_info.cc) sets it through ctypes; MAMBA_EXPORT_DEPENDENT_LAUNCH=1 starts a process with
// it on. Off by default until a GPU round has measured it. Launches only become dependent on
// GPUs of compute capability 9.0 or newer.
// A CUDA graph keeps the launches it captured: switch before a session captures.
// No CUDA types, so plain C++ can include it.
#pragma once

namespace mamba_export_ops {

// Defined in common/dependent_launch.cu (CUDA builds only).
bool GetDependentLaunch();
bool SetDependentLaunch(bool on);  // returns the previous setting

}  // namespace mamba_export_ops
