// The CPU kernel of Linear. It computes on LinearParams alone (sizes already validated) and
// knows nothing about ONNX Runtime; the caller lends it a parallel-for so blocks of output
// columns run on the session's intra-op threads.
#pragma once

#include "common/parallel_for.h"
#include "linear/params.h"

namespace mamba_export_ops {

// Runs the product: x is widened to float32 once, each task widens its rows of the weight and
// takes their dot products with every row of x. Every sum and product is in float32.
void RunLinearCpu(const LinearParams& params, const ParallelFor& parallel_for);

}  // namespace mamba_export_ops
