// The CPU kernel of SelectiveScan. It computes on SelectiveScanParams alone (sizes
// already validated) and knows nothing about ONNX Runtime; the caller lends it a
// parallel-for so the scan runs on the session's intra-op threads.
#pragma once

#include <cstddef>

#include "common/parallel_for.h"
#include "selective_scan/params.h"

namespace mamba_export_ops {

// A parallel-for that runs the tasks one after another on the calling thread.
ParallelFor SerialFor();

// Runs the scan. Rows (batch, channel) are independent and split across tasks;
// every sum and product is in float32. Throws std::bad_alloc if the time-major
// copies of B and C (the size of B and C in float32) cannot be allocated.
void RunSelectiveScanCpu(const SelectiveScanParams& params, const ParallelFor& parallel_for);

}  // namespace mamba_export_ops
