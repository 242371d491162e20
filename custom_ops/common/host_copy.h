// A small device-to-host copy for the Python runtime, through this library's CUDA runtime.
//
// Why: generate() reads each decode step's chosen tokens (batch int64s) back to the host. Through
// onnxruntime's OrtValue.numpy() that read cost 14 to 36 us a token on the H200 beside a 0.64 ms
// batch-32 step (results/gpu/2026-12-02-lean-decode-scan/decode_ab.json, loop columns): a new
// array, the provider's data transfer and its synchronisation. One cudaMemcpy into an array the
// runtime keeps does the same work. The step that wrote the tokens has finished when the runtime
// reads them (ONNX Runtime synchronises its stream at the end of a run), so a plain copy is
// ordered after it. No CUDA types, so plain C++ can include it.
#pragma once

#include <cstddef>

namespace mamba_export_ops {

// Copies `bytes` from device memory `source` on CUDA device `device` to host memory `target`;
// returns the cudaError_t as an int (0 is success). Defined in common/host_copy.cu.
int CopyDeviceToHost(void* target, const void* source, size_t bytes, int device);

}  // namespace mamba_export_ops
