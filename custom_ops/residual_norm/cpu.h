// The CPU kernel of ResidualRMSNorm. It computes on ResidualNormParams alone (sizes
// already validated) and knows nothing about ONNX Runtime; the caller lends it a
// parallel-for so blocks of rows run on the session's intra-op threads.
#pragma once

#include "common/parallel_for.h"
#include "residual_norm/params.h"

namespace mamba_export_ops {

// Runs the norm. Rows are independent and split across tasks; within a row every loop
// runs over contiguous hidden units, so it vectorises. Every sum and product is in float32.
void RunResidualNormCpu(const ResidualNormParams& params, const ParallelFor& parallel_for);

}  // namespace mamba_export_ops
