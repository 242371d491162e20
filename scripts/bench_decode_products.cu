// Decode's matrix products with kernels of our own, against cuBLAS, in CUDA graphs.
//
// Why: a batch-1 decode step of mamba-130m is 171 kernels, and its 96 cuBLAS products take
// 2.8 to 4.8 us each although their weights stream in well under 1 us
// (results/gpu/2026-12-01-gemm/). What a kernel costs in a replayed graph is mostly the gap
// between one kernel ending and the next starting. Hopper's dependent launches let the
// next kernel start while the one before it finishes (it waits with griddepcontrol.wait
// before reading), but only kernels that we launch can be launched that way; cuBLAS's
// cannot. This program measures whether matrix-vector kernels of our own, launched as
// dependents, would take a real share off the step before such an op is built:
//
//   cublas_nn      cublasGemmEx on W stored (K, N), as ONNX Runtime's MatMul runs the export
//   cublas_tn      the same on W stored (N, K), read transposed
//   gemv           our kernel (W stored (N, K): each output row a run of lanes along K), plain launches
//   gemv_pdl       the same launched as dependents, waiting before any read
//   gemv_pdl_early + the dependents' launch released at the kernel's start
//   gemv_pdl_l2    + the kernel's weight rows prefetched into L2 before the wait (weights are
//                    initializers: nothing writes them, so they may be read early)
//   empty / empty_pdl   kernels that do nothing: the floor of a chain of that many kernels
//   op / op_pdl    the Linear op's own launcher (custom_ops/linear/cuda.cu, rows up to 4), dependent
//                  launches off / on (the library's process-wide switch)
//   op_tile / op_tile_pdl   the Linear op's tensor-core kernel (custom_ops/linear/cuda_tile.cu, up to 32
//                  rows), dependent launches off / on; op_tile_pdl_16, _32: 16 or 32 columns a block for
//                  every batch (by default 32 up to 16 rows, 16 past them); op_tile_pdl_nosplit: K not split
//                  across the blocks of a cluster
//   <variant>@in, @x, @dt, @out   one product of each layer alone (in_proj, x_proj, dt_proj, out_proj)
//
// and a whole layer's kernels, 7 a layer as in the export's graph (norm, in_proj, conv, x_proj,
// dt_proj, scan, out_proj; the three non-products stand in as element-wise kernels over the
// same tensors): layer_cublas (products by cuBLAS, ours plain, as today), layer_cublas_pdl (ours
// as dependents; a dependent of a cuBLAS kernel still waits for it), layer_gemv_pdl (every
// kernel ours, as dependents, weights prefetched), layer_op_pdl (the Linear op's kernel, with the
// element-wise kernels as dependents).
//
// Each product is checked against float64 on the host first (relative to the largest |y|; float16
// output rounding is 2^-11). Times are replays of a graph of --steps steps, per step, median of
// --replays. Usage (libcublas comes from torch's install on the GPU machine):
//   nvcc -O3 -std=c++17 -arch=sm_90 -cudart static -Icustom_ops -Icustom_ops/include -o bench_decode_products \
//     scripts/bench_decode_products.cu custom_ops/linear/cuda.cu custom_ops/linear/cuda_tile.cu \
//     custom_ops/common/dependent_launch.cu -ldl
//   ./bench_decode_products --cublas /path/libcublas.so.13 --config mamba-130m --batches 1,4,16 --json out.json
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/dependent_launch.h"
#include "linear/cuda.h"

#define CHECK_CUDA(call)                                                                       \
  do {                                                                                         \
    cudaError_t status_ = (call);                                                              \
    if (status_ != cudaSuccess) {                                                              \
      std::fprintf(stderr, "error: %s failed at line %d: %s\n", #call, __LINE__,             \
                   cudaGetErrorString(status_));                                               \
      std::exit(1);                                                                            \
    }                                                                                          \
  } while (0)

