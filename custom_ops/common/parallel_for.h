// The parallel-for a CPU kernel borrows from its caller. Kernels know nothing about
// ONNX Runtime; the binding lends them the session's intra-op threads through this.
#pragma once

#include <cstddef>

namespace mamba_export_ops {

// Calls task(task_state, i) for every i in [0, count), possibly in parallel, and
// returns when all calls are done.
struct ParallelFor {
  void (*run)(void* runner_state, void (*task)(void*, size_t), size_t count, void* task_state) = nullptr;
  void* runner_state = nullptr;
};

}  // namespace mamba_export_ops
