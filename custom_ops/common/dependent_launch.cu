// The process-wide dependent-launch switch (common/dependent_launch.h) and whether each
// device can take such launches, asked once per device.
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "common/cuda_launch.cuh"
#include "common/dependent_launch.h"

namespace mamba_export_ops {
namespace {

// On unless the environment turns it off (docs/gpu.md has the measurements).
bool InitialDependentLaunch() {
  const char* value = std::getenv("MAMBA_EXPORT_DEPENDENT_LAUNCH");
  return value == nullptr || !(std::strcmp(value, "0") == 0 || std::strcmp(value, "off") == 0);
}

std::atomic<bool> g_dependent_launch{InitialDependentLaunch()};

// Whether the call this thread is launching for is small enough (DependentLaunchScope).
thread_local bool t_call_allows = true;

// Per device: 0 not asked yet, 1 no, 2 yes.
constexpr int kMaxDevices = 64;
std::atomic<int> g_device_supports[kMaxDevices];

}  // namespace

bool GetDependentLaunch() { return g_dependent_launch.load(std::memory_order_relaxed); }

bool SetDependentLaunch(bool on) { return g_dependent_launch.exchange(on); }

DependentLaunchScope::DependentLaunchScope(long long rows) : previous_(t_call_allows) {
  t_call_allows = rows <= kDependentLaunchMaxRows;
}

DependentLaunchScope::~DependentLaunchScope() { t_call_allows = previous_; }

bool DependentLaunchApplies() {
  if (!GetDependentLaunch() || !t_call_allows) return false;
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
