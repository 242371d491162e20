// What this build of the library holds, asked before any session is built.
//
// A CUDA session needs the CUDA kernels: without them ONNX Runtime quietly runs our
// nodes on the CPU provider. The Python runtime loads the library with ctypes and
// calls this function, so it can refuse a CPU-only build for provider "cuda" with a
// message that says how to build the right one. Plain C, no ONNX Runtime types.

extern "C" __attribute__((visibility("default"))) int mamba_export_ops_has_cuda() {
#if defined(MAMBA_EXPORT_WITH_CUDA)
  return 1;
#else
  return 0;
#endif
}
