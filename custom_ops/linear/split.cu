// The serial split's switch and its per-stream workspaces (linear/split.h).
#include <cuda_runtime.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "linear/split.h"

namespace mamba_export_ops {
namespace {

// The cluster unless the environment names another mode.
LinearSplit InitialLinearSplit() {
  const char* value = std::getenv("MAMBA_EXPORT_LINEAR_SPLIT");
  if (value == nullptr) return LinearSplit::kCluster;
  if (std::strcmp(value, "serial") == 0) return LinearSplit::kSerial;
  if (std::strcmp(value, "serial_wide") == 0) return LinearSplit::kSerialWide;
  return LinearSplit::kCluster;
}

std::atomic<int> g_linear_split{static_cast<int>(InitialLinearSplit())};

constexpr size_t kCounterBytes = static_cast<size_t>(kSplitCounters) * sizeof(unsigned);
static_assert(kCounterBytes % 256 == 0, "the sums start aligned");

struct Workspaces {
  std::mutex mutex;
  std::map<std::pair<int, void*>, void*> by_stream;  // (device, stream) -> device memory
};

Workspaces& AllWorkspaces() {
  static Workspaces* workspaces = new Workspaces();  // never destroyed: kernels may use it until exit
  return *workspaces;
}

void* MakeWorkspace(cudaStream_t stream) {
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capturing) != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  if (capturing != cudaStreamCaptureStatusNone) return nullptr;  // no allocation inside a capture
  void* memory = nullptr;
  if (cudaMalloc(&memory, kSplitWorkspaceBytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  // Synchronous: the counters are zero before any kernel on any stream can use them.
  if (cudaMemset(memory, 0, kCounterBytes) != cudaSuccess) {
    (void)cudaGetLastError();
    (void)cudaFree(memory);
    return nullptr;
  }
  return memory;
}

}  // namespace

LinearSplit GetLinearSplit() { return static_cast<LinearSplit>(g_linear_split.load(std::memory_order_relaxed)); }

LinearSplit SetLinearSplit(LinearSplit mode) {
  return static_cast<LinearSplit>(g_linear_split.exchange(static_cast<int>(mode)));
}

bool FindSplitWorkspace(void* stream, SplitWorkspace* workspace) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  Workspaces& all = AllWorkspaces();
  std::lock_guard<std::mutex> lock(all.mutex);
  const auto key = std::make_pair(device, stream);
  auto found = all.by_stream.find(key);
  if (found == all.by_stream.end()) {
    void* memory = MakeWorkspace(static_cast<cudaStream_t>(stream));
    if (memory == nullptr) return false;
    found = all.by_stream.emplace(key, memory).first;
  }
  auto* bytes = static_cast<unsigned char*>(found->second);
  workspace->counters = reinterpret_cast<unsigned*>(bytes);
  workspace->sums = reinterpret_cast<float*>(bytes + kCounterBytes);
  workspace->sum_capacity = static_cast<int64_t>((kSplitWorkspaceBytes - kCounterBytes) / sizeof(float));
  return true;
}

int SplitWorkspaceCount() {
  Workspaces& all = AllWorkspaces();
  std::lock_guard<std::mutex> lock(all.mutex);
  return static_cast<int>(all.by_stream.size());
}

}  // namespace mamba_export_ops
