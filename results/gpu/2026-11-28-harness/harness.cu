// Throwaway timing harness (not product code): launches the scan kernels directly.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "/work/main/custom_ops/selective_scan/cuda_chunked.cuh"
#include "/work/main/custom_ops/selective_scan/cuda_state_parallel.cuh"
#include "chunked_occ4.cuh"
#include "w2b7.cuh"
#include "w1b14.cuh"
#include "w2b8.cuh"
#include "w1b16.cuh"
using namespace mamba_export_ops;
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at line %d\n", cudaGetErrorString(e), __LINE__); exit(1);} } while (0)

__device__ float hash01(unsigned long long i, unsigned seed) {
  unsigned long long x = i * 0x9E3779B97F4A7C15ull + seed * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31; x *= 0x94D049BB133111EBull; x ^= x >> 29;
  return ((x >> 40) + 0.5f) * (1.0f / 16777216.0f);
}
template <typename T> __global__ void Fill(T* p, long long n, unsigned seed, float scale, float offset, int mode) {
  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i >= n) return;
  float u1 = hash01(i, seed), u2 = hash01(i, seed + 1000);
  float v = (mode == 0) ? sqrtf(-2.f * logf(u1)) * cosf(6.2831853f * u2) : u1;  // normal or uniform
  if (mode == 2) v = -expf(u1 * 3.5f - 1.0f);
  p[i] = cuda_scan::FromFloat<T>(v * scale + offset);
}
template <typename T> T* make(long long n, unsigned seed, float scale, float offset, int mode) {
  T* d; CK(cudaMalloc(&d, n * sizeof(T)));
  Fill<T><<<(n + 255) / 256, 256>>>(d, n, seed, scale, offset, mode); CK(cudaGetLastError()); return d;
}
__global__ void MaxDiff(const __half* a, const __half* b, long long n, float* out) {
  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i >= n) return;
  float x = __half2float(a[i]), y = __half2float(b[i]);
  atomicMax(reinterpret_cast<int*>(out), __float_as_int(fabsf(x - y)));
  atomicMax(reinterpret_cast<int*>(out + 1), __float_as_int(fabsf(y)));
}

int main(int argc, char** argv) {
  int Bsz = atoi(argv[1]), D = atoi(argv[2]), L = atoi(argv[3]); int iters = argc > 4 ? atoi(argv[4]) : 20;
  const int N = 16; using T = __half;
  long long rows = (long long)Bsz * D * L, bc = (long long)Bsz * N * L;
  SelectiveScanParams p; p.batch = Bsz; p.dim = D; p.length = L; p.state = N; p.delta_softplus = true;
  p.dtype = ScanDType::kFloat16;
  p.u = make<T>(rows, 1, 1, 0, 0); p.delta = make<T>(rows, 2, 1.5f, -1.f, 0); p.z = make<T>(rows, 3, 1, 0, 0);
  p.B = make<T>(bc, 4, 1, 0, 0); p.C = make<T>(bc, 5, 1, 0, 0);
  p.A = make<float>((long long)D * N, 6, 1, 0, 2); p.D = make<float>(D, 7, 1, 0, 0);
  p.delta_bias = make<float>(D, 8, 3.f, -4.f, 1);
  T* y_ref; T* y; CK(cudaMalloc(&y_ref, rows * 2)); CK(cudaMalloc(&y, rows * 2));
  float* st; CK(cudaMalloc(&st, (long long)Bsz * D * N * 4));
  p.last_state = st;
  const char* names[] = {"chunked16", "w2b7", "w1b14", "w2b_nocap", "w1b_nocap", "chunked16_occ4"};
  for (int v = 0; v < 6; ++v) {
    p.y = (v == 0) ? (void*)y_ref : (void*)y;
    auto launch = [&]() {
      long long ch = (long long)Bsz * D;
      size_t sh = cuda_scan::ChunkedSharedBytes(N);
      if (v == 0) cuda_scan::ChunkedScanKernel<T, 16><<<(ch + 3) / 4, 128, sh>>>(p, true);
      if (v == 1) w2b7::ChunkedScanKernel<T, 16><<<(ch + 1) / 2, 64, w2b7::ChunkedSharedBytes(N)>>>(p, true);
      if (v == 2) w1b14::ChunkedScanKernel<T, 16><<<ch, 32, w1b14::ChunkedSharedBytes(N)>>>(p, true);
      if (v == 3) w2b8::ChunkedScanKernel<T, 16><<<(ch + 1) / 2, 64, w2b8::ChunkedSharedBytes(N)>>>(p, true);
      if (v == 4) w1b16::ChunkedScanKernel<T, 16><<<ch, 32, w1b16::ChunkedSharedBytes(N)>>>(p, true);
      if (v == 5) cuda_scan_occ4::ChunkedScanKernel<T, 16><<<(ch + 3) / 4, 128, sh>>>(p, true);
    };
    for (int i = 0; i < 3; ++i) launch();
    CK(cudaDeviceSynchronize());
    std::vector<float> ms;
    for (int i = 0; i < iters; ++i) {
      cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
      cudaEventRecord(a); launch(); cudaEventRecord(b); CK(cudaEventSynchronize(b));
      float t; cudaEventElapsedTime(&t, a, b); ms.push_back(t);
    }
    CK(cudaGetLastError());
    std::sort(ms.begin(), ms.end());
    float err = 0;
    if (v > 0) {
      float* m; CK(cudaMalloc(&m, 8)); CK(cudaMemset(m, 0, 8));
      MaxDiff<<<(rows + 255) / 256, 256>>>(y, y_ref, rows, m); float hm[2]; CK(cudaMemcpy(hm, m, 8, cudaMemcpyDeviceToHost));
      err = hm[0] / hm[1];
    }
    printf("B=%d D=%d L=%d %-16s median %8.1f us  relerr_vs_chunked16 %.2e\n", Bsz, D, L, names[v], ms[iters / 2] * 1e3, err);
  }
  return 0;
}
