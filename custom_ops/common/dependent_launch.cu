// The process-wide dependent-launch switch (common/dependent_launch.h) and whether each
// device can take such launches, asked once per device.
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "common/cuda_launch.cuh"
#include "common/dependent_launch.h"

namespace mamba_export_ops {
namespace {

// Off unless the environment turns it on, until a GPU round has timed it (docs/gpu.md).
bool InitialDependentLaunch() {
  const char* value = std::getenv("MAMBA_EXPORT_DEPENDENT_LAUNCH");
  return value != nullptr && (std::strcmp(value, "1") == 0 || std::strcmp(value, "on") == 0);
}

std::atomic<bool> g_dependent_launch{InitialDependentLaunch()};

// Per device: 0 not asked yet, 1 no, 2 yes.
constexpr int kMaxDevices = 64;
std::atomic<int> g_device_supports[kMaxDevices];

}  // namespace

bool GetDependentLaunch() { return g_dependent_launch.load(std::memory_order_relaxed); }

bool SetDependentLaunch(bool on) { return g_dependent_launch.exchange(on); }

bool DependentLaunchApplies() {
  if (!GetDependentLaunch()) return false;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kMaxDevices) return false;
  int known = g_device_supports[device].load(std::memory_order_relaxed);
  if (known == 0) {
    int major = 0;
    const bool asked = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess;
    known = asked && major >= kDependentLaunchMajor ? 2 : 1;
    g_device_supports[device].store(known, std::memory_order_relaxed);
  }
  return known == 2;
}

void DependentLaunchRefused() {
  int device = 0;
  if (cudaGetDevice(&device) == cudaSuccess && device >= 0 && device < kMaxDevices) {
    g_device_supports[device].store(1, std::memory_order_relaxed);
  }
}

}  // namespace mamba_export_ops
