// Whether our CUDA kernels are launched as programmatic dependents of the kernel before
// them (Hopper's programmatic dependent launch). A decode step is about 170 short kernels
// in a CUDA graph, and each waits for the one before it to finish, drain and hand over
// before its own blocks start: a dependent launch lets our kernels' blocks be scheduled
// while the previous kernel's last blocks finish, and each waits (griddepcontrol.wait,
// common/cuda_launch.cuh) before it reads any input. The results are the same bits.
//
// They pay off where every kernel of a step is ours: decode at up to kDependentLaunchMaxRows rows
// (batch x length), where Linear's products run our kernels too (its matrix-vector kernel up to
// kLinearVectorRows, its tensor-core kernel up to kLinearTileRows in float16 and bfloat16). There a
// mamba-130m step on the H200 went from 0.60 to 0.43 ms at batch 1; between cuBLAS's products
// (prefill, float32 decode, or a graph of MatMul nodes) they cost about 2 %
// (results/gpu/2026-12-01-linear/). So each op's CUDA binding opens a DependentLaunchScope with its
// call's rows, and only small calls launch as dependents.
//
// On by default; a process-wide switch, so that one process can time both:
// mamba_export_ops_set_dependent_launch (build_info.cc) sets it through ctypes;
// MAMBA_EXPORT_DEPENDENT_LAUNCH=0 starts a process with it off. Launches only become dependent on
// GPUs of compute capability 9.0 or newer.
// A CUDA graph keeps the launches it captured: switch before a session captures.
// No CUDA types, so plain C++ can include it.
#pragma once

#include "mamba_export_ops/linear.h"  // kLinearTileRows

namespace mamba_export_ops {

// Defined in common/dependent_launch.cu (CUDA builds only).
bool GetDependentLaunch();
bool SetDependentLaunch(bool on);  // returns the previous setting

// Rows (batch x length) up to which a call's kernels launch as dependents: those whose products
// Linear's own kernels take.
constexpr long long kDependentLaunchMaxRows = kLinearTileRows;

// While one is open on a thread, that thread's launches are dependent only if its call has at most
// kDependentLaunchMaxRows rows. Launches outside any scope follow the switch alone.
class DependentLaunchScope {
 public:
  explicit DependentLaunchScope(long long rows);
  ~DependentLaunchScope();
  DependentLaunchScope(const DependentLaunchScope&) = delete;
  DependentLaunchScope& operator=(const DependentLaunchScope&) = delete;

 private:
  bool previous_;
};

}  // namespace mamba_export_ops
