// How the chunked CUDA scan loads channels-last tiles: strided, straight from global
// memory (cuda_chunked.cuh), or staged through shared memory with coalesced loads
// (cuda_chunked_staged.cuh, the default where it applies). A process-wide switch, so that one process can time
// both on the same inputs: mamba_export_ops_set_scan_loads (build_info.cc) sets it through
// ctypes, on the very library ONNX Runtime loaded; MAMBA_EXPORT_SCAN_LOADS=strided starts a
// process in the strided mode (cuda.cu). No CUDA types, so plain C++ can include it.
#pragma once

namespace mamba_export_ops {

enum class ScanLoads : int { kStrided = 0, kStaged = 1 };

// Defined in cuda.cu (CUDA builds only).
ScanLoads GetScanLoads();
ScanLoads SetScanLoads(ScanLoads loads);  // returns the previous mode

}  // namespace mamba_export_ops