// ---- cuBLAS, loaded at run time (the few entry points used; values from cublas_api.h) ----
using cublasHandle_t = void*;
using CreateFn = int (*)(cublasHandle_t*);
using SetStreamFn = int (*)(cublasHandle_t, cudaStream_t);
using SetWorkspaceFn = int (*)(cublasHandle_t, void*, size_t);
using GemmExFn = int (*)(cublasHandle_t, int, int, int, int, int, const void*, const void*, int, int,
                         const void*, int, int, const void*, void*, int, int, int, int);
constexpr int kOpN = 0, kOpT = 1, kR16F = 2, kCompute32F = 68, kGemmDefault = -1;

struct Cublas {
  cublasHandle_t handle = nullptr;
  GemmExFn gemm = nullptr;
  bool Load(const char* path, cudaStream_t stream) {
    void* library = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (library == nullptr) {
      std::fprintf(stderr, "error: cannot load cuBLAS from %s: %s\n", path, dlerror());
      return false;
    }
    auto create = reinterpret_cast<CreateFn>(dlsym(library, "cublasCreate_v2"));
    auto set_stream = reinterpret_cast<SetStreamFn>(dlsym(library, "cublasSetStream_v2"));
    auto set_workspace = reinterpret_cast<SetWorkspaceFn>(dlsym(library, "cublasSetWorkspace_v2"));
    gemm = reinterpret_cast<GemmExFn>(dlsym(library, "cublasGemmEx"));
    if (!create || !set_stream || !set_workspace || !gemm) {
      std::fprintf(stderr, "error: %s lacks a cuBLAS entry point\n", path);
      return false;
    }
    if (create(&handle) != 0 || set_stream(handle, stream) != 0) return false;
    void* workspace = nullptr;  // a workspace of its own, so that capture allocates nothing
    CHECK_CUDA(cudaMalloc(&workspace, 32 << 20));
    return set_workspace(handle, workspace, 32 << 20) == 0;
  }
};

// ---- the kernels ----
__device__ __forceinline__ void WaitForPrevious() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void ReleaseDependents() { asm volatile("griddepcontrol.launch_dependents;"); }
__device__ __forceinline__ void PrefetchL2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

struct Flags {
  bool wait = false;      // launched as a dependent: wait before reading
  bool early = false;     // release the next kernel's launch at the start
  bool prefetch = false;  // prefetch the weight rows into L2 before the wait
};

// y[m, n] = sum_k x[m, k] w[n, k] (x row stride ldx, y row stride ldy); K a multiple of 8.
// `lanes` consecutive lanes (a power of two, at most 32) share one row n, each reading 16-byte
// pieces of it; a warp covers 32 / lanes rows.
template <int M>
__global__ void __launch_bounds__(256) GemvKernel(const __half* __restrict__ x, int ldx,
                                                  const __half* __restrict__ w, __half* __restrict__ y,
                                                  int ldy, int K, int N, int lanes, Flags flags) {
  const int lane = threadIdx.x & 31;
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int n = warp * (32 / lanes) + lane / lanes;
  const int sub = lane & (lanes - 1);
  const bool valid = n < N;
  const __half* row = w + static_cast<size_t>(valid ? n : 0) * K;
  if (flags.early) ReleaseDependents();
  if (flags.prefetch && valid) {
    for (int offset = sub * 128; offset < K * 2; offset += lanes * 128) {
      PrefetchL2(reinterpret_cast<const char*>(row) + offset);
    }
  }
  if (flags.wait) WaitForPrevious();
  float sum[M];
#pragma unroll
  for (int m = 0; m < M; ++m) sum[m] = 0.f;
  if (valid) {
    for (int v = sub; v < K / 8; v += lanes) {
      const uint4 wv = __ldg(reinterpret_cast<const uint4*>(row) + v);
      const __half2* wh = reinterpret_cast<const __half2*>(&wv);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint4 xv = *(reinterpret_cast<const uint4*>(x + static_cast<size_t>(m) * ldx) + v);
        const __half2* xh = reinterpret_cast<const __half2*>(&xv);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float2 a = __half22float2(wh[j]);
          const float2 b = __half22float2(xh[j]);
          sum[m] = fmaf(a.x, b.x, fmaf(a.y, b.y, sum[m]));
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    for (int offset = lanes / 2; offset > 0; offset /= 2) sum[m] += __shfl_xor_sync(0xffffffffu, sum[m], offset);
  }
  if (valid && sub == 0) {
#pragma unroll
    for (int m = 0; m < M; ++m) y[static_cast<size_t>(m) * ldy + n] = __float2half_rn(sum[m]);
  }
}

// The stand-in for a layer's other kernels: out = in * 0.5 + 0.25 over count elements.
__global__ void ElementwiseKernel(const __half* __restrict__ in, __half* __restrict__ out, int count, Flags flags) {
  if (flags.early) ReleaseDependents();
  if (flags.wait) WaitForPrevious();
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count) out[i] = __float2half_rn(__half2float(in[i]) * 0.5f + 0.25f);
}

