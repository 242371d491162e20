// The CPU kernel of CausalConv1d. It computes on CausalConvParams alone (sizes
// already validated) and knows nothing about ONNX Runtime; the caller lends it a
// parallel-for so the convolution runs on the session's intra-op threads.
#pragma once

#include "causal_conv/params.h"
#include "common/parallel_for.h"

namespace mamba_export_ops {

// Runs the convolution. Blocks of channels of one batch row are independent and split
// across tasks; within a block every loop runs over contiguous channels (the inner
// dimension of x and y), so it vectorises. Every sum and product is in float32.
void RunCausalConvCpu(const CausalConvParams& params, const ParallelFor& parallel_for);

}  // namespace mamba_export_ops
