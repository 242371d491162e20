// Looks for the custom-op library in the same places, in the same order, as the
// Python runtime, plus the exported folder itself (the natural spot when deploying).
#include "custom_ops_lookup.h"

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "user_error.h"

#ifndef MAMBA_EXPORT_REPO_OPS_LIBRARY
#define MAMBA_EXPORT_REPO_OPS_LIBRARY ""
#endif

namespace mamba_example {

constexpr const char* kLibraryFileName = "libmamba_export_ops.so";
constexpr const char* kLibraryEnvVar = "MAMBA_EXPORT_OPS_LIBRARY";

std::string FindCustomOpsLibrary(const std::string& explicit_path, const std::string& model_dir) {
  namespace fs = std::filesystem;
  if (!explicit_path.empty()) {
    if (!fs::is_regular_file(explicit_path)) {
      throw UserError("--custom-ops: " + explicit_path +
                      " does not exist; build the library with `mamba-export build-ops` and pass its path");
    }
    return explicit_path;
  }
  std::vector<std::string> candidates;
  if (const char* from_env = std::getenv(kLibraryEnvVar); from_env != nullptr && *from_env != '\0') {
    candidates.push_back(from_env);
  }
  candidates.push_back((fs::path(model_dir) / kLibraryFileName).string());
  if (*MAMBA_EXPORT_REPO_OPS_LIBRARY != '\0') candidates.push_back(MAMBA_EXPORT_REPO_OPS_LIBRARY);

  std::string looked;
  for (const auto& candidate : candidates) {
    if (fs::is_regular_file(candidate)) return candidate;
    looked += (looked.empty() ? "" : ", ") + candidate;
  }
  throw UserError(std::string("this graph needs the SelectiveScan custom-op library and none was found (looked in: ") +
                  looked + "); build it with `mamba-export build-ops` and pass --custom-ops LIB or set " +
                  kLibraryEnvVar);
}

}  // namespace mamba_example
