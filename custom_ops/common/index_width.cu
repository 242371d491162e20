// The process-wide index-width switch (common/index_width.h).
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "common/index_width.h"

namespace mamba_export_ops {
namespace {

// 32-bit where it fits unless the environment asks for the 64-bit instances.
bool InitialWideIndex() {
  const char* value = std::getenv("MAMBA_EXPORT_WIDE_INDEX");
  return value != nullptr && (std::strcmp(value, "1") == 0 || std::strcmp(value, "on") == 0);
}

std::atomic<bool> g_wide_index{InitialWideIndex()};

}  // namespace

bool GetWideIndex() { return g_wide_index.load(std::memory_order_relaxed); }

bool SetWideIndex(bool on) { return g_wide_index.exchange(on); }

}  // namespace mamba_export_ops