__global__ void EmptyKernel(Flags flags) {
  if (flags.early) ReleaseDependents();
  if (flags.wait) WaitForPrevious();
}

template <typename... Params, typename... Args>
void Launch(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, bool dependent, Args... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = dependent ? 1 : 0;
  CHECK_CUDA(cudaLaunchKernelEx(&config, kernel, args...));
}

int LanesFor(int K) {
  int lanes = 1;
  while (lanes < 32 && lanes * 8 < K / 4) lanes *= 2;  // each lane at least ~4 pieces of 16 bytes
  return lanes;
}

void LaunchGemv(int M, const __half* x, int ldx, const __half* w, __half* y, int ldy, int K, int N, Flags flags,
                cudaStream_t stream) {
  const int lanes = LanesFor(K);
  const int rows_per_block = 8 * (32 / lanes);
  const dim3 grid((N + rows_per_block - 1) / rows_per_block), block(256);
  const bool dependent = flags.wait;
  switch (M) {
    case 1: Launch(GemvKernel<1>, grid, block, stream, dependent, x, ldx, w, y, ldy, K, N, lanes, flags); break;
    case 2: Launch(GemvKernel<2>, grid, block, stream, dependent, x, ldx, w, y, ldy, K, N, lanes, flags); break;
    case 4: Launch(GemvKernel<4>, grid, block, stream, dependent, x, ldx, w, y, ldy, K, N, lanes, flags); break;
    case 8: Launch(GemvKernel<8>, grid, block, stream, dependent, x, ldx, w, y, ldy, K, N, lanes, flags); break;
    case 16: Launch(GemvKernel<16>, grid, block, stream, dependent, x, ldx, w, y, ldy, K, N, lanes, flags); break;
    case 32: Launch(GemvKernel<32>, grid, block, stream, dependent, x, ldx, w, y, ldy, K, N, lanes, flags); break;
    default: std::fprintf(stderr, "error: batch %d is not one of 1, 2, 4, 8, 16, 32\n", M); std::exit(2);
  }
}

// ---- the model's shapes ----
struct Config {
  const char* name;
  int hidden, inner, rank, state, layers;
};
const Config kConfigs[] = {{"mamba-130m", 768, 1536, 48, 16, 24}, {"mamba-1.4b", 2048, 4096, 128, 16, 48}};

struct Product {
  const char* name;
  int K, N;
};

struct Layer {
  __half* w[4];   // (N, K), ours and cublas_tn
  __half* wt[4];  // (K, N), cublas_nn
};

struct Buffers {
  __half *h, *a, *b, *c, *t;  // hidden (M, H), in_proj out (M, 2I), x_proj out (M, R+2S), dt out (M, I), scratch
};

