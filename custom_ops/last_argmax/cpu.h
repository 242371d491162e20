// The CPU kernel of LastArgMax. It computes on LastArgMaxParams alone (sizes already
// validated) and knows nothing about ONNX Runtime; the caller lends it a parallel-for
// so blocks of sequences run on the session's intra-op threads.
#pragma once

#include "common/parallel_for.h"
#include "last_argmax/params.h"

namespace mamba_export_ops {

// Writes each sequence's argmax of its last position's logits. Sequences are independent
// and split across tasks; within one the values are compared in float32 in index order.
void RunLastArgMaxCpu(const LastArgMaxParams& params, const ParallelFor& parallel_for);

}  // namespace mamba_export_ops
