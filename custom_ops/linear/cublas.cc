// Linear's calls that LinearPathFor leaves to cuBLAS (prefill, larger decode batches), which
// the op library does not link: ONNX Runtime's CUDA provider has already loaded it into the
// process (libcublas.so.13 for CUDA 13 builds, .12 for CUDA 12), and dlopen finds it there,
// so the library keeps loading without CUDA's libraries on its path and uses the same cuBLAS
// as the MatMul nodes it replaces. Only the few entry points used are declared, with the
// values of cublas_api.h; their signatures have not changed since cuBLAS 11.
//
// One handle per CUDA stream (a handle's workspace must not be shared by kernels that may run
// at once), made on the stream's first call and kept for the process: a handle cannot be made
// while the stream is being captured into a CUDA graph, and ONNX Runtime runs a graph's nodes
// uncaptured before it captures them. Each handle gets a workspace of its own, so cuBLAS
// allocates nothing during a capture.
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <climits>
#include <map>
#include <mutex>
#include <string>

#include "linear/cuda.h"
#include "mamba_export_ops/linear.h"
#include "mamba_export_ops/status.h"

namespace mamba_export_ops {
namespace {

using Handle = void*;
using CreateFn = int (*)(Handle*);
using SetStreamFn = int (*)(Handle, cudaStream_t);
using SetWorkspaceFn = int (*)(Handle, void*, size_t);
using GemmExFn = int (*)(Handle, int, int, int, int, int, const void*, const void*, int, int, const void*, int, int,
                         const void*, void*, int, int, int, int);

// From cublas_api.h and library_types.h.
constexpr int kOpN = 0, kOpT = 1;
constexpr int kR32F = 0, kR16F = 2, kR16BF = 14;
constexpr int kCompute32F = 68;  // CUBLAS_COMPUTE_32F: float32 sums, no TF32, as the contract says
constexpr int kGemmDefault = -1;
constexpr size_t kWorkspaceBytes = 32u << 20;  // what cuBLAS asks for on Hopper

struct Cublas {
  std::string error;  // why cuBLAS cannot be used; "" when it can
  SetStreamFn set_stream = nullptr;
  CreateFn create = nullptr;
  SetWorkspaceFn set_workspace = nullptr;
  GemmExFn gemm = nullptr;
};

const Cublas& LoadCublas() {
  static const Cublas cublas = [] {
    Cublas loaded;
    constexpr const char* kNames[] = {"libcublas.so.13", "libcublas.so.12"};
    void* library = nullptr;
    for (int flags : {RTLD_NOW | RTLD_NOLOAD, RTLD_NOW}) {  // the one already in the process first
      for (const char* name : kNames) {
        if (library == nullptr) library = dlopen(name, flags);
      }
    }
    if (library == nullptr) {
      loaded.error = "cuBLAS is not in the process and cannot be loaded (libcublas.so.13 or .12; "
                     "ONNX Runtime's CUDA provider brings it)";
      return loaded;
    }
    loaded.create = reinterpret_cast<CreateFn>(dlsym(library, "cublasCreate_v2"));
    loaded.set_stream = reinterpret_cast<SetStreamFn>(dlsym(library, "cublasSetStream_v2"));
    loaded.set_workspace = reinterpret_cast<SetWorkspaceFn>(dlsym(library, "cublasSetWorkspace_v2"));
    loaded.gemm = reinterpret_cast<GemmExFn>(dlsym(library, "cublasGemmEx"));
    if (!loaded.create || !loaded.set_stream || !loaded.set_workspace || !loaded.gemm) {
      loaded.error = "the cuBLAS in the process lacks cublasCreate_v2, cublasSetStream_v2, "
                     "cublasSetWorkspace_v2 or cublasGemmEx";
    }
    return loaded;
  }();
  return cublas;
}

// The handle of `stream`, made on its first call; "" or the reason there is none.
std::string HandleFor(const Cublas& cublas, cudaStream_t stream, Handle* handle) {
  static std::mutex mutex;
  static std::map<cudaStream_t, Handle> handles;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto found = handles.find(stream);
  if (found != handles.end()) {
    *handle = found->second;
    return "";
  }
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capturing) == cudaSuccess && capturing != cudaStreamCaptureStatusNone) {
    return "the stream is being captured into a CUDA graph before any uncaptured call on it made its cuBLAS "
           "handle; run the graph once without capture first";
  }
  Handle made = nullptr;
  if (const int status = cublas.create(&made); status != 0) return StrCat("cublasCreate failed with status ", status);
  void* workspace = nullptr;
  if (cudaMalloc(&workspace, kWorkspaceBytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return StrCat("no ", kWorkspaceBytes >> 20, " MiB of GPU memory for cuBLAS's workspace");
  }
  if (const int status = cublas.set_workspace(made, workspace, kWorkspaceBytes); status != 0) {
    return StrCat("cublasSetWorkspace failed with status ", status);
  }
  handles.emplace(stream, made);
  *handle = made;
  return "";
}

int CudaType(LinearDType dtype) {
  switch (dtype) {
    case LinearDType::kFloat32: return kR32F;
    case LinearDType::kFloat16: return kR16F;
    case LinearDType::kBFloat16: return kR16BF;
  }
  return kR32F;
}

}  // namespace

std::string RunLinearCublas(const LinearParams& p, cudaStream_t stream) {
  const Cublas& cublas = LoadCublas();
  const auto fail = [&](const std::string& why) {
    return StrCat(kLinearOpType, ": x has ", p.rows, " rows and the weight is (", p.outer, ", ", p.inner,
                  "); such a call goes to cuBLAS, and ", why);
  };
  if (!cublas.error.empty()) return fail(cublas.error);
  if (p.rows > INT_MAX || p.inner > INT_MAX || p.outer > INT_MAX) {
    return fail(StrCat("cuBLAS takes at most ", INT_MAX, " rows, columns and inner size"));
  }
  Handle handle = nullptr;
  if (std::string error = HandleFor(cublas, stream, &handle); !error.empty()) return fail(error);
  if (const int status = cublas.set_stream(handle, stream); status != 0) {
    return fail(StrCat("cublasSetStream failed with status ", status));
  }
  // Column-major, y^T (N, M) = weight (N, K), read as the transpose of a (K, N) matrix, times x^T (K, M).
  const float one = 1.0f, zero = 0.0f;
  const int m = static_cast<int>(p.rows), n = static_cast<int>(p.outer), k = static_cast<int>(p.inner);
  const int type = CudaType(p.dtype);
  const int status = cublas.gemm(handle, kOpT, kOpN, n, m, k, &one, p.weight, type, k, p.x, type, k, &zero, p.y,
                                 type, n, kCompute32F, kGemmDefault);
  if (status != 0) return fail(StrCat("cublasGemmEx failed with status ", status));
  return "";
}

}  // namespace mamba_export_ops