std::vector<__half> RandomHalf(size_t count, float scale, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<__half> values(count);
  for (auto& v : values) v = __float2half_rn(dist(rng));
  return values;
}

__half* Upload(const std::vector<__half>& host) {
  __half* device = nullptr;
  CHECK_CUDA(cudaMalloc(&device, host.size() * sizeof(__half)));
  CHECK_CUDA(cudaMemcpy(device, host.data(), host.size() * sizeof(__half), cudaMemcpyHostToDevice));
  return device;
}

enum class Kind { kCublasNN, kCublasTN, kGemv, kOp, kOpTile };

// One product y (M, N) = x (M, K) w^T with the given kind.
void RunProduct(Kind kind, Cublas& cublas, int M, const __half* x, int ldx, const Layer& layer, int p, __half* y,
                int ldy, int K, int N, Flags flags, cudaStream_t stream,
                const mamba_export_ops::LinearTileShape& tile = mamba_export_ops::LinearTileShape()) {
  const float one = 1.f, zero = 0.f;
  if (kind == Kind::kGemv) {
    LaunchGemv(M, x, ldx, layer.w[p], y, ldy, K, N, flags, stream);
  } else if (kind == Kind::kOp || kind == Kind::kOpTile) {
    if (ldx != K || ldy != N) { std::fprintf(stderr, "error: the op reads dense rows\n"); std::exit(1); }
    mamba_export_ops::LinearParams params;
    params.rows = M;
    params.inner = K;
    params.outer = N;
    params.dtype = mamba_export_ops::LinearDType::kFloat16;
    params.weight_constant = true;
    params.x = x;
    params.weight = layer.w[p];
    params.y = y;
    if (kind == Kind::kOp) {
      CHECK_CUDA(mamba_export_ops::LaunchLinearVectorCuda(params, stream));
    } else {
      CHECK_CUDA(mamba_export_ops::LaunchLinearTileCuda(params, stream, tile));
    }
  } else if (kind == Kind::kCublasNN) {
    // Row-major y = x wt, wt (K, N): column-major y^T (N, M) = wt^T (N, K) x^T (K, M).
    int status = cublas.gemm(cublas.handle, kOpN, kOpN, N, M, K, &one, layer.wt[p], kR16F, N, x, kR16F, ldx, &zero,
                             y, kR16F, ldy, kCompute32F, kGemmDefault);
    if (status != 0) { std::fprintf(stderr, "error: cublasGemmEx returned %d\n", status); std::exit(1); }
  } else {
    int status = cublas.gemm(cublas.handle, kOpT, kOpN, N, M, K, &one, layer.w[p], kR16F, K, x, kR16F, ldx, &zero,
                             y, kR16F, ldy, kCompute32F, kGemmDefault);
    if (status != 0) { std::fprintf(stderr, "error: cublasGemmEx returned %d\n", status); std::exit(1); }
  }
}

struct Variant {
  std::string name;
  Kind kind;
  Flags product_flags;
  bool layer;           // a whole layer (7 kernels) rather than the products alone
  Flags other_flags;    // the layer's element-wise kernels
  bool empty = false;   // empty kernels, as many as the products
  bool op_dependent = false;  // the library's dependent-launch switch, for Kind::kOp
  mamba_export_ops::LinearTileShape tile = {};      // for Kind::kOpTile
  int only = -1;        // one product of each layer (0 in_proj, 1 x_proj, 2 dt_proj, 3 out_proj); -1: all
};

// Columns a block forced to 16 or 32; K not split across blocks.
const mamba_export_ops::LinearTileShape kNarrowTile{16}, kWideTile{32}, kNoSplitTile{0, 1};

void Element(const __half* in, __half* out, int count, Flags flags, cudaStream_t stream) {
  Launch(ElementwiseKernel, dim3((count + 255) / 256), dim3(256), stream, flags.wait, in, out, count, flags);
}

