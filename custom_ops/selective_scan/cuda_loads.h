// Process-wide switches between CUDA scan kernels that give the same bits, so that one
// process can time both on the same inputs; build_info.cc sets them through ctypes, on the
// very library ONNX Runtime loaded. No CUDA types, so plain C++ can include it.
//
// ScanLoads: how the chunked scan loads channels-last tiles: strided, straight from global
// memory (cuda_chunked.cuh), or staged through shared memory with coalesced loads
// (cuda_chunked_staged.cuh, the default where it applies). mamba_export_ops_set_scan_loads;
// MAMBA_EXPORT_SCAN_LOADS=strided starts a process in the strided mode (cuda.cu).
//
// DecodeScan: the short-sequence (decode) path: a group of lanes per (batch, channel)
// (cuda_sequential.cuh, the default), or one thread per (batch, channel) where the batch is
// large (cuda_channel.cuh). mamba_export_ops_set_decode_scan; MAMBA_EXPORT_DECODE_SCAN=channel
// starts a process with the channel kernel where it applies.
#pragma once

namespace mamba_export_ops {

enum class ScanLoads : int { kStrided = 0, kStaged = 1 };

enum class DecodeScan : int { kLanes = 0, kChannel = 1 };

// Defined in cuda.cu (CUDA builds only).
ScanLoads GetScanLoads();
ScanLoads SetScanLoads(ScanLoads loads);  // returns the previous mode
DecodeScan GetDecodeScan();
DecodeScan SetDecodeScan(DecodeScan scan);  // returns the previous mode

}  // namespace mamba_export_ops
