// Throwaway check (not product code): times LaunchSelectiveScanCuda and compares it with the
// sequential kernel run over the same inputs.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "/work/main/custom_ops/selective_scan/cuda.cu"
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
  float v = (mode == 0) ? sqrtf(-2.f * logf(u1)) * cosf(6.2831853f * u2) : u1;
  if (mode == 2) v = -expf(u1 * 3.5f - 1.0f);
  p[i] = cuda_scan::FromFloat<T>(v * scale + offset);
}
template <typename T> T* make(long long n, unsigned seed, float scale, float offset, int mode) {
  T* d; CK(cudaMalloc(&d, n * sizeof(T)));
  Fill<T><<<(n + 255) / 256, 256>>>(d, n, seed, scale, offset, mode); CK(cudaGetLastError()); return d;
}
template <typename T> __global__ void MaxDiff(const T* a, const T* b, long long n, float* out) {
  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i >= n) return;
  float x = cuda_scan::ToFloat(a[i]), y = cuda_scan::ToFloat(b[i]);
  atomicMax(reinterpret_cast<int*>(out), __float_as_int(fabsf(x - y)));
  atomicMax(reinterpret_cast<int*>(out + 1), __float_as_int(fabsf(y)));
}
template <typename T> float RelErr(const T* a, const T* b, long long n) {
  float* m; CK(cudaMalloc(&m, 8)); CK(cudaMemset(m, 0, 8));
  MaxDiff<T><<<(n + 255) / 256, 256>>>(a, b, n, m); float h[2]; CK(cudaMemcpy(h, m, 8, cudaMemcpyDeviceToHost));
  CK(cudaFree(m)); return h[0] / h[1];
}
template <typename T> void Run(const char* name, ScanDType dtype, int Bsz, int D, int L) {
  const int N = 16; long long rows = (long long)Bsz * D * L, bc = (long long)Bsz * N * L, st = (long long)Bsz * D * N;
  SelectiveScanParams p; p.batch = Bsz; p.dim = D; p.length = L; p.state = N; p.delta_softplus = true; p.dtype = dtype;
  p.u = make<T>(rows, 1, 1, 0, 0); p.delta = make<T>(rows, 2, 1.5f, -1.f, 0); p.z = make<T>(rows, 3, 1, 0, 0);
  p.B = make<T>(bc, 4, 1, 0, 0); p.C = make<T>(bc, 5, 1, 0, 0);
  p.A = make<float>((long long)D * N, 6, 1, 0, 2); p.D = make<float>(D, 7, 1, 0, 0);
  p.delta_bias = make<float>(D, 8, 3.f, -4.f, 1); p.initial_state = make<float>(st, 9, 1, 0, 0);
  T *y, *y2; float *s1, *s2; CK(cudaMalloc(&y, rows * sizeof(T))); CK(cudaMalloc(&y2, rows * sizeof(T)));
  CK(cudaMalloc(&s1, st * 4)); CK(cudaMalloc(&s2, st * 4));
  p.y = y; p.last_state = s1;
  for (int i = 0; i < 3; ++i) CK(LaunchSelectiveScanCuda(p, 0));
  std::vector<float> ms;
  for (int i = 0; i < 20; ++i) {
    cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
    cudaEventRecord(a); CK(LaunchSelectiveScanCuda(p, 0)); cudaEventRecord(b); CK(cudaEventSynchronize(b));
    float t; cudaEventElapsedTime(&t, a, b); ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  SelectiveScanParams q = p; q.y = y2; q.last_state = s2;
  cuda_scan::SequentialScanKernel<T><<<(rows / L * 4 + 255) / 256, 256>>>(q, 2); CK(cudaDeviceSynchronize());
  printf("%-8s B=%d D=%d L=%d launcher median %8.1f us  rel err vs sequential: y %.2e state %.2e\n", name, Bsz, D, L,
         ms[10] * 1e3, RelErr<T>(y, y2, rows), RelErr<float>(s1, s2, st));
  cudaFree((void*)p.u); cudaFree((void*)p.delta); cudaFree((void*)p.z); cudaFree((void*)p.B); cudaFree((void*)p.C);
  cudaFree((void*)p.A); cudaFree((void*)p.D); cudaFree((void*)p.delta_bias); cudaFree((void*)p.initial_state);
  cudaFree(y); cudaFree(y2); cudaFree(s1); cudaFree(s2);
}
int main() {
  int shapes[][3] = {{1, 1536, 2048}, {8, 1536, 2048}, {1, 2560, 2048}, {1, 1536, 8192}, {1, 1536, 300}, {2, 100, 1000}};
  for (auto& s : shapes) Run<__half>("float16", ScanDType::kFloat16, s[0], s[1], s[2]);
  for (auto& s : shapes) Run<float>("float32", ScanDType::kFloat32, s[0], s[1], s[2]);
  for (auto& s : shapes) Run<__nv_bfloat16>("bfloat16", ScanDType::kBFloat16, s[0], s[1], s[2]);
  return 0;
}