// One decode step of the variant: every layer's kernels in stream order.
void Step(const Variant& v, Cublas& cublas, int M, const Config& config, const std::vector<Layer>& layers,
          Buffers& buf, cudaStream_t stream) {
  const int H = config.hidden, I = config.inner, P = config.rank + 2 * config.state;
  for (const Layer& layer : layers) {
    if (v.empty) {
      for (int i = 0; i < 4; ++i) Launch(EmptyKernel, dim3(1), dim3(32), stream, v.product_flags.wait, v.product_flags);
      continue;
    }
    if (v.layer) Element(buf.h, buf.h, M * H, v.other_flags, stream);  // norm
    const auto product = [&](int p, const __half* x, int ldx, __half* y, int ldy, int K, int N) {
      if (v.only < 0 || v.only == p) RunProduct(v.kind, cublas, M, x, ldx, layer, p, y, ldy, K, N, v.product_flags,
                                                stream, v.tile);
    };
    product(0, buf.h, H, buf.a, 2 * I, H, 2 * I);
    if (v.layer) Element(buf.a, buf.t, M * I, v.other_flags, stream);  // conv: in_proj's x half -> t
    product(1, buf.t, I, buf.b, P, I, P);
    product(2, buf.b, P, buf.c, I, P, I);
    if (v.layer) Element(buf.c, buf.c, M * I, v.other_flags, stream);  // scan
    product(3, buf.c, I, buf.h, H, I, H);
  }
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Per-step time of a graph of `steps` steps, median of `replays` replays, in microseconds.
double TimeVariant(const Variant& v, Cublas& cublas, int M, const Config& config, const std::vector<Layer>& layers,
                   Buffers& buf, cudaStream_t stream, int steps, int replays) {
  mamba_export_ops::SetDependentLaunch(v.op_dependent);
  Step(v, cublas, M, config, layers, buf, stream);  // outside capture: cuBLAS picks its kernels
  CHECK_CUDA(cudaStreamSynchronize(stream));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int s = 0; s < steps; ++s) Step(v, cublas, M, config, layers, buf, stream);
  CHECK_CUDA(cudaStreamEndCapture(stream, &graph));
  CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  for (int i = 0; i < 2; ++i) CHECK_CUDA(cudaGraphLaunch(exec, stream));
  std::vector<double> times;
  for (int r = 0; r < replays; ++r) {
    CHECK_CUDA(cudaEventRecord(start, stream));
    CHECK_CUDA(cudaGraphLaunch(exec, stream));
    CHECK_CUDA(cudaEventRecord(stop, stream));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float ms = 0.f;
    CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(1000.0 * ms / steps);
  }
  CHECK_CUDA(cudaGraphExecDestroy(exec));
  CHECK_CUDA(cudaGraphDestroy(graph));
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  return Median(times);
}

// Largest |y - y64| / largest |y64| of one product of each kind.
double CheckProduct(Kind kind, Flags flags, Cublas& cublas, int M, int K, int N, std::mt19937& rng, cudaStream_t stream,
                    const mamba_export_ops::LinearTileShape& tile = mamba_export_ops::LinearTileShape()) {
  std::vector<__half> x = RandomHalf(static_cast<size_t>(M) * K, 1.f, rng);
  std::vector<__half> w = RandomHalf(static_cast<size_t>(N) * K, 1.f / std::sqrt(static_cast<float>(K)), rng);
  std::vector<__half> wt(w.size());
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) wt[static_cast<size_t>(k) * N + n] = w[static_cast<size_t>(n) * K + k];
  Layer layer{};
  layer.w[0] = Upload(w);
  layer.wt[0] = Upload(wt);
  __half* dx = Upload(x);
  __half* dy = nullptr;
  CHECK_CUDA(cudaMalloc(&dy, static_cast<size_t>(M) * N * sizeof(__half)));
  RunProduct(kind, cublas, M, dx, K, layer, 0, dy, N, K, N, flags, stream, tile);
  CHECK_CUDA(cudaStreamSynchronize(stream));
  std::vector<__half> y(static_cast<size_t>(M) * N);
  CHECK_CUDA(cudaMemcpy(y.data(), dy, y.size() * sizeof(__half), cudaMemcpyDeviceToHost));
  double worst = 0.0, largest = 0.0;
  std::vector<double> ref(y.size());
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double s = 0.0;
      for (int k = 0; k < K; ++k)
        s += static_cast<double>(__half2float(x[static_cast<size_t>(m) * K + k])) *
             static_cast<double>(__half2float(w[static_cast<size_t>(n) * K + k]));
      ref[static_cast<size_t>(m) * N + n] = s;
      largest = std::max(largest, std::fabs(s));
    }
  for (size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::fabs(__half2float(y[i]) - ref[i]));
  CHECK_CUDA(cudaFree(layer.w[0]));
  CHECK_CUDA(cudaFree(layer.wt[0]));
  CHECK_CUDA(cudaFree(dx));
  CHECK_CUDA(cudaFree(dy));
  return worst / largest;
}

std::vector<int> ParseList(const char* text) {
  std::vector<int> values;
  std::string s(text);
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    char* end = nullptr;
    long value = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || value <= 0) {
      std::fprintf(stderr, "error: --batches wants positive integers separated by commas, got '%s'\n", text);
      std::exit(2);
    }
    values.push_back(static_cast<int>(value));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return values;
}

int main(int argc, char** argv) {
  const char* cublas_path = nullptr;
  const char* json_path = nullptr;
  std::string config_name = "mamba-130m";
  std::vector<int> batches = {1, 4, 16};
  int steps = 10, replays = 7;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) { std::fprintf(stderr, "error: %s wants a value\n", arg.c_str()); std::exit(2); }
      return argv[++i];
    };
    if (arg == "--cublas") cublas_path = value();
    else if (arg == "--json") json_path = value();
    else if (arg == "--config") config_name = value();
    else if (arg == "--batches") batches = ParseList(value());
    else if (arg == "--steps") steps = std::atoi(value());
    else if (arg == "--replays") replays = std::atoi(value());
    else { std::fprintf(stderr, "error: unknown argument %s\n", arg.c_str()); return 2; }
  }
  const Config* config = nullptr;
  for (const Config& c : kConfigs) if (config_name == c.name) config = &c;
  if (config == nullptr) { std::fprintf(stderr, "error: unknown --config %s\n", config_name.c_str()); return 2; }
  if (cublas_path == nullptr) { std::fprintf(stderr, "error: --cublas PATH (libcublas.so) is required\n"); return 2; }
  if (steps < 1 || replays < 1) { std::fprintf(stderr, "error: --steps and --replays must be positive\n"); return 2; }

  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  int driver = 0, runtime = 0;
  CHECK_CUDA(cudaDriverGetVersion(&driver));
  CHECK_CUDA(cudaRuntimeGetVersion(&runtime));
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  Cublas cublas;
  if (!cublas.Load(cublas_path, stream)) return 1;
  std::printf("%s, sm_%d%d, CUDA driver %d, runtime %d; %s\n", prop.name, prop.major, prop.minor, driver, runtime,
              config->name);

  const int H = config->hidden, I = config->inner, P = config->rank + 2 * config->state;
  const Product products[4] = {{"in_proj", H, 2 * I}, {"x_proj", I, P}, {"dt_proj", P, I}, {"out_proj", I, H}};
  std::mt19937 rng(0);

  // Accuracy of each product, each kind, each batch.
  std::string json = "{\n  \"device\": \"" + std::string(prop.name) + "\", \"config\": \"" + config->name +
                     "\", \"cuda_driver\": " + std::to_string(driver) + ", \"cuda_runtime\": " +
                     std::to_string(runtime) + ", \"steps_per_graph\": " + std::to_string(steps) +
                     ", \"replays\": " + std::to_string(replays) + ",\n  \"check\": [";
  double worst_error = 0.0;
  bool first = true;
  for (int M : batches) {
    for (const Product& p : products) {
      for (Kind kind : {Kind::kCublasNN, Kind::kCublasTN, Kind::kGemv, Kind::kOp, Kind::kOpTile}) {
        if (kind == Kind::kOp && M > 4) continue;
        if (kind == Kind::kOpTile && M > 32) continue;
        Flags flags;
        double error = CheckProduct(kind, flags, cublas, M, p.K, p.N, rng, stream);
        if (kind == Kind::kGemv) {
          Flags dependent{true, true, true};
          error = std::max(error, CheckProduct(kind, dependent, cublas, M, p.K, p.N, rng, stream));
        }
        if (kind == Kind::kOpTile) {
          for (const auto& tile : {kNarrowTile, kWideTile}) {
            error = std::max(error, CheckProduct(kind, flags, cublas, M, p.K, p.N, rng, stream, tile));
          }
        }
        worst_error = std::max(worst_error, error);
        char item[200];
        std::snprintf(item, sizeof(item), "%s{\"batch\": %d, \"product\": \"%s\", \"kind\": %d, \"error\": %.3e}",
                      first ? "" : ", ", M, p.name, static_cast<int>(kind), error);
        json += item;
        first = false;
      }
    }
  }
  json += "],\n";
  std::printf("largest error against float64 (relative to the largest |y|): %.2e (float16 rounding 4.9e-4)\n",
              worst_error);
  const bool accurate = worst_error < 2e-3;

  // The model's weights, every layer its own (so that they stream from memory as in a step).
  std::vector<Layer> layers(config->layers);
  for (Layer& layer : layers) {
    for (int p = 0; p < 4; ++p) {
      const Product& product = products[p];
      std::vector<__half> w =
          RandomHalf(static_cast<size_t>(product.N) * product.K, 1.f / std::sqrt(static_cast<float>(product.K)), rng);
      std::vector<__half> wt(w.size());
      for (int n = 0; n < product.N; ++n)
        for (int k = 0; k < product.K; ++k)
          wt[static_cast<size_t>(k) * product.N + n] = w[static_cast<size_t>(n) * product.K + k];
      layer.w[p] = Upload(w);
      layer.wt[p] = Upload(wt);
    }
  }
  const int max_batch = *std::max_element(batches.begin(), batches.end());
  Buffers buf{};
  buf.h = Upload(RandomHalf(static_cast<size_t>(max_batch) * H, 1.f, rng));
  buf.a = Upload(RandomHalf(static_cast<size_t>(max_batch) * 2 * I, 1.f, rng));
  buf.b = Upload(RandomHalf(static_cast<size_t>(max_batch) * P, 1.f, rng));
  buf.c = Upload(RandomHalf(static_cast<size_t>(max_batch) * I, 1.f, rng));
  buf.t = Upload(RandomHalf(static_cast<size_t>(max_batch) * I, 1.f, rng));

  const Flags plain{}, dependent{true, false, false}, early{true, true, false}, l2{true, true, true};
  std::vector<Variant> variants = {
      {"cublas_nn", Kind::kCublasNN, plain, false, plain},
      {"cublas_tn", Kind::kCublasTN, plain, false, plain},
      {"gemv", Kind::kGemv, plain, false, plain},
      {"gemv_pdl", Kind::kGemv, dependent, false, plain},
      {"gemv_pdl_early", Kind::kGemv, early, false, plain},
      {"gemv_pdl_l2", Kind::kGemv, l2, false, plain},
      {"empty", Kind::kGemv, plain, false, plain, true},
      {"empty_pdl", Kind::kGemv, early, false, plain, true},
      {"layer_cublas", Kind::kCublasNN, plain, true, plain},
      {"layer_cublas_pdl", Kind::kCublasNN, plain, true, early},
      {"layer_gemv", Kind::kGemv, plain, true, plain},
      {"layer_gemv_pdl", Kind::kGemv, l2, true, early},
  };
  if (max_batch <= 4) {  // the op's matrix-vector kernel takes up to 4 rows
    variants.push_back({"op", Kind::kOp, plain, false, plain});
    variants.push_back({"op_pdl", Kind::kOp, plain, false, plain, false, true});
    variants.push_back({"layer_op_pdl", Kind::kOp, plain, true, early, false, true});
  }
  if (max_batch <= 32) {  // the op's tensor-core kernel takes up to 32 rows
    variants.push_back({"op_tile", Kind::kOpTile, plain, false, plain});
    variants.push_back({"op_tile_pdl", Kind::kOpTile, plain, false, plain, false, true});
    variants.push_back({"op_tile_pdl_16", Kind::kOpTile, plain, false, plain, false, true, kNarrowTile});
    variants.push_back({"op_tile_pdl_32", Kind::kOpTile, plain, false, plain, false, true, kWideTile});
    variants.push_back({"op_tile_pdl_nosplit", Kind::kOpTile, plain, false, plain, false, true, kNoSplitTile});
    variants.push_back({"layer_tile_pdl", Kind::kOpTile, plain, true, early, false, true});
  }
  // Each product alone (every layer's), by cuBLAS and by the op's kernels.
  const char* product_names[4] = {"in", "x", "dt", "out"};
  for (int only = 0; only < 4; ++only) {
    const std::string suffix = std::string("@") + product_names[only];
    variants.push_back({"cublas_nn" + suffix, Kind::kCublasNN, plain, false, plain, false, false, {}, only});
    if (max_batch <= 4) variants.push_back({"op_pdl" + suffix, Kind::kOp, plain, false, plain, false, true, {}, only});
    if (max_batch <= 32) {
      variants.push_back({"op_tile_pdl" + suffix, Kind::kOpTile, plain, false, plain, false, true, {}, only});
      variants.push_back({"op_tile_pdl_nosplit" + suffix, Kind::kOpTile, plain, false, plain, false, true,
                          kNoSplitTile, only});
    }
  }
  std::printf("\nper decode step (%d layers; products: 4 a layer; layer_*: 7 kernels a layer), us, median of %d "
              "replays of %d-step graphs\n", config->layers, replays, steps);
  std::printf("%-24s", "variant");
  for (int M : batches) std::printf("  batch %-5d", M);
  std::printf("\n");
  json += "  \"per_step_us\": {";
  for (size_t vi = 0; vi < variants.size(); ++vi) {
    const Variant& v = variants[vi];
    std::printf("%-24s", v.name.c_str());
    json += std::string(vi ? ", " : "") + "\"" + v.name + "\": {";
    for (size_t bi = 0; bi < batches.size(); ++bi) {
      const int M = batches[bi];
      const double us = TimeVariant(v, cublas, M, *config, layers, buf, stream, steps, replays);
      std::printf("  %11.1f", us);
      char item[64];
      std::snprintf(item, sizeof(item), "%s\"%d\": %.2f", bi ? ", " : "", M, us);
      json += item;
    }
    std::printf("\n");
    json += "}";
  }
  json += "},\n  \"largest_error\": " + std::to_string(worst_error) + ", \"accurate\": " +
          (accurate ? "true" : "false") + "\n}\n";
  if (json_path != nullptr) {
    FILE* f = std::fopen(json_path, "w");
    if (f == nullptr) { std::fprintf(stderr, "error: cannot write %s\n", json_path); return 1; }
    std::fputs(json.c_str(), f);
    std::fclose(f);
    std::printf("wrote %s\n", json_path);
  }
  if (!accurate) { std::fprintf(stderr, "error: a product is off by %.2e\n", worst_error); return 1; }
  return 0;
}
